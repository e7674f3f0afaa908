/**
 * The single characters of a rendered scene as a high-res look sees them: for each object whose
 * label is one character, the block of `cells` x `cells` patches of the scene's grid nearest
 * centred on the glyph, kept when the glyph lies whole inside it. What a reading stage must
 * carry over to: the glyph at the grid's offset, on its shape or plate, beside the scene.
 */
import { GLYPH_CHARS, textWidth } from './glyphs.js';
import { LABEL_FIT } from './scene/shapes.js';
import type { Scene, SceneObject } from './scene/types.js';

export interface SceneGlyph {
  /** [cells * patch, cells * patch, 3] bytes, row-major */
  readonly rgb: Uint8Array;
  /** index into GLYPH_CHARS */
  readonly char: number;
  /** the block's first row and column on the scene's patch grid */
  readonly row0: number;
  readonly col0: number;
  /** glyph height in pixels */
  readonly height: number;
  readonly kind: SceneObject['kind'];
}

/** A sign's plate is 1.7 text heights tall and its text plus 0.9 heights wide (plan.ts), so a one-character plate's size is 1.7 heights. */
const SIGN_PLATE_HEIGHTS = 1.7;

/** Where a one-character label is drawn: centre and height; null for objects without one. */
function glyphOf(o: SceneObject): { cx: number; cy: number; height: number } | null {
  if (o.label === null || o.label.length !== 1) return null;
  if (o.kind === 'sign') return { cx: o.center[0], cy: o.center[1], height: o.size / SIGN_PLATE_HEIGHTS };
  const fit = LABEL_FIT[o.shape];
  if (fit === null) return null;
  return { cx: o.center[0], cy: o.center[1] + fit.dy * o.size, height: fit.scale * o.size };
}

export function sceneGlyphs(scene: Scene, patch: number, cells: number): SceneGlyph[] {
  const side = patch * cells;
  const gridW = Math.floor(scene.width / patch);
  const gridH = Math.floor(scene.height / patch);
  if (gridW < cells || gridH < cells) return [];
  const out: SceneGlyph[] = [];
  for (const o of scene.objects) {
    const g = glyphOf(o);
    if (g === null) continue;
    const halfW = textWidth(o.label!, g.height) / 2;
    const col0 = Math.min(gridW - cells, Math.max(0, Math.round(g.cx / patch - cells / 2)));
    const row0 = Math.min(gridH - cells, Math.max(0, Math.round(g.cy / patch - cells / 2)));
    const [x0, y0] = [col0 * patch, row0 * patch];
    if (g.cx - halfW < x0 || g.cx + halfW > x0 + side || g.cy - g.height / 2 < y0 || g.cy + g.height / 2 > y0 + side) continue;
    const rgb = new Uint8Array(side * side * 3);
    for (let y = 0; y < side; y++) rgb.set(scene.rgb.subarray(((y0 + y) * scene.width + x0) * 3, ((y0 + y) * scene.width + x0 + side) * 3), y * side * 3);
    out.push({ rgb, char: GLYPH_CHARS.indexOf(o.label!.toUpperCase()), row0, col0, height: g.height, kind: o.kind });
  }
  return out;
}

/** A sign's code as a look sees it: the patch-grid span of its text. */
export interface SceneSign {
  readonly code: string;
  readonly colour: string;
  /** first row and column, and one past the last, on the scene's patch grid */
  readonly rows: readonly [number, number];
  readonly cols: readonly [number, number];
}

/**
 * Every sign of a scene with the grid span of its text (1-3 characters, centred on the plate,
 * drawn 1 / SIGN_PLATE_HEIGHTS of the plate's height), grown to at least `cells` patches each way
 * around its centre, as the one-character blocks are, and kept inside the grid.
 */
export function sceneSigns(scene: Scene, patch: number, cells: number): SceneSign[] {
  const grid = [Math.floor(scene.height / patch), Math.floor(scene.width / patch)] as const;
  const span = (centre: number, half: number, size: number): [number, number] => {
    let [a, b] = [Math.floor((centre - half) / patch), Math.ceil((centre + half) / patch)];
    const grow = Math.max(0, cells - (b - a));
    [a, b] = [a - Math.floor(grow / 2), b + Math.ceil(grow / 2)];
    const shift = a < 0 ? -a : b > size ? size - b : 0;
    return [Math.max(0, a + shift), Math.min(size, b + shift)];
  };
  return scene.objects.flatMap((o): SceneSign[] => {
    if (o.kind !== 'sign') return [];
    const height = (o.box[3] - o.box[1]) / SIGN_PLATE_HEIGHTS;
    const [cx, cy] = o.center;
    return [{ code: o.label, colour: o.colour, rows: span(cy, height / 2, grid[0]), cols: span(cx, textWidth(o.label, height) / 2, grid[1]) }];
  });
}
