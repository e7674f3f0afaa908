/**
 * Where PS3 looks: selection probabilities from low-res features (and the shallow convnet)
 * against a prompt, and the looks that turn them into per-scale patch choices under a budget.
 * Probabilities are tensors (the box-supervision losses train through them); choosing patches
 * is a hard top-k done on plain arrays.
 */
import { tf } from '../tensor/engine.js';
import { adaptiveMaxPool2d, resize2d } from '../tensor/ops.js';
import { adaptiveBins, resize } from '../tensor/resample.js';
import { stableTopK } from '../tensor/topk.js';
import type { VisionConfig } from '../io/config.js';
import type { Box } from '../io/shards.js';
import { l2Normalize, linear, mlp } from './layers.js';
import type { Weights } from './weights.js';

/** Image size (h, w) at scale i for an input of h x w: scale 0 is always square; others keep the aspect ratio. */
export function imageSizeAtScale(cfg: VisionConfig, height: number, width: number, i: number): [number, number] {
  const s0 = cfg.scales[0]!;
  const P = cfg.trunk.patchSize;
  if (i === 0) return [s0, s0];
  const zoom = Math.floor(cfg.scales[i]! / s0);
  if (height >= width) return [s0 * zoom, Math.max(Math.floor(Math.trunc((s0 / height) * width) / P), 1) * P * zoom];
  return [Math.max(Math.floor(Math.trunc((s0 / width) * height) / P), 1) * P * zoom, s0 * zoom];
}

/** Patch grid (gh, gw) at scale i. */
export function gridAtScale(cfg: VisionConfig, height: number, width: number, i: number): [number, number] {
  const [h, w] = imageSizeAtScale(cfg, height, width, i);
  const P = cfg.trunk.patchSize;
  return [Math.max(Math.floor(h / P), 1), Math.max(Math.floor(w / P), 1)];
}

/** The selector's feature projection on another engine: the chosen low-res layers [B, N0, L] -> [B, N0, D]. */
export type ProjectionRunner = (features: tf.Tensor) => Promise<tf.Tensor>;

/** Picks the runner of a model's feature projection; null means TensorFlow.js's `mlp`. */
export type DefaultProjection = (w: Weights, cfg: VisionConfig) => ProjectionRunner | null;

// TensorFlow.js until the engine layer installs another (as for the trunk: see vit.ts)
let defaultProjection: DefaultProjection = () => null;

export function setDefaultProjection(pick: DefaultProjection): void {
  defaultProjection = pick;
}

/** The projection's runner for frozen weights, unless TensorFlow.js is asked for; trainable weights stay on TensorFlow.js. */
export function projectionFor(w: Weights, cfg: VisionConfig, tfjsOnly: boolean): ProjectionRunner | null {
  return tfjsOnly || w.trainable ? null : defaultProjection(w, cfg);
}

/** The low-res layers the selector reads, side by side: [B, N0, D * L]. */
export function selectionInput(cfg: VisionConfig, lowResHidden: readonly tf.Tensor[]): tf.Tensor {
  return tf.concat(cfg.selectBasedOnLayer.map((i) => lowResHidden[i]!), -1);
}

/**
 * The selection features [B, N0, D]: the projection of `selectionInput`. Only the first scale's
 * chunk of its output is computed: the reference uses it for every scale. They do not depend on
 * the prompt, so one computation serves the bottom-up and the top-down selection.
 */
export function selectionFeatures(w: Weights, cfg: VisionConfig, lowResHidden: readonly tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => mlp(w, 'vision_model.selection_feature_proj', selectionInput(cfg, lowResHidden), { outputs: cfg.trunk.width }));
}

/**
 * Selection logits on the low-res grid, [B, g0, g0]: cosine of the selection features with the
 * prompt, averaged with the convnet's cosine (adaptive-max-pooled) when the model has it.
 * `features` are `selectionFeatures` when already computed (computed here otherwise).
 */
export function selectionLogits(
  w: Weights,
  cfg: VisionConfig,
  lowResHidden: readonly tf.Tensor[],
  highresFeatures: tf.Tensor | null,
  prompt: tf.Tensor,
  features?: tf.Tensor,
): tf.Tensor {
  return tf.tidy(() => {
    const D = cfg.trunk.width;
    const g0 = cfg.scales[0]! / cfg.trunk.patchSize;
    const first = features ?? selectionFeatures(w, cfg, lowResHidden); // [B, N0, D]
    const B = first.shape[0]!;
    let logits = tf.reshape(tf.sum(tf.mul(l2Normalize(first), tf.reshape(l2Normalize(prompt), [B, 1, D])), -1), [B, g0, g0]);
    if (highresFeatures) {
      const out = highresFeatures.shape[3]!;
      const hp = tf.slice(linear(w, 'vision_model.prompt_proj_for_highres', prompt), [0, 0], [B, out]); // [B, out]
      const hl = tf.sum(tf.mul(l2Normalize(highresFeatures), tf.reshape(l2Normalize(hp), [B, 1, 1, out])), -1); // [B, h, w]
      logits = tf.div(tf.add(logits, adaptiveMaxPool2d(hl, 1, g0, g0)), 2);
    }
    return logits;
  });
}

/** Logits -> probabilities: x5, clamp to [-10, 10], sigmoid; then nearest-upsampled to each high-res grid. */
export function selectionProbs(cfg: VisionConfig, logits: tf.Tensor, height: number, width: number): tf.Tensor[] {
  return tf.tidy(() => {
    const p = tf.sigmoid(tf.clipByValue(tf.mul(logits, 5), -10, 10));
    return cfg.scales.slice(1).map((_, i) => {
      const [gh, gw] = gridAtScale(cfg, height, width, i + 1);
      return resize2d(p, 1, gh, gw, 'nearest');
    });
  });
}

/**
 * The box as a 0/1 map, [size, size]: rows floor(y0)..ceil(y1) and columns floor(x0)..ceil(x1),
 * both inclusive, clipped to the map; all ones for null (a global caption). Written into `out`
 * when given.
 */
export function boxToGtMap(box: Box | null, size: number, out?: Float32Array): Float32Array {
  return box === null ? boxesToGtMap([], size, out).fill(1) : boxesToGtMap([box], size, out);
}

/**
 * The union of boxes as a 0/1 map, [size, size], each box's pixels as `boxToGtMap` takes them:
 * several boxes forced into one look. Written into `out` when given.
 */
export function boxesToGtMap(boxes: readonly Box[], size: number, out?: Float32Array): Float32Array {
  if (out && out.length !== size * size) throw new RangeError(`boxesToGtMap: out holds ${out.length} values, expected ${size * size}`);
  const gt = out ? out.fill(0) : new Float32Array(size * size);
  for (const box of boxes) {
    const { r0, r1, c0, c1 } = boxPixelSpan(box, size, size);
    for (let r = r0; r <= r1; r++) {
      if (c1 >= c0) gt.fill(1, r * size + c0, r * size + c1 + 1);
    }
  }
  return gt;
}

/**
 * The pixel rows r0..r1 and columns c0..c1 a box covers, both inclusive: floor(y0)..ceil(y1) and
 * floor(x0)..ceil(x1), clipped to a height x width image (empty when r1 < r0 or c1 < c0).
 */
export function boxPixelSpan(box: Box, height: number, width: number): { r0: number; r1: number; c0: number; c1: number } {
  const [x0, y0, x1, y1] = box;
  return { r0: Math.max(0, Math.floor(y0)), r1: Math.min(height - 1, Math.ceil(y1)), c0: Math.max(0, Math.floor(x0)), c1: Math.min(width - 1, Math.ceil(x1)) };
}

/**
 * `boxToGtMap(box, size)` area-downsampled to a gh x gw grid ([gh * gw], each cell the share of
 * its pixels inside the box), computed from the box's rows and columns without the size x size map.
 */
export function boxAreaAtGrid(box: Box, size: number, gh: number, gw: number): Float32Array {
  const [x0, y0, x1, y1] = box;
  // the same pixel rows and columns boxToGtMap fills
  const share = (lo: number, hi: number, bins: Array<[number, number]>): Float64Array =>
    Float64Array.from(bins, ([s, e]) => Math.max(0, Math.min(e - 1, hi) - Math.max(s, lo) + 1) / (e - s));
  const rows = share(Math.max(0, Math.floor(y0)), Math.min(size - 1, Math.ceil(y1)), adaptiveBins(size, gh));
  const cols = share(Math.max(0, Math.floor(x0)), Math.min(size - 1, Math.ceil(x1)), adaptiveBins(size, gw));
  const out = new Float32Array(gh * gw);
  for (let r = 0; r < gh; r++) for (let c = 0; c < gw; c++) out[r * gw + c] = rows[r]! * cols[c]!;
  return out;
}

/** Indices of the entries > 0, ascending. */
function positive(values: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i]! > 0) out.push(i);
  return out;
}

/** The cells of a gh x gw grid that `box` touches (area share > 0), row-major. */
export function boxCells(box: Box, size: number, gh: number, gw: number): number[] {
  return positive(boxAreaAtGrid(box, size, gh, gw));
}

/** What one pre-training look can force on a size x size image (see forcingCapacity). */
export interface ForcingCapacity {
  /** side of the first high-res scale's grid, where the sample's own box is forced */
  readonly first: number;
  /** side of the top scale's grid, where the other regions are forced */
  readonly top: number;
  /** the top scale's patches in one look */
  readonly budget: number;
}

/**
 * The sample's own box is forced on the first high-res grid and nearest-upsampled (spec §2.6), so
 * at the top scale it takes whole blocks; the other regions (`--regions`) are forced at the top
 * scale only, patch by patch, where the detail is. Forced patches past the top budget would be
 * dropped by index (ties), and a region further down would pool other tokens.
 */
export function forcingCapacity(cfg: VisionConfig, size: number): ForcingCapacity {
  const n = cfg.scales.length - 1;
  return { first: gridAtScale(cfg, size, size, 1)[0], top: gridAtScale(cfg, size, size, n)[0], budget: baseBudgets(cfg)[n - 1]! };
}

/** The top-grid patches forced for the sample's own box: its first-grid cells, nearest-upsampled. */
export function ownForcedAtTop(box: Box, size: number, capacity: ForcingCapacity): number[] {
  const { first, top } = capacity;
  return positive(resize(boxAreaAtGrid(box, size, first, first), 1, first, first, top, top, 'nearest'));
}

/**
 * `groundTruthPerScale` of `boxToGtMap(box, size)` on a size x size image, computed from the box's
 * rows and columns (boxAreaAtGrid): the same patches forced and the same targets, without the
 * size x size map and its area-downsampling (14 M values a question at 3780 px).
 */
export function boxGroundTruthPerScale(cfg: VisionConfig, box: Box | null, size: number): Float32Array[] {
  const [g1h, g1w] = gridAtScale(cfg, size, size, 1);
  const first = box === null ? new Float32Array(g1h * g1w).fill(1) : boxAreaAtGrid(box, size, g1h, g1w);
  return perScaleFromFirst(cfg, first, 1, size, size);
}

/**
 * The ground-truth map [B, H, W] at input resolution, area-downsampled to the first high-res grid
 * and nearest-upsampled to each scale's grid: per scale a [B, gh * gw] array (> 0 forces a patch).
 */
export function groundTruthPerScale(cfg: VisionConfig, gt: Float32Array, batch: number, height: number, width: number, firstArea?: Float32Array): Float32Array[] {
  const [g1h, g1w] = gridAtScale(cfg, height, width, 1);
  // `firstArea`: the same area-downsampling, when the caller already has it
  return perScaleFromFirst(cfg, firstArea ?? resize(gt, batch, height, width, g1h, g1w, 'area'), batch, height, width);
}

/** The ground truth on the first high-res grid, [B, g1h * g1w], nearest-upsampled to each scale's grid. */
function perScaleFromFirst(cfg: VisionConfig, first: Float32Array, batch: number, height: number, width: number): Float32Array[] {
  const [g1h, g1w] = gridAtScale(cfg, height, width, 1);
  return cfg.scales.slice(1).map((_, i) => {
    const [gh, gw] = gridAtScale(cfg, height, width, i + 1);
    return resize(first, batch, g1h, g1w, gh, gw, 'nearest');
  });
}

/** Force probability 1 wherever the ground truth is > 0. */
export function forceGroundTruth(probs: readonly tf.Tensor[], gtPerScale: readonly Float32Array[]): tf.Tensor[] {
  return probs.map((p, i) =>
    tf.tidy(() => {
      const forced = tf.greater(tf.tensor(gtPerScale[i]!, p.shape), 0);
      return tf.where(forced, tf.onesLike(p), p);
    }),
  );
}

/** `smooth_selection_prob`: area-pool each map to 6 x 6 and nearest-upsample back. */
export function smoothProbs(probs: readonly tf.Tensor[]): tf.Tensor[] {
  return probs.map((p) =>
    tf.tidy(() => {
      const [, h, w] = p.shape as [number, number, number];
      return resize2d(resize2d(p, 1, 6, 6, 'area'), 1, h, w, 'nearest');
    }),
  );
}

/** Each look's budget per high-res scale: `max_select_num` split by pixel count, or as configured. */
export function baseBudgets(cfg: VisionConfig): number[] {
  if (cfg.maxSelectNumEachScale) return [...cfg.maxSelectNumEachScale];
  const pixels = cfg.scales.map((s) => s * s);
  const total = pixels.slice(1).reduce((a, c) => a + c, 0);
  const budgets = pixels.slice(1).map((p) => Math.trunc((cfg.maxSelectNum * p) / total));
  budgets[budgets.length - 1]! += cfg.maxSelectNum - sum(budgets);
  return budgets;
}

/** Per high-res scale of a size x size input, maps forcing exactly `cells` of the top scale's grid and nothing on the other scales. */
export function topCellsForced(cfg: VisionConfig, size: number, cells: Iterable<number>): Float32Array[] {
  const maps = cfg.scales.slice(1).map((_, i) => {
    const [h, w] = gridAtScale(cfg, size, size, i + 1);
    return new Float32Array(h * w);
  });
  for (const c of cells) maps[maps.length - 1]![c] = 1;
  return maps;
}

/** How many top-scale patches one full look takes. */
export function topBudget(cfg: VisionConfig): number {
  return baseBudgets(cfg).at(-1)!;
}

/**
 * Blocks of `cells[k]` top-scale patches each, to be forced into looks: their indices in groups,
 * in order, each group within one look's top-scale `budget` (a block larger than the budget gets
 * a group of its own, and only part of it is seen).
 */
export function packForced(cells: readonly number[], budget: number): number[][] {
  const groups: number[][] = [];
  let used = Infinity;
  cells.forEach((n, k) => {
    if (used + n > budget) {
      groups.push([]);
      used = 0;
    }
    groups.at(-1)!.push(k);
    used += n;
  });
  return groups;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, c) => a + c, 0);
}

/**
 * One image's budgets for one look: scaled to a token count `num` (remainder to the last scale),
 * then restricted to the first `firstN` scales (later scales keep one patch each, and the last
 * absorbs the difference, as the reference does).
 */
export function lookBudgets(base: readonly number[], num: number | null, firstN: number | null): number[] {
  let budgets = [...base];
  const full = sum(base);
  if (num !== null) {
    budgets = budgets.map((b) => Math.trunc((b * num) / full));
    budgets[budgets.length - 1]! += num - sum(budgets);
  }
  if (firstN !== null) {
    const head = sum(budgets.slice(0, firstN));
    const total = sum(budgets);
    budgets = budgets.map((b, i) => (i < firstN ? Math.trunc((b / head) * total) : 1));
    budgets[budgets.length - 1]! += full - sum(budgets);
  }
  return budgets;
}

/**
 * One look's choice for one image: per scale, the top patches by probability among those not
 * chosen before (ties by lower row-major index); a scale with too few left passes its shortfall
 * to the next scale. `probs[i]` and `taken[i]` are that scale's flat grid. Returns sorted indices.
 */
export function chooseLook(probs: readonly ArrayLike<number>[], taken: readonly Uint8Array[] | null, budgets: readonly number[]): Int32Array[] {
  const want = [...budgets];
  return probs.map((p, i) => {
    const values = Float32Array.from(p);
    if (taken) for (let j = 0; j < values.length; j++) if (taken[i]![j]) values[j] = -1;
    let available = 0;
    for (let j = 0; j < values.length; j++) if (values[j] !== -1) available++;
    if (available < want[i]!) {
      if (i < probs.length - 1) want[i + 1]! += want[i]! - available;
      want[i] = available;
    }
    return stableTopK(values, want[i]!).sort();
  });
}

export type LookCount = number | 'all';

/** The looks of one call: how many, and the token count of each (null = the full budget). */
export function planLooks(
  base: readonly number[],
  maxTokens: number,
  options: { numLookClose?: LookCount; numTokenLookClose?: number },
): Array<number | null> {
  const perLook = sum(base);
  const needed = Math.ceil(maxTokens / perLook);
  if (options.numLookClose !== undefined) {
    const n = options.numLookClose === 'all' ? needed : Math.min(options.numLookClose, needed);
    return Array.from({ length: n }, () => null);
  }
  if (options.numTokenLookClose !== undefined) {
    const tokens = Math.min(options.numTokenLookClose, maxTokens);
    const n = Math.ceil(tokens / perLook);
    const last = tokens % perLook || perLook;
    return Array.from({ length: n }, (_, k) => {
      if (k === 0) return tokens <= perLook ? tokens : null;
      return k === n - 1 ? last : null;
    });
  }
  throw new RangeError('planLooks: give numLookClose or numTokenLookClose');
}
