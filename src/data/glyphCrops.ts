/**
 * Crops of one character each, for a reading stage: a glyph of GLYPH_CHARS at a random size and
 * place on a plain square, in a palette that changes along a curriculum.
 *
 * Why a curriculum: the patch embedding is linear in RGB, so a two-colour glyph is its stroke
 * pattern times a colour difference whose direction changes with every pair. From contrastive
 * pre-training, a trunk shown coloured glyphs from the start stays near chance for 100,000 crops;
 * shown greys first (one direction, either sign), it learns the strokes, and colours then come
 * far faster (models/ps3-tiny/TRAINING.md, "What makes reading slow for this trunk").
 *
 * A crop is a function of (seed, index) alone, so a resumed run draws what an uninterrupted one
 * would, and a held-out set is another seed.
 */
import { UserError } from '../errors.js';
import { fnv1a, Rng } from '../rng.js';
import { createCanvas, fillPolygon, fillRect, type Rgb } from './draw.js';
import { drawText, GLYPH_CHARS, GLYPH_COLS, GLYPH_ROWS } from './glyphs.js';
import { COLOUR_NAMES, contrastingColours, jitter, luminance, rgbOf } from './scene/colours.js';
import { mutedColour } from './scene/background.js';
import { shapeRings } from './scene/drawObjects.js';
import { LABEL_FIT, SHAPES } from './scene/shapes.js';

/**
 * `grey`: two greys at least 100 apart, either one the glyph; `named`: the scenes' label colours,
 * a named colour on a named colour at least 90 apart in luminance, each jittered as the scenes
 * jitter them; `random`: any two colours at least 90 apart in luminance; `shape`: a labelled
 * object as the scenes draw one — the glyph in a named colour on a shape of a contrasting named
 * colour, sized to hold it as the scenes size it, on a muted ground; the shape's edges may run
 * through the crop.
 */
export const PALETTES = ['grey', 'named', 'random', 'shape'] as const;
export type Palette = (typeof PALETTES)[number];

export interface CurriculumStage {
  readonly palette: Palette;
  /** crops drawn in this palette before the next stage; null for the last, which goes on */
  readonly crops: number | null;
}

export interface GlyphCropSpec {
  /** side of the square crop in pixels */
  readonly size: number;
  /** glyph height range in pixels, both ends included */
  readonly glyphPx: readonly [number, number];
  readonly curriculum: readonly CurriculumStage[];
}

export interface GlyphCrop {
  /** [size, size, 3] bytes, row-major */
  readonly rgb: Uint8Array;
  /** index into GLYPH_CHARS */
  readonly char: number;
  readonly palette: Palette;
}

/** Luminance contrast of the scenes' labels against what they are drawn on (colours.ts). */
const MIN_LUMINANCE_CONTRAST = 90;
const MIN_GREY_CONTRAST = 100;
/** the scenes jitter a label's colour by this much, and a shape's by this (drawObjects.ts) */
const SCENE_JITTER = 8;
const SHAPE_JITTER = 12;
/** shapes that hold a label, and how (shapes.ts) */
const LABELLED = SHAPES.flatMap((shape) => {
  const fit = LABEL_FIT[shape];
  return fit === null ? [] : [{ shape, fit }];
});

/** `grey:15000,named`: every stage but the last with its crop count, the last going on. */
export function parseCurriculum(text: string): CurriculumStage[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new UserError(`--curriculum "${text}": give stages as PALETTE:CROPS,...,PALETTE (palettes ${PALETTES.join(', ')})`);
  return parts.map((part, i) => {
    const [name, count, extra] = part.split(':');
    if (!(PALETTES as readonly string[]).includes(name!)) throw new UserError(`--curriculum: unknown palette "${name}" (choose ${PALETTES.join(', ')})`);
    const last = i === parts.length - 1;
    if (last) {
      if (count !== undefined) throw new UserError(`--curriculum: the last stage goes on to the end of the run, so it takes no count ("${part}")`);
      return { palette: name as Palette, crops: null };
    }
    if (extra !== undefined || count === undefined || !/^[1-9]\d*$/.test(count)) throw new UserError(`--curriculum: stage "${part}" needs a positive whole count of crops (PALETTE:CROPS)`);
    return { palette: name as Palette, crops: Number(count) };
  });
}

/** The palette of crop `index` along the curriculum. */
export function paletteAt(curriculum: readonly CurriculumStage[], index: number): Palette {
  let start = 0;
  for (const stage of curriculum) {
    if (stage.crops === null || index < start + stage.crops) return stage.palette;
    start += stage.crops;
  }
  return curriculum[curriculum.length - 1]!.palette;
}

/** Whether a glyph of the tallest height fits the crop whole, with a pixel to spare each side. */
export function checkGlyphCropSpec(spec: GlyphCropSpec): void {
  const [lo, hi] = spec.glyphPx;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < GLYPH_ROWS || hi < lo) throw new UserError(`--glyph-px ${lo}-${hi}: give whole heights MIN-MAX with ${GLYPH_ROWS} <= MIN <= MAX (a glyph is ${GLYPH_ROWS} cells tall)`);
  if (hi + 2 > spec.size) throw new UserError(`--glyph-px ${lo}-${hi}: a ${hi} px glyph does not fit a ${spec.size} px crop (at most ${spec.size - 2})`);
}

function randomRgb(rng: Rng): Rgb {
  return [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)];
}

/** [background, glyph] colours of one crop. */
function colours(rng: Rng, palette: Palette): [Rgb, Rgb] {
  if (palette === 'grey') {
    let a = rng.int(0, 255);
    let b = rng.int(0, 255);
    while (Math.abs(a - b) < MIN_GREY_CONTRAST) [a, b] = [rng.int(0, 255), rng.int(0, 255)];
    return [[a, a, a], [b, b, b]];
  }
  if (palette === 'named' || palette === 'shape') {
    const ground = rng.pick(COLOUR_NAMES);
    const glyph = rng.pick(contrastingColours(rgbOf(ground)));
    return [jitter(rng, rgbOf(ground), palette === 'shape' ? SHAPE_JITTER : SCENE_JITTER), jitter(rng, rgbOf(glyph), SCENE_JITTER)];
  }
  const ground = randomRgb(rng);
  let glyph = randomRgb(rng);
  while (Math.abs(luminance(glyph) - luminance(ground)) <= MIN_LUMINANCE_CONTRAST) glyph = randomRgb(rng);
  return [ground, glyph];
}

/** Crop `index` of the stream `seed`, in the curriculum's palette for that index unless one is given. */
export function glyphCrop(spec: GlyphCropSpec, seed: number, index: number, palette: Palette = paletteAt(spec.curriculum, index)): GlyphCrop {
  const rng = new Rng(fnv1a([seed, index, PALETTES.indexOf(palette)]));
  const C = spec.size;
  const canvas = createCanvas(C, C);
  const [ground, ink] = colours(rng, palette);
  const height = rng.int(spec.glyphPx[0], spec.glyphPx[1]);
  const width = (height * GLYPH_COLS) / GLYPH_ROWS;
  const char = rng.int(0, GLYPH_CHARS.length - 1);
  // anywhere, whole, a pixel from each edge
  const cx = width / 2 + 1 + rng.next() * (C - width - 2);
  const cy = height / 2 + 1 + rng.next() * (C - height - 2);
  if (palette === 'shape') {
    // the shape's colour is `ground`; around it a muted scene ground
    fillRect(canvas, 0, 0, C, C, { colour: mutedColour(rng, rng.uniform(50, 210)) });
    const { shape, fit } = rng.pick(LABELLED);
    const size = height / fit.scale;
    const rotation = shape === 'circle' ? 0 : rng.uniform(-0.25, 0.25);
    fillPolygon(canvas, shapeRings(shape, cx, cy - fit.dy * size, size, rotation), { colour: ground });
  } else fillRect(canvas, 0, 0, C, C, { colour: ground });
  drawText(canvas, GLYPH_CHARS[char]!, cx, cy, height, { colour: ink });
  return { rgb: canvas.rgb, char, palette };
}
