/** Clutter: object-sized marks on the background that are not objects. */
import type { Rng } from '../../rng.js';
import { ellipse, fillPolygon, strokeQuad, type Box, type Canvas, type Point } from '../draw.js';
import { drawText, GLYPH_CHARS } from '../glyphs.js';
import { mutedColour } from './background.js';
import { overlaps } from './boxes.js';
import { COLOUR_NAMES, jitter, rgbOf } from './colours.js';

/**
 * Clutter that is not an object: irregular polygons, elongated ellipses (circles at low
 * resolution), thick strokes and stray characters, some in the objects' saturated colours, all of
 * object size, so "where are the objects" is not answered by colour or size alone. Kept out of
 * the objects' reserved boxes so it never merges with them.
 */
export function paintClutter(canvas: Canvas, rng: Rng, long: number, reserved: readonly Box[]): void {
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
