/** What a rendered synthetic scene is: its pixels, the objects placed in it and its captions. */
import type { Box, Point, Rgb } from '../draw.js';
import type { ColourName } from './colours.js';
import type { ShapeName } from './shapes.js';

interface ObjectBase {
  readonly id: number;
  readonly colour: ColourName;
  /** the exact fill colour (the named colour jittered a little) */
  readonly rgb: Rgb;
  /** centre in pixels */
  readonly center: Point;
  /** nominal size in pixels: a shape's diameter, a sign plate's longest side */
  readonly size: number;
  /** tight pixel box of everything drawn for the object (label included) */
  readonly box: Box;
  /** objects placed together as a cluster share a group number */
  readonly group: number | null;
  /** the object this one was made to resemble (one attribute changed), if any */
  readonly lookalikeOf: number | null;
}

export interface ShapeObject extends ObjectBase {
  readonly kind: 'shape';
  readonly shape: ShapeName;
  /** radians, small, so a square never turns into a diamond */
  readonly rotation: number;
  /** one digit or letter drawn on the shape, or null */
  readonly label: string | null;
  readonly labelColour: ColourName | null;
  readonly labelRgb: Rgb | null;
}

export interface SignObject extends ObjectBase {
  readonly kind: 'sign';
  /** the code on the plate: 1-3 characters, never two letters in a row (see signCode) */
  readonly label: string;
  readonly labelColour: ColourName;
  readonly labelRgb: Rgb;
}

export type SceneObject = ShapeObject | SignObject;

export type RegionKind = 'plain' | 'labelled' | 'sign' | 'group' | 'groupNearSign' | 'relation';

export interface SceneRegion {
  readonly box: Box;
  readonly caption: string;
  readonly kind: RegionKind;
  /** the objects the caption names; box is the union of their boxes */
  readonly objectIds: readonly number[];
}

export interface Scene {
  /** [height, width, 3] */
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly objects: readonly SceneObject[];
  readonly regions: readonly SceneRegion[];
  readonly globalCaption: string;
}

export interface SceneSize {
  readonly width: number;
  readonly height: number;
}
