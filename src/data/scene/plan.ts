/**
 * Where a scene's objects go and what they are: clusters of alike shapes, signs, labelled and
 * plain shapes, and look-alikes (one attribute changed) of some of them, each placed on a free
 * spot where its colour stands out from the background.
 */
import type { Rng } from '../../rng.js';
import { pixel, type Box, type Canvas } from '../draw.js';
import { GLYPH_CHARS, textWidth } from '../glyphs.js';
import { overlaps } from './boxes.js';
import { signCode, SIMILAR_CHARS, similarCode } from './characters.js';
import { COLOUR_NAMES, colourDistance, contrastingColours, rgbOf, SIMILAR_COLOURS, type ColourName } from './colours.js';
import { LABEL_FIT, LABELLED_SHAPES, SHAPES, SIMILAR_SHAPES, type ShapeName } from './shapes.js';

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
export type Plan = Design & { readonly cx: number; readonly cy: number; readonly group: number | null; readonly lookalikeOf: number | null };

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
export function planObjects(canvas: Canvas, rng: Rng, long: number): Plan[] {
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
