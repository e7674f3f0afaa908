/**
 * Batches for the reading objective and its held-out measures: glyph crops of the curriculum's
 * palettes (another seed than training's), and the single characters of held-out scenes cut as a
 * look sees them (data/sceneGlyphs.ts) — whether what the crops teach carries over to the scenes.
 */
import { fnv1a, Rng } from '../rng.js';
import { imageProcessor, type PS3Model } from '../model/load.js';
import { normalise } from '../io/pixels.js';
import type { Weights } from '../model/weights.js';
import { renderScene } from '../data/scene/render.js';
import { sceneRng } from '../data/synth.js';
import { VALIDATION_SEED } from '../data/qa/generate.js';
import { glyphCrop, PALETTES, type GlyphCropSpec, type Palette } from '../data/glyphCrops.js';
import { GLYPH_CHARS } from '../data/glyphs.js';
import { sceneGlyphs, type SceneGlyph } from '../data/sceneGlyphs.js';
import { blockCells, readingPredictions, type ReadingBatch } from './reading.js';

/**
 * A run's own checks draw their crops from this seed plus the run's, and their scenes from this
 * seed (as `ps3 train --eval-every` does): held out, and apart from `ps3 eval reading`'s default
 * seeds, so that watching them while choosing a curriculum never tunes on the evaluation.
 */
export const READING_VALIDATION_BASE = VALIDATION_SEED;
const CHUNK = 64;

interface PlacedCrop {
  /** [side, side, 3] bytes */
  readonly rgb: Uint8Array;
  readonly char: number;
  /** first row and column of the crop's block on the top scale's patch grid */
  readonly row0: number;
  readonly col0: number;
}

function topGrid(model: PS3Model): number {
  const v = model.config.vision;
  return Math.floor(v.scales[v.scales.length - 1]! / v.trunk.patchSize);
}

/** Crops as a batch: pixels normalised as the model's processor does, each crop's cells on the top scale's grid. */
export function toReadingBatch(model: PS3Model, side: number, crops: readonly PlacedCrop[]): ReadingBatch {
  const P = model.config.vision.trunk.patchSize;
  const grid = topGrid(model);
  const g = side / P;
  const { mean, std } = imageProcessor(model);
  const pixels = new Float32Array(crops.length * 3 * side * side);
  const cells = new Int32Array(crops.length * g * g);
  crops.forEach((crop, i) => {
    normalise({ data: crop.rgb, width: side, height: side }, mean, std, pixels.subarray(i * 3 * side * side, (i + 1) * 3 * side * side));
    cells.set(blockCells(crop.row0, crop.col0, g, grid), i * g * g);
  });
  return { batch: crops.length, side, pixels, cells, labels: Int32Array.from(crops, (c) => c.char) };
}

/**
 * Glyph crops `from` .. `from + count - 1` of stream `seed` as a batch, each at a random place on
 * the top scale's grid (a function of the seed and the crop's index), in the curriculum's palette
 * for its index unless one is given.
 */
export function glyphBatch(model: PS3Model, spec: GlyphCropSpec, seed: number, from: number, count: number, palette?: Palette): ReadingBatch {
  const room = topGrid(model) - spec.size / model.config.vision.trunk.patchSize;
  const crops = Array.from({ length: count }, (_, i): PlacedCrop => {
    const place = new Rng(fnv1a([seed, from + i], 0x706c6163));
    return { ...glyphCrop(spec, seed, from + i, palette), row0: place.int(0, room), col0: place.int(0, room) };
  });
  return toReadingBatch(model, spec.size, crops);
}

/** Whether each crop of the batches was read right, in order. */
function verdicts(w: Weights, model: PS3Model, batches: readonly ReadingBatch[]): boolean[] {
  return batches.flatMap((b) => {
    const predicted = readingPredictions(w, model.config.vision, b);
    return Array.from(b.labels, (label, i) => predicted[i] === label);
  });
}

function shareTrue(xs: readonly boolean[]): number {
  return xs.length ? xs.filter(Boolean).length / xs.length : NaN;
}

/** `crops` held-out crops of stream `seed` in one palette, batched once to be read again at every check. */
export function heldOutCrops(model: PS3Model, spec: GlyphCropSpec, seed: number, crops: number, palette: Palette): ReadingBatch[] {
  const batches: ReadingBatch[] = [];
  for (let from = 0; from < crops; from += CHUNK) batches.push(glyphBatch(model, spec, seed, from, Math.min(CHUNK, crops - from), palette));
  return batches;
}

/** Held-out crops of each palette the curriculum meets (`heldOutCrops`). */
export function curriculumCrops(model: PS3Model, spec: GlyphCropSpec, seed: number, crops: number): Map<Palette, ReadingBatch[]> {
  return new Map([...new Set(spec.curriculum.map((s) => s.palette))].map((p) => [p, heldOutCrops(model, spec, seed, crops, p)]));
}

/** Accuracy on each palette's held-out crops, as `val_PALETTE`. */
export function readingAccuracy(model: PS3Model, w: Weights, sets: ReadonlyMap<Palette, readonly ReadingBatch[]>): Record<`val_${string}`, number> {
  return Object.fromEntries([...sets].map(([palette, batches]) => [`val_${palette}`, shareTrue(verdicts(w, model, batches))]));
}

/** The single characters of held-out scenes, cut and batched once, to be read again at every check. */
export interface SceneReadingSet {
  readonly batches: readonly ReadingBatch[];
  readonly glyphs: readonly Omit<SceneGlyph, 'rgb'>[];
  readonly scenes: number;
}

/**
 * Scenes `seed`, indices 0 .. scenes - 1 (held-out seeds: from 1000000), drawn at the model's top
 * scale as `ps3 data synth` draws them; their one-character labels that lie whole in a block of
 * `side` px.
 */
export function sceneReadingSet(model: PS3Model, seed: number, scenes: number, side: number, onScene?: (done: number) => void): SceneReadingSet {
  const v = model.config.vision;
  const S = v.scales[v.scales.length - 1]!;
  const P = v.trunk.patchSize;
  const glyphs: SceneGlyph[] = [];
  for (let i = 0; i < scenes; i++) {
    glyphs.push(...sceneGlyphs(renderScene(sceneRng(seed, i), { width: S, height: S }), P, side / P));
    onScene?.(i + 1);
  }
  const batches: ReadingBatch[] = [];
  for (let from = 0; from < glyphs.length; from += CHUNK) batches.push(toReadingBatch(model, side, glyphs.slice(from, from + CHUNK)));
  return { batches, glyphs: glyphs.map(({ rgb: _rgb, ...rest }) => rest), scenes };
}

/** Accuracy on the set's scene glyphs, and whether each was read right (in the set's order). */
export function sceneReadingAccuracy(model: PS3Model, w: Weights, set: SceneReadingSet): { accuracy: number; correct: boolean[] } {
  const correct = verdicts(w, model, set.batches);
  return { accuracy: shareTrue(correct), correct };
}

/** Glyph height bins of the scene report, in pixels (the scenes' labels are 12-57 px at 3780). */
const HEIGHT_BINS: readonly (readonly [number, number])[] = [[0, 20], [20, 28], [28, 36], [36, 44], [44, Infinity]];

export interface ReadingReport {
  /** held-out accuracy on glyph crops of each palette */
  readonly crops: Record<Palette, number>;
  readonly cropsPerPalette: number;
  readonly scenes: {
    readonly count: number;
    readonly glyphs: number;
    readonly accuracy: number;
    readonly byKind: Record<string, { n: number; accuracy: number }>;
    readonly byHeight: Array<{ px: string; n: number; accuracy: number }>;
  };
  readonly chance: number;
}

/** The reading head on held-out crops of every palette (stream `cropSeed`) and on held-out scenes' characters. */
export function readingReport(model: PS3Model, w: Weights, o: { spec: GlyphCropSpec; cropSeed: number; crops: number; scenes: SceneReadingSet }): ReadingReport {
  const crops = {} as Record<Palette, number>;
  for (const palette of PALETTES) crops[palette] = shareTrue(verdicts(w, model, heldOutCrops(model, o.spec, o.cropSeed, o.crops, palette)));
  const { accuracy, correct } = sceneReadingAccuracy(model, w, o.scenes);
  const share = (keep: (g: Omit<SceneGlyph, 'rgb'>) => boolean): { n: number; accuracy: number } => {
    const hits = o.scenes.glyphs.flatMap((g, i) => (keep(g) ? [correct[i]!] : []));
    return { n: hits.length, accuracy: shareTrue(hits) };
  };
  const kinds = [...new Set(o.scenes.glyphs.map((g) => g.kind))];
  return {
    crops,
    cropsPerPalette: o.crops,
    scenes: {
      count: o.scenes.scenes,
      glyphs: o.scenes.glyphs.length,
      accuracy,
      byKind: Object.fromEntries(kinds.map((k) => [k, share((g) => g.kind === k)])),
      byHeight: HEIGHT_BINS.map(([lo, hi]) => ({ px: hi === Infinity ? `${lo}+` : `${lo}-${hi}`, ...share((g) => g.height >= lo && g.height < hi) })),
    },
    chance: 1 / GLYPH_CHARS.length,
  };
}
