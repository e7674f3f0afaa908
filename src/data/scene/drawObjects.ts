/** Draws planned objects onto the canvas and records what was drawn, with each object's tight box. */
import type { Rng } from '../../rng.js';
import { ellipse, Extent, fillPolygon, fillRect, regularPolygon, rotate, type Canvas, type Point } from '../draw.js';
import { drawText } from '../glyphs.js';
import { jitter, rgbOf } from './colours.js';
import type { Plan } from './plan.js';
import { LABEL_FIT, type ShapeName } from './shapes.js';
import type { SceneObject } from './types.js';

/** The rings of a shape of diameter s centred at (cx, cy), for fillPolygon. */
export function shapeRings(shape: ShapeName, cx: number, cy: number, s: number, rot: number): Point[][] {
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

/** Draws the planned objects and measures their boxes; ids are plan indices. */
export function drawObjects(canvas: Canvas, rng: Rng, plans: readonly Plan[]): SceneObject[] {
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
