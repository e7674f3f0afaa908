/**
 * A linear probe of what PS3's top-scale tokens carry about an object: on held-out synthetic
 * scenes at the top scale, each object's box is forced into one look (the encoder's
 * `gtSelectionMaps`, as pre-training forces a caption's box; the rest of the look is chosen
 * bottom-up), the final-normed top-scale tokens inside the box are pooled into features, and a
 * one-vs-rest ridge classifier (ridge.ts) reads the object's colour, shape and character from
 * them. Scenes split by index: the first 60 % fit the classifier, the next 20 % choose its λ, the
 * last 20 % test it.
 *
 * Features of an object, from the tokens of the top-scale patches its box touches:
 *  - mean_tokens: their mean [D];
 *  - grid_tokens: a 4 x 4 grid over the box, each cell the mean of the tokens whose patch centre
 *    falls in it (a cell with none takes the box mean) [16 D]: where in the box, not only what;
 *  - pooled: the trunk's attention-pooling head over them [D], as pre-training pools a box for
 *    its caption (the feature the contrastive and caption-word terms train): what an attention
 *    readout, such as a multimodal model's, can take from the tokens that a mean cannot;
 *  - pixels (the baseline): the box's normalised input pixels area-resized to 8 x 8 [3 x 8 x 8];
 *  - projected (given a VILA-HD folder's projector): the mean of the LM inputs [W] that the
 *    projector makes of the whole 2 x 2 cells touching the box: what of the tokens reaches the LM.
 *    Each box is then forced widened to whole 2 x 2 cells, as the LM's reading stage reads an
 *    object (the projector merges only whole cells), and an object none of whose cells reached
 *    the projector whole is not probed.
 * Several objects share a look when their forced patches are disjoint and fit the look's
 * top-scale budget together (selection.ts forcingCapacity): fewer encodes, and each object's
 * patches are all chosen (an object too large for one look keeps the patches the look takes).
 */
import { tf } from '../tensor/engine.js';
import { resize } from '../tensor/resample.js';
import type { Box } from '../io/shards.js';
import type { PS3Model } from '../model/load.js';
import { encodeImage, withResizes, type Pixels } from '../model/encoder.js';
import { boxCells, boxesToGtMap, boxPixelSpan, forcingCapacity, gridAtScale, ownForcedAtTop, type ForcingCapacity } from '../model/selection.js';
import { finalNorm, mapPool } from '../model/vit.js';
import { ps3Grids } from '../mllm/visual.js';
import { blockBox, mergeBlock, mergePlan, mergeTokens, project, type TokenGrid } from '../mllm/projector.js';
import type { Weights } from '../model/weights.js';
import { renderScene } from '../data/scene/render.js';
import type { SceneObject } from '../data/scene/types.js';
import { sceneRng } from '../data/synth.js';
import type { PlotSeries, PlotSpec } from './plot.js';
import { checkHeldOutSeed, toPixels } from './retrieval.js';
import { fitRidgeClassifier, fromRows, predictRidge } from './ridge.js';

export const PROBE_ATTRIBUTES = ['colour', 'shape', 'character'] as const;
export type ProbeAttribute = (typeof PROBE_ATTRIBUTES)[number];

export const PROBE_FEATURES = ['mean_tokens', 'grid_tokens', 'pooled', 'pixels', 'projected'] as const;
export type ProbeFeature = (typeof PROBE_FEATURES)[number];
/** The features of the model's tokens alone; `projected` needs a VILA-HD projector as well. */
export const TOKEN_FEATURES: readonly ProbeFeature[] = PROBE_FEATURES.filter((f) => f !== 'projected');

/** A VILA-HD projector the probe reads through as well (`projected`): the folder's weights and the method whose projector reads PS3's tokens. */
export interface ProbeProjector {
  readonly weights: Weights;
  readonly method: string;
}

export const PROBE_SPLITS = ['fit', 'choose', 'test'] as const;
export type ProbeSplit = (typeof PROBE_SPLITS)[number];

/** The ridge penalties tried, ascending (the choose split picks one). */
export const PROBE_LAMBDAS: readonly number[] = [1e-3, 1e-2, 0.1, 1, 10, 100, 1000];

/** Fewer scenes leave a split empty. */
export const MIN_PROBE_SCENES = 5;

/** Side of the grid of token means over a box. */
const GRID_SIDE = 4;
/** Side of the pixel baseline's resize. */
const PIXEL_SIDE = 8;

/**
 * What the probe reads of an object, null where it has none: its fill colour; its shape (a sign
 * has none); the character written on it when there is exactly one (a shape's label, a
 * one-character sign code: a code of two or three says no single character).
 */
export function objectAttributes(o: SceneObject): Record<ProbeAttribute, string | null> {
  return { colour: o.colour, shape: o.kind === 'shape' ? o.shape : null, character: o.label !== null && o.label.length === 1 ? o.label : null };
}

/** Scenes per split: 20 % choose and 20 % test (at least one each), the rest fit. */
export function splitSizes(count: number): Record<ProbeSplit, number> {
  if (count < MIN_PROBE_SCENES) throw new RangeError(`splitSizes: ${count} scenes, at least ${MIN_PROBE_SCENES} needed`);
  const choose = Math.max(1, Math.round(0.2 * count));
  return { fit: count - 2 * choose, choose, test: choose };
}

function splitOf(scene: number, sizes: Record<ProbeSplit, number>): ProbeSplit {
  return scene < sizes.fit ? 'fit' : scene < sizes.fit + sizes.choose ? 'choose' : 'test';
}

/** A scene of the probe: rendered (pixels at the top scale, objects in those pixels) when loaded. */
export interface ProbeScene {
  readonly key: string;
  load(): Promise<{ readonly pixels: Pixels; readonly objects: readonly SceneObject[] }>;
}

/** `count` held-out synthetic scenes (seed >= 1e6 unless forced) drawn at `size` px, as `ps3 data synth` draws them. */
export function synthProbeScenes(seed: number, count: number, size: number, force = false): ProbeScene[] {
  checkHeldOutSeed(seed, force);
  return Array.from({ length: count }, (_, i) => ({
    key: `synth-${seed}-${i}`,
    load: async () => {
      const scene = renderScene(sceneRng(seed, i), { width: size, height: size });
      return { pixels: toPixels({ data: scene.rgb, width: size, height: size }, size), objects: scene.objects };
    },
  }));
}

/**
 * Which boxes share a look (indices into `boxes`): first fit, in order, into the first look whose
 * forced top-scale patches are disjoint from the box's and leave room for them in the budget.
 */
export function packLooks(boxes: readonly Box[], size: number, capacity: ForcingCapacity): number[][] {
  const looks: Array<{ members: number[]; forced: Set<number> }> = [];
  boxes.forEach((box, k) => {
    const own = ownForcedAtTop(box, size, capacity);
    const look = looks.find((l) => l.forced.size + own.length <= capacity.budget && own.every((g) => !l.forced.has(g)));
    if (look) {
      look.members.push(k);
      own.forEach((g) => look.forced.add(g));
    } else {
      looks.push({ members: [k], forced: new Set(own) });
    }
  });
  return looks.map((l) => l.members);
}

/** An object's features (see the file comment; `projected` null without a projector) and how many top-scale tokens they pool. */
export type ObjectFeatures = Record<Exclude<ProbeFeature, 'projected'>, Float32Array> & { readonly projected: Float32Array | null; readonly tokens: number };

/** The box's pixels [3, h, w] of `pixels` (one square image), area-resized to PIXEL_SIDE x PIXEL_SIDE. */
function boxPixels(pixels: Pixels, box: Box): Float32Array {
  const { height: H, width: W, data } = pixels;
  const { r0, r1, c0, c1 } = boxPixelSpan(box, H, W);
  const h = r1 - r0 + 1;
  const w = c1 - c0 + 1;
  const crop = new Float32Array(3 * h * w);
  for (let ch = 0; ch < 3; ch++) {
    for (let r = 0; r < h; r++) crop.set(data.subarray(ch * H * W + (r0 + r) * W + c0, ch * H * W + (r0 + r) * W + c1 + 1), ch * h * w + r * w);
  }
  return resize(crop, 3, h, w, PIXEL_SIDE, PIXEL_SIDE, 'area');
}

/** The grid cell (0..GRID_SIDE - 1) of coordinate v across [a, b]. */
function cellOf(v: number, a: number, b: number): number {
  return Math.min(GRID_SIDE - 1, Math.max(0, Math.floor((GRID_SIDE * (v - a)) / Math.max(b - a, 1e-9))));
}

/**
 * The token features of one box: `tokens` [chosen, D] are a look's final-normed top-scale tokens,
 * `row` maps a top-grid cell to its row there. Null when the look chose none of the box's patches.
 */
function tokenFeatures(tokens: Float32Array, row: ReadonlyMap<number, number>, box: Box, size: number, grid: readonly [number, number], D: number): (Pick<ObjectFeatures, 'mean_tokens' | 'grid_tokens' | 'tokens'> & { rows: number[] }) | null {
  const [gh, gw] = grid;
  const cells = boxCells(box, size, gh, gw).filter((g) => row.has(g));
  if (cells.length === 0) return null;
  const mean = new Float32Array(D);
  const cellSums = new Float32Array(GRID_SIDE * GRID_SIDE * D);
  const counts = new Uint32Array(GRID_SIDE * GRID_SIDE);
  for (const g of cells) {
    const t = tokens.subarray(row.get(g)! * D, (row.get(g)! + 1) * D);
    // the patch's centre in pixels decides its cell of the box's grid
    const cell = cellOf((Math.floor(g / gw) + 0.5) * (size / gh), box[1], box[3]) * GRID_SIDE + cellOf(((g % gw) + 0.5) * (size / gw), box[0], box[2]);
    counts[cell]! += 1;
    for (let d = 0; d < D; d++) {
      mean[d]! += t[d]! / cells.length;
      cellSums[cell * D + d]! += t[d]!;
    }
  }
  for (let c = 0; c < GRID_SIDE * GRID_SIDE; c++) {
    const cell = cellSums.subarray(c * D, (c + 1) * D);
    if (counts[c] === 0) cell.set(mean);
    else for (let d = 0; d < D; d++) cell[d]! /= counts[c]!;
  }
  return { mean_tokens: mean, grid_tokens: cellSums, tokens: cells.length, rows: cells.map((g) => row.get(g)!) };
}

/** A look's LM inputs [m, W] of its whole 2 x 2 cells on the top grid, and the four grid cells each one merges. */
async function projectLook(projector: ProbeProjector, normed: tf.Tensor, grid: TokenGrid): Promise<{ inputs: Float32Array; cells: number[][]; width: number }> {
  const plan = mergePlan([grid], normed.shape[0]!);
  const cells = Array.from({ length: plan.length / 4 }, (_, k) => Array.from(plan.subarray(4 * k, 4 * k + 4), (r) => grid.ids![r]!));
  if (cells.length === 0) return { inputs: new Float32Array(0), cells, width: 0 };
  const projected = tf.tidy(() => project(projector.weights, projector.method, mergeTokens(normed, [grid])));
  const width = projected.shape[1]!;
  const inputs = (await projected.data()) as Float32Array;
  projected.dispose();
  return { inputs, cells, width };
}

/** The mean LM input of the merged cells that touch `own` (a box's grid cells); null when none does. */
function projectedMean(look: { inputs: Float32Array; cells: number[][]; width: number }, own: ReadonlySet<number>): Float32Array | null {
  const rows = look.cells.flatMap((c, k) => (c.some((g) => own.has(g)) ? [k] : []));
  if (rows.length === 0) return null;
  const mean = new Float32Array(look.width);
  for (const k of rows) for (let d = 0; d < look.width; d++) mean[d]! += look.inputs[k * look.width + d]! / rows.length;
  return mean;
}

/**
 * Every box's features on one square image at the model's top scale (`pixels`, batch 1), each box
 * forced into a look (boxes packed as `packLooks` says; with a projector, each box widened to whole
 * 2 x 2 cells first); null for a box whose look chose none of its patches (with a projector: none
 * of its cells whole). `looks`: how many encodes it took.
 */
export async function objectFeatures(model: PS3Model, pixels: Pixels, boxes: readonly Box[], projector?: ProbeProjector): Promise<{ features: Array<ObjectFeatures | null>; looks: number }> {
  const cfg = model.config.vision;
  const ns = cfg.scales.length - 1;
  const D = cfg.trunk.width;
  const size = pixels.height;
  if (pixels.width !== size || pixels.batch !== 1) throw new RangeError(`objectFeatures: one square image, got ${pixels.batch} of ${size} x ${pixels.width}`);
  const grid = gridAtScale(cfg, size, size, ns);
  const patch = size / grid[0];
  const forced = projector ? boxes.map((b) => blockBox(mergeBlock(b, patch, grid[0], grid[1]), patch)) : boxes;
  const looks = packLooks(forced, size, forcingCapacity(cfg, size));
  // every resize the encoder needs, made once for the image's looks
  const shared = withResizes(cfg, pixels);
  const gt = new Float32Array(size * size);
  const features: Array<ObjectFeatures | null> = boxes.map(() => null);
  for (const members of looks) {
    const out = await encodeImage(model.weights, model.config, shared, { numLookClose: 1, gtSelectionMaps: boxesToGtMap(members.map((k) => forced[k]!), size, gt), outputHiddenStates: false });
    // the top scale's tokens: after the low-res ones and the lower scales', in row-major cell order
    const top = ps3Grids(model, out.selectionMaps)[ns]!;
    const ids = Array.from(top.ids!);
    const normed = tf.tidy(() => tf.reshape(finalNorm(model.weights, cfg.trunk, tf.slice(out.lastHiddenState, [0, top.offset, 0], [1, ids.length, D])), [ids.length, D]));
    const tokens = (await normed.data()) as Float32Array;
    tf.dispose([out.lastHiddenState, out.pooledOutput, ...out.selectionProbs, ...out.bottomupSelectionProbs]);
    const row = new Map(ids.map((g, r) => [g, r]));
    const look = projector ? await projectLook(projector, normed, { height: grid[0], width: grid[1], offset: 0, ids }) : null;
    for (const k of members) {
      const own = tokenFeatures(tokens, row, boxes[k]!, size, grid, D);
      if (!own) continue;
      const projected = look ? projectedMean(look, new Set(boxCells(boxes[k]!, size, grid[0], grid[1]))) : null;
      if (look && !projected) continue;
      const { rows, ...rest } = own;
      const pooled = tf.tidy(() => mapPool(model.weights, cfg.trunk, tf.expandDims(tf.gather(normed, tf.tensor1d(rows, 'int32')), 0)));
      features[k] = { ...rest, pooled: (await pooled.data()) as Float32Array, pixels: boxPixels(pixels, boxes[k]!), projected };
      pooled.dispose();
    }
    normed.dispose();
  }
  return { features, looks: looks.length };
}

/** Feature rows and their labels. */
export interface Labelled {
  readonly x: readonly Float32Array[];
  readonly labels: readonly string[];
}

function accuracyOf(predicted: readonly string[], labels: readonly string[]): number | null {
  return labels.length === 0 ? null : predicted.filter((p, i) => p === labels[i]).length / labels.length;
}

/**
 * The ridge probe of one attribute and feature set: fitted on `fit` for every λ, the λ with the
 * best `choose` accuracy kept (ties, or no choose rows: the largest, the simplest model), its
 * `test` accuracy reported. A test row whose class the fit rows lack counts as wrong. Null
 * accuracy and λ without fit rows; null accuracy without test rows.
 */
export function linearProbe(data: Readonly<Record<ProbeSplit, Labelled>>, lambdas: readonly number[] = PROBE_LAMBDAS): { accuracy: number | null; lambda: number | null } {
  const { fit, choose, test } = data;
  if (fit.labels.length === 0) return { accuracy: null, lambda: null };
  const d = fit.x[0]!.length;
  const order = [...lambdas].sort((a, b) => a - b);
  const classifier = fitRidgeClassifier(fromRows(fit.x, d), fit.labels, order);
  const chooseX = fromRows(choose.x, d);
  let best = 0;
  let bestAccuracy = -1;
  order.forEach((_, l) => {
    const a = accuracyOf(predictRidge(classifier, chooseX, l), choose.labels) ?? 0;
    if (a >= bestAccuracy) {
      best = l;
      bestAccuracy = a;
    }
  });
  return { accuracy: accuracyOf(predictRidge(classifier, fromRows(test.x, d), best), test.labels), lambda: order[best]! };
}

/** Test accuracy of always answering the fit rows' most frequent class (ties: the first in sorted order). */
export function majorityAccuracy(fit: readonly string[], test: readonly string[]): number | null {
  if (fit.length === 0) return null;
  const counts = new Map<string, number>();
  for (const l of fit) counts.set(l, (counts.get(l) ?? 0) + 1);
  const [majority] = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!;
  return accuracyOf(test.map(() => majority), test);
}

export interface AttributeReport {
  /** distinct classes among each split's objects */
  readonly classes: Record<ProbeSplit, number>;
  /** test accuracy of the fit split's most frequent class */
  readonly majority: number | null;
  /** test accuracy of each feature set */
  readonly mean_tokens: number | null;
  readonly grid_tokens: number | null;
  readonly pooled: number | null;
  readonly pixels: number | null;
  /** null without a VILA-HD projector */
  readonly projected: number | null;
  /** the λ the choose split picked, per feature set */
  readonly lambda: Record<ProbeFeature, number | null>;
  /** objects with this attribute in each split */
  readonly n: Record<ProbeSplit, number>;
  /** test objects whose class no fit object has (always wrong) */
  readonly test_unseen: number;
}

export interface ProbeReport {
  /** the top scale the scenes are drawn at, and its patch grid */
  readonly scale: number;
  readonly grid: readonly [number, number];
  readonly scenes: number;
  /** scenes per split, in index order */
  readonly split: Record<ProbeSplit, number>;
  /** the feature sets measured: the tokens' own, and `projected` with a VILA-HD projector */
  readonly features: readonly ProbeFeature[];
  /** objects in the scenes; probed: those with tokens in their box (with a projector: a whole 2 x 2 cell); no_tokens: the rest */
  readonly objects: { readonly total: number; readonly probed: number; readonly no_tokens: number };
  /** encodes (one look each) over all scenes */
  readonly looks: number;
  /** mean top-scale tokens inside a probed object's box */
  readonly tokens_per_object: number | null;
  readonly attributes: Record<ProbeAttribute, AttributeReport>;
  readonly seconds: { readonly encode: number; readonly probe: number };
  readonly how: string;
}

export interface ProbeOptions {
  readonly lambdas?: readonly number[];
  /** also probe what this projector makes of the tokens (`projected`) */
  readonly projector?: ProbeProjector;
  /** after each scene: scenes done, of total, objects probed so far */
  readonly onProgress?: (done: number, total: number, objects: number) => void;
}

interface Sample {
  readonly split: ProbeSplit;
  readonly attributes: Record<ProbeAttribute, string | null>;
  readonly features: ObjectFeatures;
}

function attributeReport(samples: readonly Sample[], attribute: ProbeAttribute, lambdas: readonly number[], measured: readonly ProbeFeature[]): AttributeReport {
  const part = (split: ProbeSplit, feature: ProbeFeature): Labelled => {
    const own = samples.filter((s) => s.split === split && s.attributes[attribute] !== null);
    return { x: own.map((s) => s.features[feature]!), labels: own.map((s) => s.attributes[attribute]!) };
  };
  const labels = Object.fromEntries(PROBE_SPLITS.map((s) => [s, part(s, 'pixels').labels])) as Record<ProbeSplit, readonly string[]>;
  const unmeasured = { accuracy: null, lambda: null };
  const probes = Object.fromEntries(PROBE_FEATURES.map((f) => [f, measured.includes(f) ? linearProbe({ fit: part('fit', f), choose: part('choose', f), test: part('test', f) }, lambdas) : unmeasured])) as Record<ProbeFeature, ReturnType<typeof linearProbe>>;
  const seen = new Set(labels.fit);
  return {
    classes: { fit: seen.size, choose: new Set(labels.choose).size, test: new Set(labels.test).size },
    majority: majorityAccuracy(labels.fit, labels.test),
    mean_tokens: probes.mean_tokens.accuracy,
    grid_tokens: probes.grid_tokens.accuracy,
    pooled: probes.pooled.accuracy,
    pixels: probes.pixels.accuracy,
    projected: probes.projected.accuracy,
    lambda: Object.fromEntries(PROBE_FEATURES.map((f) => [f, probes[f].lambda])) as Record<ProbeFeature, number | null>,
    n: { fit: labels.fit.length, choose: labels.choose.length, test: labels.test.length },
    test_unseen: labels.test.filter((l) => !seen.has(l)).length,
  };
}

/** Probe the model on `scenes` (at least MIN_PROBE_SCENES, pixels at the model's top scale), and with `options.projector` what it makes of the tokens. */
export async function evaluateProbe(model: PS3Model, scenes: readonly ProbeScene[], options: ProbeOptions = {}): Promise<ProbeReport> {
  const cfg = model.config.vision;
  const ns = cfg.scales.length - 1;
  const S = cfg.scales[ns]!;
  const sizes = splitSizes(scenes.length);
  const samples: Sample[] = [];
  let total = 0;
  let looks = 0;
  let tokens = 0;
  const started = performance.now();
  for (const [s, scene] of scenes.entries()) {
    const { pixels, objects } = await scene.load();
    const got = await objectFeatures(model, pixels, objects.map((o) => o.box), options.projector);
    total += objects.length;
    looks += got.looks;
    got.features.forEach((features, k) => {
      if (!features) return;
      samples.push({ split: splitOf(s, sizes), attributes: objectAttributes(objects[k]!), features });
      tokens += features.tokens;
    });
    options.onProgress?.(s + 1, scenes.length, samples.length);
  }
  const encoded = performance.now();
  const lambdas = options.lambdas ?? PROBE_LAMBDAS;
  const features = options.projector ? [...PROBE_FEATURES] : TOKEN_FEATURES;
  const attributes = Object.fromEntries(PROBE_ATTRIBUTES.map((a) => [a, attributeReport(samples, a, lambdas, features)])) as Record<ProbeAttribute, AttributeReport>;
  const projected = options.projector
    ? `; projected (the mean of the LM inputs the ${options.projector.method} projector makes of the whole 2 x 2 cells touching the box; each box forced widened to whole 2 x 2 cells, an object with no whole cell not probed)`
    : '';
  return {
    scale: S,
    grid: gridAtScale(cfg, S, S, ns),
    scenes: scenes.length,
    split: sizes,
    features,
    objects: { total, probed: samples.length, no_tokens: total - samples.length },
    looks,
    tokens_per_object: samples.length ? tokens / samples.length : null,
    attributes,
    seconds: { encode: (encoded - started) / 1000, probe: (performance.now() - encoded) / 1000 },
    how: `each object's box forced into one look (objects with disjoint forced patches share a look; the rest of the look bottom-up); features from the final-normed top-scale tokens of the patches the box touches: mean_tokens (their mean), grid_tokens (means over a ${GRID_SIDE} x ${GRID_SIDE} grid of the box, an empty cell the box mean), pooled (the trunk's attention-pooling head over them, as pre-training pools a box), pixels (the box's normalised pixels area-resized to ${PIXEL_SIDE} x ${PIXEL_SIDE}, a baseline)${projected}; one-vs-rest ridge regression on standardised features, fitted on the first scenes (fit), λ from {${lambdas.join(', ')}} by accuracy on the next (choose), accuracy on the last (test); majority: the fit split's most frequent class`,
  };
}

/** The bar chart of a report: test accuracy (%) per attribute and feature set, the majority class dashed. */
export function probeChart(report: ProbeReport, title: string): PlotSpec {
  const pct = (a: number | null): number | null => (a === null ? null : 100 * a);
  // bars carry their value; the majority's dashed level carries none (it would sit on the bars')
  const series = (name: string, pick: (r: AttributeReport) => number | null, dashed = false): PlotSeries => ({
    name,
    dashed,
    points: PROBE_ATTRIBUTES.map((a, x) => {
      const y = pct(pick(report.attributes[a]));
      return { x, y, ...(y === null ? { label: 'no data' } : dashed ? {} : { label: y.toFixed(0) }) };
    }),
  });
  return {
    title,
    xLabel: `object attribute (test objects: ${PROBE_ATTRIBUTES.map((a) => report.attributes[a].n.test).join(' / ')})`,
    yLabel: 'test accuracy (%)',
    kind: 'bar',
    xTickLabels: [...PROBE_ATTRIBUTES],
    yDomain: [0, 100],
    series: [...report.features.map((f) => series(f, (r) => r[f])), series('majority class', (r) => r.majority, true)],
  };
}
