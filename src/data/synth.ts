/**
 * Synthetic high-resolution detail scenes for pre-training and evaluating PS3 without real data:
 * a textured, cluttered background with small objects (0.5-4 % of the long side) whose colour,
 * shape, digits and sign codes can only be read at high resolution, look-alike distractors next to
 * them, and local (box, caption) pairs plus one global caption that are true of the pixels.
 *
 * Everything a caption says is computed from the placed objects: a count ("three red
 * triangles") counts every object of that colour and shape touching the region's box, and a
 * region's box is the exact extent of the pixels of the objects it names. Scenes are a pure
 * function of the Rng they are given, and their structure does not depend on the resolution
 * (sizes are fractions of the long side), so a 512 px test scene is a small 4K scene.
 *
 * The caption grammar is data (`CAPTION_GRAMMAR`): `wordTokenizer.ts` reads its words to build a
 * closed vocabulary, so a word added to a template reaches the tokenizer by itself.
 */
import sharp from 'sharp';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Rng } from '../rng.js';
import {
  createCanvas, ellipse, Extent, fillPolygon, fillRect, pixel, regularPolygon, rotate, strokeQuad,
  type Box, type Canvas, type Point, type Rgb,
} from './draw.js';
import { drawText, GLYPH_CHARS, textWidth } from './glyphs.js';
import { ShardWriter } from './shardWriter.js';

/** Bumped whenever the same seed would draw different scenes; recorded in manifests. */
export const SYNTH_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Vocabulary of attributes

export const COLOURS = [
  { name: 'red', rgb: [214, 39, 40] },
  { name: 'orange', rgb: [247, 132, 22] },
  { name: 'yellow', rgb: [246, 214, 36] },
  { name: 'green', rgb: [40, 160, 50] },
  { name: 'cyan', rgb: [40, 200, 220] },
  { name: 'blue', rgb: [31, 84, 220] },
  { name: 'purple', rgb: [136, 58, 200] },
  { name: 'pink', rgb: [245, 125, 190] },
  { name: 'brown', rgb: [128, 76, 36] },
  { name: 'white', rgb: [248, 248, 248] },
  { name: 'grey', rgb: [128, 128, 128] },
  { name: 'black', rgb: [16, 16, 16] },
] as const satisfies readonly { name: string; rgb: Rgb }[];
export type ColourName = (typeof COLOURS)[number]['name'];

const COLOUR_RGB = new Map<ColourName, Rgb>(COLOURS.map((c) => [c.name, c.rgb]));
const COLOUR_NAMES: readonly ColourName[] = COLOURS.map((c) => c.name);

/** Colours a look-alike may swap in: near in hue or lightness, so only a close look tells. */
const SIMILAR_COLOURS: Readonly<Record<ColourName, readonly ColourName[]>> = {
  red: ['orange', 'pink'], orange: ['red', 'yellow', 'brown'], yellow: ['orange'], green: ['cyan'],
  cyan: ['green', 'blue'], blue: ['cyan', 'purple'], purple: ['blue', 'pink'], pink: ['red', 'purple'],
  brown: ['orange', 'black'], white: ['grey'], grey: ['white', 'black'], black: ['grey', 'brown'],
};

export const SHAPES = ['circle', 'ring', 'square', 'diamond', 'triangle', 'pentagon', 'hexagon', 'star', 'cross'] as const;
export type ShapeName = (typeof SHAPES)[number];

const PLURAL: Readonly<Record<ShapeName, string>> = {
  circle: 'circles', ring: 'rings', square: 'squares', diamond: 'diamonds', triangle: 'triangles',
  pentagon: 'pentagons', hexagon: 'hexagons', star: 'stars', cross: 'crosses',
};

const SIMILAR_SHAPES: Readonly<Record<ShapeName, readonly ShapeName[]>> = {
  circle: ['ring', 'hexagon'], ring: ['circle'], square: ['diamond', 'pentagon'], diamond: ['square', 'triangle'],
  triangle: ['diamond', 'pentagon'], pentagon: ['hexagon', 'square'], hexagon: ['pentagon', 'circle'],
  star: ['cross'], cross: ['star'],
};

/** Label height as a fraction of the shape's size, and its downward offset; null: no room. */
const LABEL_FIT: Readonly<Record<ShapeName, { scale: number; dy: number } | null>> = {
  circle: { scale: 0.5, dy: 0 }, ring: null, square: { scale: 0.5, dy: 0 }, diamond: { scale: 0.36, dy: 0 },
  triangle: { scale: 0.3, dy: 0.125 }, pentagon: { scale: 0.42, dy: 0.02 }, hexagon: { scale: 0.5, dy: 0 },
  star: { scale: 0.26, dy: 0.01 }, cross: { scale: 0.3, dy: 0 },
};
const LABELLED_SHAPES = SHAPES.filter((s) => LABEL_FIT[s] !== null);

/** Characters that differ from each other in a few font cells only (see glyphs.ts). */
const SIMILAR_CHARS: Readonly<Record<string, string>> = {
  '0': 'OQD', O: '0QC', Q: 'O0', D: '0O', '1': 'I7', I: '1T', '7': '1T', T: '7I', '5': 'S6', S: '58',
  '8': 'B3', B: '8R', '2': 'Z', Z: '2', '6': 'G5', G: 'C6', C: 'G', E: 'F', F: 'EP', P: 'RF', R: 'PB',
  M: 'NW', N: 'MH', H: 'N', U: 'V', V: 'UY', W: 'M', K: 'X', X: 'KY', Y: 'V', '3': '8', '4': 'A', A: '4',
  '9': 'G', J: 'U', L: 'E',
};
const DIGITS = '0123456789';
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

// ---------------------------------------------------------------------------------------------
// Caption grammar

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;
const RELATIONS = {
  left: ['left of', 'to the left of'],
  right: ['right of', 'to the right of'],
  above: ['above', 'just above'],
  below: ['below', 'just below'],
  near: ['next to', 'near'],
} as const;

/**
 * Every caption is one of these templates with its {slots} filled; `a` before a vowel becomes
 * `an` afterwards. Slots: colour, labelColour, signColour, otherColour (colour names), shape,
 * shapes (plural), kind (digit | letter), label and text (characters of glyphs.ts), count
 * (number words), n and m (decimal numbers), relation, tone, and a, b (each a `description`).
 * `slots` lists the words slots can take, for the vocabulary.
 */
export const CAPTION_GRAMMAR = {
  plain: ['a {colour} {shape}', 'a small {colour} {shape}', 'one {colour} {shape}', 'a tiny {colour} {shape}'],
  labelled: [
    'the {kind} {label} on a {colour} {shape}',
    'a {colour} {shape} with the {kind} {label} on it',
    'a {colour} {shape} marked with the {kind} {label}',
    'a {colour} {shape} labelled {label} in {labelColour}',
  ],
  sign: [
    'a {colour} sign reading {text}',
    'a {colour} sign that says {text}',
    'a sign with {labelColour} characters {text} on a {colour} background',
    'the code {text} written on a {colour} sign',
  ],
  group: ['{count} {colour} {shapes}', 'a group of {count} {colour} {shapes}', '{count} {colour} {shapes} close together'],
  groupNearSign: ['{count} {colour} {shapes} near a {signColour} sign reading {text}', '{count} {colour} {shapes} beside a {signColour} sign with the code {text}'],
  relation: ['a {a} {relation} a {b}', 'the {a} is {relation} a {b}'],
  description: ['{colour} {shape}', '{colour} {shape} marked {label}', '{colour} sign reading {text}'],
  global: [
    'a cluttered scene with {n} small shapes and {m} signs',
    'a busy {tone} background scattered with {n} small shapes and {m} signs',
    '{n} small shapes and {m} signs on a {tone} textured background',
  ],
  globalColours: ['mostly {colour} and {otherColour}', 'most of them are {colour} or {otherColour}', 'the most common colours are {colour} and {otherColour}'],
  globalCount: ['there are {count} {colour} {shapes}', 'the scene holds {count} {colour} {shapes}', 'there is one {colour} {shape}'],
  globalGrid: ['thin grid lines cross the background', 'a faint grid covers the background'],
  slots: {
    colour: COLOUR_NAMES,
    shape: SHAPES,
    shapes: SHAPES.map((s) => PLURAL[s]),
    kind: ['digit', 'letter'],
    count: NUMBER_WORDS,
    relation: Object.values(RELATIONS).flat(),
    tone: ['light', 'dark', 'muted'],
    label: [...GLYPH_CHARS],
    article: ['a', 'an'],
    // singular forms of "shapes"/"signs" when a count is one
    singular: ['shape', 'sign'],
  },
} as const;

function fill(template: string, slots: Readonly<Record<string, string>>): string {
  const text = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = slots[name];
    if (value === undefined) throw new Error(`caption template "${template}" needs slot {${name}}`);
    return value;
  });
  return text.replace(/\ba (?=[aeiou])/g, 'an ');
}

// ---------------------------------------------------------------------------------------------
// Scene types

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

// ---------------------------------------------------------------------------------------------
// Helpers

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

function jitter(rng: Rng, rgb: Rgb, amount: number): Rgb {
  return [clampByte(rgb[0] + rng.uniform(-amount, amount)), clampByte(rgb[1] + rng.uniform(-amount, amount)), clampByte(rgb[2] + rng.uniform(-amount, amount))];
}

function colourDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

function luminance(c: Rgb): number {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

function rgbOf(name: ColourName): Rgb {
  return COLOUR_RGB.get(name)!;
}

function union(boxes: readonly Box[]): Box {
  return boxes.reduce<Box>((u, b) => [Math.min(u[0], b[0]), Math.min(u[1], b[1]), Math.max(u[2], b[2]), Math.max(u[3], b[3])], [Infinity, Infinity, -Infinity, -Infinity]);
}

function overlaps(a: Box, b: Box): boolean {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

/** Colours readable on `background`: far enough in luminance. */
function contrastingColours(background: Rgb): ColourName[] {
  const l = luminance(background);
  return COLOUR_NAMES.filter((c) => Math.abs(luminance(rgbOf(c)) - l) > 90);
}

/** A sign code: letter, digit, letter+digit(s), digits, digit+letter. Never two letters in a row,
 * so the word tokenizer's digit split always leaves single characters (see wordTokenizer.ts). */
function signCode(rng: Rng): string {
  const d = (): string => rng.pick([...DIGITS]);
  const l = (): string => rng.pick([...LETTERS]);
  switch (rng.int(0, 5)) {
    case 0: return l();
    case 1: return d();
    case 2: return l() + d();
    case 3: return d() + d();
    case 4: return l() + d() + d();
    default: return d() + l();
  }
}

/** A code with one character swapped for a look-alike (or changed, when it has none). */
function similarCode(rng: Rng, code: string): string {
  const i = rng.int(0, code.length - 1);
  const ch = code[i]!;
  const isDigit = DIGITS.includes(ch);
  // keep the letter/digit pattern so the code stays tokenizable
  const options = [...(SIMILAR_CHARS[ch] ?? '')].filter((c) => DIGITS.includes(c) === isDigit);
  const next = options.length > 0 ? rng.pick(options) : rng.pick([...(isDigit ? DIGITS : LETTERS)].filter((c) => c !== ch));
  return code.slice(0, i) + next + code.slice(i + 1);
}

function kindOf(ch: string): 'digit' | 'letter' {
  return DIGITS.includes(ch) ? 'digit' : 'letter';
}

// ---------------------------------------------------------------------------------------------
// Background

interface Background {
  /** mean colour, for the global caption's tone */
  readonly mean: Rgb;
  readonly grid: boolean;
}

/** Random muted colour: grey pulled a little toward a random hue. */
function mutedColour(rng: Rng, lightness: number): Rgb {
  const sat = rng.uniform(0.1, 0.45);
  const channel = (): number => clampByte(lightness + (rng.uniform(0, 255) - 128) * sat);
  return [channel(), channel(), channel()];
}

/**
 * Linear gradient between two muted colours plus smooth value noise (bilinear over a coarse grid
 * of random offsets), then large translucent blobs and, often, grid lines. Everything here is
 * smooth or flat, which keeps PNGs small; the fine-grained clutter comes later.
 */
function paintBackground(canvas: Canvas, rng: Rng, long: number): Background {
  const { width, height, rgb } = canvas;
  const lightness = rng.uniform(50, 210);
  const a = mutedColour(rng, lightness);
  const b = mutedColour(rng, clampByte(lightness + rng.uniform(-50, 50)));
  const angle = rng.uniform(0, 2 * Math.PI);
  const ux = Math.cos(angle) / Math.hypot(width, height);
  const uy = Math.sin(angle) / Math.hypot(width, height);
  const amp = rng.uniform(8, 28);
  const cells = rng.int(3, 10);
  const cellPx = long / cells;
  const gw = Math.ceil(width / cellPx) + 2;
  const gh = Math.ceil(height / cellPx) + 2;
  const grid = Float32Array.from({ length: gw * gh }, () => rng.uniform(-1, 1) * amp);
  const rowNoise = new Float32Array(gw); // the grid interpolated to this row, per grid column
  const smooth = (t: number): number => t * t * (3 - 2 * t);
  // per column: the grid cell and the weight of its right neighbour, the same for every row
  const cellOf = new Int32Array(width);
  const weightOf = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const gx = (x + 0.5) / cellPx;
    cellOf[x] = Math.floor(gx);
    weightOf[x] = smooth(gx - cellOf[x]!);
  }
  // a clamped view rounds and clips on store, which is the hot loop's clampByte
  const out = new Uint8ClampedArray(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  const [dr, dg, db] = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  for (let y = 0; y < height; y++) {
    const gy = (y + 0.5) / cellPx;
    const j = Math.floor(gy);
    const ty = smooth(gy - j);
    for (let i = 0; i < gw; i++) rowNoise[i] = grid[j * gw + i]! * (1 - ty) + grid[(j + 1) * gw + i]! * ty;
    const t0 = 0.5 + (0.5 - width / 2) * ux + (y + 0.5 - height / 2) * uy;
    let o = y * width * 3;
    for (let x = 0; x < width; x++) {
      const i = cellOf[x]!;
      const left = rowNoise[i]!;
      const n = left + (rowNoise[i + 1]! - left) * weightOf[x]!;
      const tr = t0 + x * ux;
      const t = tr < 0 ? 0 : tr > 1 ? 1 : tr;
      out[o] = a[0] + dr * t + n;
      out[o + 1] = a[1] + dg * t + n;
      out[o + 2] = a[2] + db * t + n;
      o += 3;
    }
  }
  for (let k = rng.int(4, 9); k > 0; k--) {
    const r = long * rng.uniform(0.04, 0.15);
    const shape = ellipse(rng.uniform(0, width), rng.uniform(0, height), r, r * rng.uniform(0.4, 1), rng.uniform(0, Math.PI));
    fillPolygon(canvas, [shape], { colour: mutedColour(rng, rng.uniform(40, 220)), alpha: rng.uniform(0.1, 0.3) });
  }
  const hasGrid = rng.next() < 0.7;
  if (hasGrid) {
    const spacing = long * rng.uniform(0.03, 0.1);
    const thick = Math.max(1, long * rng.uniform(0.0008, 0.002));
    const style = { colour: lightness > 128 ? ([40, 40, 40] as const) : ([220, 220, 220] as const), alpha: rng.uniform(0.2, 0.45) };
    const offset = rng.uniform(0, spacing);
    for (let x = offset; x < width; x += spacing) fillRect(canvas, x, 0, x + thick, height, style);
    for (let y = offset; y < height; y += spacing) fillRect(canvas, 0, y, width, y + thick, style);
  }
  let [sumR, sumG, sumB, count] = [0, 0, 0, 0];
  const step = Math.max(1, Math.floor(Math.min(width, height) / 32));
  for (let y = step >> 1; y < height; y += step) {
    for (let x = step >> 1; x < width; x += step) {
      const p = pixel(canvas, x, y);
      sumR += p[0];
      sumG += p[1];
      sumB += p[2];
      count++;
    }
  }
  return { mean: [sumR / count, sumG / count, sumB / count], grid: hasGrid };
}

/**
 * Clutter that is not an object: irregular polygons, elongated ellipses (circles at low
 * resolution), thick strokes and stray characters, some in the objects' saturated colours, all of
 * object size, so "where are the objects" is not answered by colour or size alone. Kept out of
 * the objects' reserved boxes so it never merges with them.
 */
function paintClutter(canvas: Canvas, rng: Rng, long: number, reserved: readonly Box[]): void {
  const { width, height } = canvas;
  const count = rng.int(150, 300);
  for (let k = 0; k < count; k++) {
    const r = long * rng.uniform(0.002, 0.015);
    let cx = 0;
    let cy = 0;
    let free = false;
    for (let attempt = 0; attempt < 8 && !free; attempt++) {
      cx = rng.uniform(0, width);
      cy = rng.uniform(0, height);
      const mine: Box = [cx - r * 1.2, cy - r * 1.2, cx + r * 1.2, cy + r * 1.2];
      free = !reserved.some((b) => overlaps(mine, b));
    }
    if (!free) continue;
    const colour = rng.next() < 0.4 ? jitter(rng, rgbOf(rng.pick(COLOUR_NAMES)), 20) : mutedColour(rng, rng.uniform(30, 230));
    const style = { colour, alpha: rng.next() < 0.3 ? rng.uniform(0.4, 0.8) : 1 };
    const rot = rng.uniform(0, 2 * Math.PI);
    switch (rng.int(0, 3)) {
      case 0: {
        const n = rng.int(4, 8);
        const angles = Array.from({ length: n }, () => rng.uniform(0, 2 * Math.PI)).sort((p, q) => p - q);
        fillPolygon(canvas, [angles.map((t) => [cx + r * rng.uniform(0.4, 1) * Math.cos(t), cy + r * rng.uniform(0.4, 1) * Math.sin(t)] as const)], style);
        break;
      }
      case 1:
        fillPolygon(canvas, [ellipse(cx, cy, r, r * rng.uniform(0.35, 0.65), rot)], style);
        break;
      case 2: {
        const a: Point = [cx - r * Math.cos(rot), cy - r * Math.sin(rot)];
        const b: Point = [cx + r * Math.cos(rot), cy + r * Math.sin(rot)];
        fillPolygon(canvas, [strokeQuad(a, b, Math.max(1, r * rng.uniform(0.12, 0.35)))], style);
        break;
      }
      default:
        drawText(canvas, rng.pick([...GLYPH_CHARS]), cx, cy, Math.max(7, r * 1.2), { colour });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Objects

/** The rings of a shape of diameter s centred at (cx, cy), for fillPolygon. */
function shapeRings(shape: ShapeName, cx: number, cy: number, s: number, rot: number): Point[][] {
  const r = s / 2;
  switch (shape) {
    case 'circle':
      return [ellipse(cx, cy, r, r)];
    case 'ring':
      return [ellipse(cx, cy, r, r), ellipse(cx, cy, r * 0.55, r * 0.55)];
    case 'square': {
      const h = 0.4 * s;
      return [rotate([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]], cx, cy, rot)];
    }
    case 'diamond':
      return [rotate([[cx, cy - r], [cx + 0.68 * r, cy], [cx, cy + r], [cx - 0.68 * r, cy]], cx, cy, rot)];
    case 'triangle':
      // circumcentre a quarter radius low, so the triangle's box is centred on (cx, cy)
      return [regularPolygon(cx, cy + r / 4, r, 3, rot)];
    case 'pentagon':
      return [regularPolygon(cx, cy, r, 5, rot)];
    case 'hexagon':
      return [regularPolygon(cx, cy, r, 6, rot)];
    case 'star':
      return [regularPolygon(cx, cy, r, 10, rot).map(([x, y], i) => (i % 2 === 0 ? [x, y] : [cx + (x - cx) * 0.45, cy + (y - cy) * 0.45]))];
    case 'cross': {
      const a = 0.2 * s;
      const points: Point[] = [
        [cx - a, cy - r], [cx + a, cy - r], [cx + a, cy - a], [cx + r, cy - a], [cx + r, cy + a], [cx + a, cy + a],
        [cx + a, cy + r], [cx - a, cy + r], [cx - a, cy + a], [cx - r, cy + a], [cx - r, cy - a], [cx - a, cy - a],
      ];
      return [rotate(points, cx, cy, rot)];
    }
  }
}

/** What is decided about an object before its place: attributes, size and reserved half extents. */
interface DesignBase {
  readonly colour: ColourName;
  readonly size: number;
  readonly hw: number;
  readonly hh: number;
}
interface ShapeDesign extends DesignBase {
  readonly kind: 'shape';
  readonly shape: ShapeName;
  readonly rotation: number;
  readonly label: string | null;
  readonly labelColour: ColourName | null;
}
interface SignDesign extends DesignBase {
  readonly kind: 'sign';
  readonly label: string;
  readonly labelColour: ColourName;
  readonly textHeight: number;
}
type Design = ShapeDesign | SignDesign;

/** A design with its place. */
type Plan = Design & { readonly cx: number; readonly cy: number; readonly group: number | null; readonly lookalikeOf: number | null };

class Layout {
  readonly plans: Plan[] = [];
  readonly reserved: Box[] = [];

  constructor(
    private readonly canvas: Canvas,
    private readonly rng: Rng,
  ) {}

  /** The reserved box of a design at (cx, cy), grown by a gap that keeps objects apart. */
  private boxAt(d: Design, cx: number, cy: number): Box {
    const gap = Math.max(2, 0.25 * d.size);
    return [cx - d.hw - gap, cy - d.hh - gap, cx + d.hw + gap, cy + d.hh + gap];
  }

  /** Colour contrast with the background under the object: centre and four inner points. */
  private readable(d: Design, cx: number, cy: number): boolean {
    const fillRgb = rgbOf(d.colour);
    const { width, height } = this.canvas;
    for (const [fx, fy] of [[0, 0], [-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]] as const) {
      const x = Math.min(width - 1, Math.max(0, Math.floor(cx + fx * d.hw)));
      const y = Math.min(height - 1, Math.max(0, Math.floor(cy + fy * d.hh)));
      if (colourDistance(fillRgb, pixel(this.canvas, x, y)) < 80) return false;
    }
    return true;
  }

  /**
   * Places a design at a random free, readable spot (its centre inside `area` when given), in up
   * to 40 tries; returns its index in `plans`, or null.
   */
  place(d: Design, extra: { group?: number; lookalikeOf?: number; area?: Box }): number | null {
    const { width, height } = this.canvas;
    const margin = 2;
    const [ax0, ay0, ax1, ay1] = extra.area ?? [0, 0, width, height];
    const x0 = Math.max(ax0, d.hw + margin);
    const x1 = Math.min(ax1, width - d.hw - margin);
    const y0 = Math.max(ay0, d.hh + margin);
    const y1 = Math.min(ay1, height - d.hh - margin);
    if (x0 >= x1 || y0 >= y1) return null;
    for (let t = 0; t < 40; t++) {
      const cx = this.rng.uniform(x0, x1);
      const cy = this.rng.uniform(y0, y1);
      const box = this.boxAt(d, cx, cy);
      if (this.reserved.some((b) => overlaps(box, b))) continue;
      if (!this.readable(d, cx, cy)) continue;
      this.reserved.push(box);
      this.plans.push({ ...d, cx, cy, group: extra.group ?? null, lookalikeOf: extra.lookalikeOf ?? null });
      return this.plans.length - 1;
    }
    return null;
  }
}

/** Glyphs at least this tall (1.7 px per font cell) stay readable; smaller ones are noise. */
const MIN_LABEL_PX = 12;

/**
 * Sizes are fractions of the long side (plain 0.5-2.5 %, labelled 1.2-3 %), with pixel floors so
 * small images keep shapes recognisable and labels readable.
 */
function shapeDesign(rng: Rng, long: number, shape: ShapeName, colour: ColourName, label: string | null): ShapeDesign {
  const fit = LABEL_FIT[shape];
  if (label !== null && fit === null) throw new Error(`shapeDesign: a ${shape} has no room for a label`);
  const size = label === null || fit === null
    ? Math.max(8, long * rng.uniform(0.005, 0.025))
    : Math.max(MIN_LABEL_PX / fit.scale, long * rng.uniform(0.012, 0.03));
  const labelColour = label === null ? null : rng.pick(contrastingColours(rgbOf(colour)));
  const rotation = shape === 'circle' || shape === 'ring' ? 0 : rng.uniform(-0.25, 0.25);
  // a turned square reaches further than its 0.4 s half side: leave room for the corners
  const half = 0.55 * size;
  return { kind: 'shape', shape, colour, label, labelColour, rotation, size, hw: half, hh: half };
}

function signDesign(rng: Rng, long: number, code: string, colour: ColourName): SignDesign {
  const textHeight = Math.max(MIN_LABEL_PX, long * rng.uniform(0.007, 0.015));
  const w = textWidth(code, textHeight) + 0.9 * textHeight;
  const h = 1.7 * textHeight;
  const labelColour = rng.pick(contrastingColours(rgbOf(colour)));
  return { kind: 'sign', label: code, labelColour, colour, textHeight, size: Math.max(w, h), hw: w / 2, hh: h / 2 };
}

/** A design with one attribute changed: colour, shape or a character of its label. */
function lookalike(rng: Rng, long: number, of: Plan): Design {
  if (of.kind === 'sign') {
    return rng.next() < 0.6 ? signDesign(rng, long, similarCode(rng, of.label), of.colour) : signDesign(rng, long, of.label, rng.pick(SIMILAR_COLOURS[of.colour]));
  }
  const shapes = SIMILAR_SHAPES[of.shape].filter((s) => of.label === null || LABEL_FIT[s] !== null);
  const chars = of.label === null ? [] : [...(SIMILAR_CHARS[of.label] ?? '')];
  const changes = ['colour', ...(shapes.length > 0 ? ['shape'] : []), ...(chars.length > 0 ? ['label'] : [])];
  switch (rng.pick(changes)) {
    case 'shape':
      return shapeDesign(rng, long, rng.pick(shapes), of.colour, of.label);
    case 'label':
      return shapeDesign(rng, long, of.shape, of.colour, rng.pick(chars));
    default:
      return shapeDesign(rng, long, of.shape, rng.pick(SIMILAR_COLOURS[of.colour]), of.label);
  }
}

/** Plans every object: clusters, signs, labelled and plain shapes, and look-alikes of some. */
function planObjects(canvas: Canvas, rng: Rng, long: number): Plan[] {
  const layout = new Layout(canvas, rng);
  const { width, height } = canvas;
  const nearArea = (p: Plan, reach: number): Box => [p.cx - reach, p.cy - reach, p.cx + reach, p.cy + reach];

  const groups = rng.int(1, 3);
  for (let g = 0; g < groups; g++) {
    const shape = rng.pick(SHAPES);
    const colour = rng.pick(COLOUR_NAMES);
    const members = rng.int(2, 4);
    const first = layout.place(shapeDesign(rng, long, shape, colour, null), { group: g });
    if (first === null) continue;
    const anchor = layout.plans[first]!;
    for (let m = 1; m < members; m++) layout.place(shapeDesign(rng, long, shape, colour, null), { group: g, area: nearArea(anchor, anchor.size * 3) });
  }

  const targets: number[] = [];
  const add = (index: number | null): void => {
    if (index !== null) targets.push(index);
  };
  for (let k = rng.int(2, 6); k > 0; k--) add(layout.place(signDesign(rng, long, signCode(rng), rng.pick(COLOUR_NAMES)), {}));
  for (let k = rng.int(5, 12); k > 0; k--) {
    add(layout.place(shapeDesign(rng, long, rng.pick(LABELLED_SHAPES), rng.pick(COLOUR_NAMES), rng.pick([...GLYPH_CHARS])), {}));
  }
  for (let k = rng.int(10, 30); k > 0; k--) add(layout.place(shapeDesign(rng, long, rng.pick(SHAPES), rng.pick(COLOUR_NAMES), null), {}));

  for (const t of targets) {
    if (rng.next() >= 0.4) continue;
    const of = layout.plans[t]!;
    // half the look-alikes sit right next to the original, where telling them apart matters most
    const area = rng.next() < 0.5 ? nearArea(of, of.size * 4) : [0, 0, width, height] as Box;
    layout.place(lookalike(rng, long, of), { lookalikeOf: t, area });
  }
  return layout.plans;
}

/** Draws the planned objects and measures their boxes; ids are plan indices. */
function drawObjects(canvas: Canvas, rng: Rng, plans: readonly Plan[]): SceneObject[] {
  return plans.map((p, id) => {
    const extent = new Extent();
    const rgb = jitter(rng, rgbOf(p.colour), 12);
    const labelRgb = p.labelColour === null ? null : jitter(rng, rgbOf(p.labelColour), 8);
    const base = { id, colour: p.colour, rgb, center: [p.cx, p.cy] as const, size: p.size, group: p.group, lookalikeOf: p.lookalikeOf };
    if (p.kind === 'sign') {
      fillRect(canvas, p.cx - p.hw, p.cy - p.hh, p.cx + p.hw, p.cy + p.hh, { colour: rgb, extent });
      drawText(canvas, p.label, p.cx, p.cy, p.textHeight, { colour: labelRgb!, extent });
      return { ...base, kind: 'sign', label: p.label, labelColour: p.labelColour, labelRgb: labelRgb!, box: extent.box() };
    }
    fillPolygon(canvas, shapeRings(p.shape, p.cx, p.cy, p.size, p.rotation), { colour: rgb, extent });
    const fit = LABEL_FIT[p.shape];
    if (p.label !== null && fit !== null) {
      drawText(canvas, p.label, p.cx, p.cy + fit.dy * p.size, fit.scale * p.size, { colour: labelRgb!, extent });
    }
    return { ...base, kind: 'shape', shape: p.shape, rotation: p.rotation, label: p.label, labelColour: p.labelColour, labelRgb, box: extent.box() };
  });
}

// ---------------------------------------------------------------------------------------------
// Captions

/** The words of one object for a relation caption (the `description` templates). */
function describe(rng: Rng, o: SceneObject): string {
  const [plain, marked, sign] = CAPTION_GRAMMAR.description;
  if (o.kind === 'sign') return fill(sign, { colour: o.colour, text: o.label });
  if (o.label !== null && rng.next() < 0.5) return fill(marked, { colour: o.colour, shape: o.shape, label: o.label });
  return fill(plain, { colour: o.colour, shape: o.shape });
}

/** Whether `describe` could give both objects the same words. */
function sameDescription(a: SceneObject, b: SceneObject): boolean {
  return a.kind === 'sign' ? b.kind === 'sign' && a.colour === b.colour && a.label === b.label : sameLook(a, b);
}

function sameLook(a: SceneObject, b: SceneObject): boolean {
  return a.kind === 'shape' && b.kind === 'shape' && a.shape === b.shape && a.colour === b.colour;
}

/**
 * Every object that looks like `like` (same shape and colour) touching the union of the given
 * objects' boxes, grown until no more touch: what a count over that box must include.
 */
function countClosure(objects: readonly SceneObject[], like: SceneObject, start: readonly SceneObject[]): { members: SceneObject[]; box: Box } {
  let box = union(start.map((o) => o.box));
  let members: SceneObject[] = [];
  for (;;) {
    const next = objects.filter((o) => sameLook(o, like) && overlaps(o.box, box));
    const grown = union([box, ...next.map((o) => o.box)]);
    if (next.length === members.length && grown.every((v, i) => v === box[i])) return { members: next, box };
    members = next;
    box = grown;
  }
}

function region(kind: RegionKind, caption: string, named: readonly SceneObject[]): SceneRegion {
  return { kind, caption, box: union(named.map((o) => o.box)), objectIds: named.map((o) => o.id) };
}

/** Every region the scene could be described by, each with its caption. */
function regionCandidates(rng: Rng, objects: readonly SceneObject[]): SceneRegion[] {
  const out: SceneRegion[] = [];
  const g = CAPTION_GRAMMAR;
  for (const o of objects) {
    if (o.kind === 'sign') {
      out.push(region('sign', fill(rng.pick(g.sign), { colour: o.colour, labelColour: o.labelColour, text: o.label }), [o]));
    } else if (o.label !== null) {
      const slots = { colour: o.colour, shape: o.shape, label: o.label, kind: kindOf(o.label), labelColour: o.labelColour! };
      out.push(region('labelled', fill(rng.pick(g.labelled), slots), [o]));
    } else {
      out.push(region('plain', fill(rng.pick(g.plain), { colour: o.colour, shape: o.shape }), [o]));
    }
  }

  const signs = objects.filter((o): o is SignObject => o.kind === 'sign');
  const groupIds = [...new Set(objects.map((o) => o.group).filter((x): x is number => x !== null))];
  for (const gid of groupIds) {
    const members = objects.filter((o) => o.group === gid);
    const like = members[0]!;
    if (like.kind !== 'shape') continue;
    const closure = countClosure(objects, like, members);
    const slots = { colour: like.colour, shapes: PLURAL[like.shape] };
    if (closure.members.length >= 2 && closure.members.length <= 9) {
      out.push(region('group', fill(rng.pick(g.group), { ...slots, count: NUMBER_WORDS[closure.members.length]! }), closure.members));
    }
    const reach = 6 * like.size;
    const around: Box = [closure.box[0] - reach, closure.box[1] - reach, closure.box[2] + reach, closure.box[3] + reach];
    const near = signs.find((s) => overlaps(s.box, around));
    if (near === undefined) continue;
    // the sign widens the box, which may take in more of the group's look-alikes: count again
    const withSign = countClosure(objects, like, [...closure.members, near]);
    const n = withSign.members.length;
    if (n >= 2 && n <= 9) {
      const caption = fill(rng.pick(g.groupNearSign), { ...slots, count: NUMBER_WORDS[n]!, signColour: near.colour, text: near.label });
      out.push(region('groupNearSign', caption, [...withSign.members, near]));
    }
  }

  for (let i = 0; i < objects.length; i++) {
    for (let j = i + 1; j < objects.length; j++) {
      const a = objects[i]!;
      const b = objects[j]!;
      if (a.group !== null && a.group === b.group) continue;
      const dx = b.center[0] - a.center[0];
      const dy = b.center[1] - a.center[1];
      if (Math.hypot(dx, dy) > 4 * Math.max(a.size, b.size)) continue;
      // "the red circle is left of a blue star" must single out its objects within the box
      const box = union([a.box, b.box]);
      if (objects.some((o) => o !== a && o !== b && overlaps(o.box, box) && (sameDescription(o, a) || sameDescription(o, b)))) continue;
      // where a is, seen from b; diagonal neighbours are only "next to" each other
      const where = Math.abs(dx) > 2 * Math.abs(dy) ? (dx > 0 ? 'left' : 'right') : Math.abs(dy) > 2 * Math.abs(dx) ? (dy > 0 ? 'above' : 'below') : 'near';
      const caption = fill(rng.pick(g.relation), { a: describe(rng, a), b: describe(rng, b), relation: rng.pick(RELATIONS[where]) });
      out.push(region('relation', caption, [a, b]));
    }
  }
  return out;
}

/** Picks up to `wanted` regions with distinct boxes, taking kinds in turn so every kind shows up. */
function chooseRegions(rng: Rng, candidates: SceneRegion[], wanted: number): SceneRegion[] {
  const byKind = new Map<RegionKind, SceneRegion[]>();
  for (const c of rng.shuffle(candidates)) byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c]);
  const queues = rng.shuffle([...byKind.values()]);
  const out: SceneRegion[] = [];
  const seen = new Set<string>();
  while (out.length < wanted && queues.some((q) => q.length > 0)) {
    for (const q of queues) {
      const r = q.shift();
      if (r === undefined || out.length >= wanted || seen.has(r.box.join(','))) continue;
      seen.add(r.box.join(','));
      out.push(r);
    }
  }
  return out;
}

function globalCaption(rng: Rng, objects: readonly SceneObject[], background: Background): string {
  const g = CAPTION_GRAMMAR;
  const shapes = objects.filter((o): o is ShapeObject => o.kind === 'shape');
  const signs = objects.length - shapes.length;
  const l = luminance(background.mean);
  const tone = l > 150 ? 'light' : l < 90 ? 'dark' : 'muted';
  let first = fill(rng.pick(g.global), { n: String(shapes.length), m: String(signs), tone });
  // the templates say "shapes"/"signs"; a count of one takes the singular
  if (shapes.length === 1) first = first.replace(/\b1 small shapes\b/, '1 small shape');
  if (signs === 1) first = first.replace(/\b1 signs\b/, '1 sign');
  const sentences = [first];

  const colourCount = new Map<ColourName, number>();
  for (const o of objects) colourCount.set(o.colour, (colourCount.get(o.colour) ?? 0) + 1);
  const ranked = COLOUR_NAMES.filter((c) => colourCount.has(c)).sort((a, b) => colourCount.get(b)! - colourCount.get(a)!);
  if (ranked.length >= 2) sentences.push(fill(rng.pick(g.globalColours), { colour: ranked[0]!, otherColour: ranked[1]! }));

  // the most frequent look (shape and colour), counted exactly
  const looks = new Map<string, ShapeObject[]>();
  for (const s of shapes) looks.set(`${s.colour} ${s.shape}`, [...(looks.get(`${s.colour} ${s.shape}`) ?? []), s]);
  const top = [...looks.values()].sort((a, b) => b.length - a.length)[0];
  if (top !== undefined && top.length <= 9) {
    const [many, holds, one] = g.globalCount;
    const slots = { count: NUMBER_WORDS[top.length]!, colour: top[0]!.colour, shapes: PLURAL[top[0]!.shape], shape: top[0]!.shape };
    sentences.push(fill(top.length === 1 ? one : rng.pick([many, holds]), slots));
  }
  if (background.grid) sentences.push(rng.pick(g.globalGrid));
  return `${sentences.join('. ')}.`;
}

// ---------------------------------------------------------------------------------------------
// One scene

export interface SceneSize {
  readonly width: number;
  readonly height: number;
}

/** Renders one scene; the same Rng state and size give the same scene, pixel for pixel. */
export function renderScene(rng: Rng, size: SceneSize): Scene {
  const { width, height } = size;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 32 || height < 32) {
    throw new RangeError(`renderScene: size must be whole pixels of at least 32, got ${width} x ${height}`);
  }
  const long = Math.max(width, height);
  const canvas = createCanvas(width, height);
  const background = paintBackground(canvas, rng, long);
  const plans = planObjects(canvas, rng, long);
  paintClutter(canvas, rng, long, plans.map((p) => [p.cx - p.hw, p.cy - p.hh, p.cx + p.hw, p.cy + p.hh] as Box));
  const objects = drawObjects(canvas, rng, plans);
  const regions = chooseRegions(rng, regionCandidates(rng, objects), rng.int(4, 8));
  return { rgb: canvas.rgb, width, height, objects, regions, globalCaption: globalCaption(rng, objects, background) };
}

// ---------------------------------------------------------------------------------------------
// Data sets

export type ImageFormat = 'png' | 'jpg';

/**
 * Encodes an RGB buffer with fixed options, so the bytes depend on the pixels only. PNG is
 * lossless (tiny glyphs stay crisp); JPEG keeps full-resolution chroma (4:4:4) for the same
 * reason, at quality 92.
 */
export async function encodeImage(rgb: Uint8Array, width: number, height: number, format: ImageFormat): Promise<Buffer> {
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  return format === 'png'
    ? image.png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer()
    : image.jpeg({ quality: 92, chromaSubsampling: '4:4:4', progressive: false }).toBuffer();
}

/** The annotation record of one image in the reference format (ps3-spec §3). */
export interface SynthAnnotation {
  readonly text: string[];
  readonly box: Box[];
  readonly global_text: string;
  readonly type: 'synth';
}

export function sceneAnnotation(scene: Scene): SynthAnnotation {
  return { text: scene.regions.map((r) => r.caption), box: scene.regions.map((r) => [...r.box]), global_text: scene.globalCaption, type: 'synth' };
}

/** Sample keys: zero-padded to 9 digits, so they sort as they count. */
export function sampleKey(index: number): string {
  return String(index).padStart(9, '0');
}

/** The Rng of image `index`: independent of every other image's, whatever the shard size. */
export function sceneRng(seed: number, index: number): Rng {
  return new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0).fork();
}

export interface SynthDatasetOptions {
  readonly out: string;
  readonly count: number;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly perShard: number;
  readonly format: ImageFormat;
}

export interface SynthProgress {
  /** images written so far */
  readonly done: number;
  /** bytes of images and annotations written so far (before tar headers) */
  readonly bytes: number;
}

export interface SynthSummary {
  readonly images: number;
  readonly captions: number;
  /** bytes of both tar sets on disk */
  readonly bytes: number;
  readonly imageShards: readonly string[];
  readonly annotationShards: readonly string[];
  readonly seconds: number;
}

/**
 * Writes `count` scenes as two key-matched webdataset tar sets, `out/images/shard-NNNNNN.tar`
 * (KEY.png or KEY.jpg) and `out/annotations/shard-NNNNNN.tar` (KEY.json). The next scene is
 * rendered while sharp encodes the previous one on its own thread; entries still go in key order.
 */
export async function writeSynthDataset(options: SynthDatasetOptions, onProgress?: (p: SynthProgress) => void): Promise<SynthSummary> {
  const { out, count, width, height, seed, perShard, format } = options;
  const started = performance.now();
  const imageDir = join(out, 'images');
  const annotationDir = join(out, 'annotations');
  await mkdir(imageDir, { recursive: true });
  await mkdir(annotationDir, { recursive: true });
  const images = new ShardWriter(imageDir, perShard);
  const annotations = new ShardWriter(annotationDir, perShard);
  let captions = 0;
  let bytes = 0;
  let pending: { key: string; encoded: Promise<Buffer>; json: Buffer } | null = null;
  const flush = async (): Promise<void> => {
    if (pending === null) return;
    const { key, encoded, json } = pending;
    pending = null;
    const data = await encoded;
    await images.write(key, [{ ext: format, data }]);
    await annotations.write(key, [{ ext: 'json', data: json }]);
    bytes += data.byteLength + json.byteLength;
    onProgress?.({ done: images.samples, bytes });
  };
  for (let index = 0; index < count; index++) {
    const scene = renderScene(sceneRng(seed, index), { width, height });
    const encoded = encodeImage(scene.rgb, width, height, format);
    // keep the rejection handled while this promise waits behind the previous image
    encoded.catch(() => undefined);
    captions += scene.regions.length + 1;
    await flush();
    pending = { key: sampleKey(index), encoded, json: Buffer.from(`${JSON.stringify(sceneAnnotation(scene))}\n`) };
  }
  await flush();
  const imageSet = await images.close();
  const annotationSet = await annotations.close();
  return {
    images: count,
    captions,
    bytes: imageSet.bytes + annotationSet.bytes,
    imageShards: imageSet.shards,
    annotationShards: annotationSet.shards,
    seconds: (performance.now() - started) / 1000,
  };
}
