/**
 * PS3's pre-training layout (`output_hidden_states=False`, `pool_gt_token_only`): one look at the
 * full budget chosen from the top-down probabilities forced to 1 on the ground-truth box; the MAP
 * head pools only the chosen high-res tokens that overlap the box (all of them if none do); rows
 * whose caption is global take the low-res pooled output instead. Synchronous and built from
 * differentiable ops, so it runs inside `tf.grad`.
 *
 * With `regions` (other local boxes of the images, `--regions`), their top-scale patches are
 * forced into the same look as well (the caller keeps them within the top budget:
 * selection.ts forcingCapacity), and each is pooled like the sample's own box: one more pooled feature a
 * region, for the contrastive and caption-word terms. Given the regions' prompts as well
 * (`--region-selection`), each region's caption also drives a top-down selection on its image,
 * for the box losses: several captions of one image, each with its own box, reward a prompt that
 * says which object it names, where one caption an image is served almost as well by the
 * caption-blind saliency map (not in the reference).
 */
import { tf } from '../tensor/engine.js';
import { resize } from '../tensor/resample.js';
import type { VisionConfig } from '../io/config.js';
import type { Box } from '../io/shards.js';
import { UserError } from '../errors.js';
import { highResTokens, highresSelectionFeatures, lowRes, ScaledImages, selection, type Pixels, type SelectionMap } from './encoder.js';
import { baseBudgets, boxAreaAtGrid, chooseLook, forceGroundTruth, gridAtScale, groundTruthPerScale, selectionFeatures, selectionLogits, selectionProbs } from './selection.js';
import { finalNorm, mapPool, trunk } from './vit.js';
import type { Weights } from './weights.js';

export interface PretrainOutput {
  /** [B, D] */
  readonly pooledOutput: tf.Tensor;
  readonly selectionMaps: SelectionMap[];
  readonly bottomupSelectionProbs: tf.Tensor[];
  readonly topdownSelectionProbs: tf.Tensor[];
  /** the ground-truth map area-downsampled to each high-res grid, [B, gh, gw] per scale */
  readonly gtAtScale: Float32Array[];
  /** [R, D]: the other regions' pooled features, in their order (null without regions) */
  readonly regionPooled: tf.Tensor | null;
  /** the regions' own selections (null unless their prompts were given) */
  readonly regionSelection: RegionSelection | null;
  /** [B, D]: the mean of the final-normed high-res tokens the box's pooling reads (null unless asked) */
  readonly boxTokens: tf.Tensor | null;
  /** [R, D]: the same for the other regions (null unless asked, or without regions) */
  readonly regionTokens: tf.Tensor | null;
}

/**
 * Other local boxes of a batch's images: `owner[k]` is the image of box k (input pixels);
 * `prompt` [R, D], their captions' prompts, when they are to drive selection too.
 */
export interface PretrainRegions {
  readonly owner: Int32Array;
  readonly boxes: readonly Box[];
  readonly prompt?: tf.Tensor;
}

/** Each region's selections on its image and its box at each high-res grid: R rows, in the regions' order. */
export interface RegionSelection {
  /** [R, gh, gw] per high-res scale: its image's bottom-up map */
  readonly bottomupSelectionProbs: tf.Tensor[];
  /** [R, gh, gw] per high-res scale: its own caption as the prompt */
  readonly topdownSelectionProbs: tf.Tensor[];
  /** [R * gh * gw] per scale: the box area-downsampled to the grid */
  readonly gtAtScale: Float32Array[];
}

export interface PretrainSelection {
  readonly bottomupSelectionProbs: tf.Tensor[];
  readonly topdownSelectionProbs: tf.Tensor[];
  /** the ground-truth map area-downsampled to each high-res grid, [B, gh, gw] per scale */
  readonly gtAtScale: Float32Array[];
  readonly regionSelection: RegionSelection | null;
}

function checkRegions(regions: PretrainRegions | undefined, B: number, H: number, W: number): number {
  const R = regions?.owner.length ?? 0;
  if (regions && (regions.boxes.length !== R || regions.owner.some((b) => b < 0 || b >= B))) throw new UserError(`regions: ${R} owners (of ${B} images) for ${regions.boxes.length} boxes`);
  if (regions?.prompt && regions.prompt.shape[0] !== R) throw new UserError(`regions: ${regions.prompt.shape[0]} prompts for ${R} boxes`);
  if (R && H !== W) throw new UserError(`regions: square images only, got ${H} x ${W}`);
  return R;
}

/**
 * Bottom-up and top-down selection of the whole batch, the selection features computed once for
 * both prompts (and the regions'); with regions' prompts, each region's selection on its image.
 */
function batchSelection(w: Weights, cfg: VisionConfig, pixels: Pixels, hidden: readonly tf.Tensor[], highFeatures: tf.Tensor | null, prompt: tf.Tensor, regions: PretrainRegions | undefined) {
  const features = selectionFeatures(w, cfg, hidden); // [B, N0, D]
  const bottomup = selection(w, cfg, pixels, hidden, highFeatures, null, features);
  const topdown = selection(w, cfg, pixels, hidden, highFeatures, prompt, features);
  let regionSelection: RegionSelection | null = null;
  if (regions?.prompt && regions.owner.length) {
    const { height: H, width: W } = pixels;
    const owner = tf.tensor1d(regions.owner, 'int32');
    const topdownOfRegions = tf.tidy(() => {
      // [R, N0, D] and [R, h, w, out]: each region reads its image's features
      const own = tf.gather(features, owner);
      const ownHigh = highFeatures ? tf.gather(highFeatures, owner) : null;
      return selectionProbs(cfg, selectionLogits(w, cfg, hidden, ownHigh, regions.prompt!, own), H, W);
    });
    const grids = cfg.scales.slice(1).map((_, i) => gridAtScale(cfg, H, W, i + 1));
    regionSelection = {
      bottomupSelectionProbs: bottomup.map((p) => tf.gather(p, owner)),
      topdownSelectionProbs: topdownOfRegions,
      gtAtScale: grids.map(([h, gw]) => {
        const out = new Float32Array(regions.boxes.length * h * gw);
        regions.boxes.forEach((box, k) => out.set(boxAreaAtGrid(box, H, h, gw), k * h * gw));
        return out;
      }),
    };
    owner.dispose();
  }
  features.dispose();
  return { bottomup, topdown, regionSelection };
}

/**
 * The selection half of the pre-training layout — what the box losses see: bottom-up and
 * top-down probabilities, and the box at each high-res grid. A run that trains selection alone
 * (no contrastive term) needs nothing more, so it skips the look and the pooling.
 */
export function pretrainSelection(w: Weights, cfg: VisionConfig, pixels: Pixels, prompt: tf.Tensor, gt: Float32Array, regions?: PretrainRegions): PretrainSelection {
  const { batch: B, height: H, width: W } = pixels;
  if (gt.length !== B * H * W) throw new UserError(`gtSelectionMaps: ${gt.length} values do not make [${B}, ${H}, ${W}]`);
  checkRegions(regions, B, H, W);
  const images = new ScaledImages(cfg, pixels);
  const low = lowRes(w, cfg, pixels, false, images);
  const highFeatures = highresSelectionFeatures(w, cfg, pixels, images);
  const { bottomup, topdown, regionSelection } = batchSelection(w, cfg, pixels, low.hiddenStates, highFeatures, prompt, regions);
  const gtAtScale = cfg.scales.slice(1).map((_, i) => {
    const [h, gw] = gridAtScale(cfg, H, W, i + 1);
    return resize(gt, B, H, W, h, gw, 'area');
  });
  return { bottomupSelectionProbs: bottomup, topdownSelectionProbs: topdown, gtAtScale, regionSelection };
}

/**
 * `gt` [B, H, W] 0/1 at input resolution; `isGlobalText` [B] (1: the caption describes the whole
 * image); `prompt` [B, D] from the text tower.
 */
export function encodePretrain(
  w: Weights,
  cfg: VisionConfig,
  pixels: Pixels,
  prompt: tf.Tensor,
  gt: Float32Array,
  isGlobalText: ArrayLike<number>,
  regions?: PretrainRegions,
  options: { tokenMeans?: boolean } = {},
): PretrainOutput {
  const { batch: B, height: H, width: W } = pixels;
  if (gt.length !== B * H * W) throw new UserError(`gtSelectionMaps: ${gt.length} values do not make [${B}, ${H}, ${W}]`);
  if (isGlobalText.length !== B) throw new UserError(`isGlobalText: ${isGlobalText.length} values for a batch of ${B}`);
  const R = checkRegions(regions, B, H, W);
  const images = new ScaledImages(cfg, pixels);
  const low = lowRes(w, cfg, pixels, true, images);
  const highFeatures = highresSelectionFeatures(w, cfg, pixels, images);
  const { bottomup, topdown, regionSelection } = batchSelection(w, cfg, pixels, low.hiddenStates, highFeatures, prompt, regions);
  const grids = cfg.scales.slice(1).map((_, i) => gridAtScale(cfg, H, W, i + 1));
  // the box area-downsampled to each scale's grid: the pooling mask, and (first grid) the forcing map
  const gtAtScale = grids.map(([h, gw]) => resize(gt, B, H, W, h, gw, 'area'));
  // each region's box at each grid ([gh * gw] per scale): its pooling mask, and (top grid) its forcing
  const regionAtScale = (regions?.boxes ?? []).map((box) => grids.map(([h, gw]) => boxAreaAtGrid(box, H, h, gw)));
  const gtPerScale = groundTruthPerScale(cfg, gt, B, H, W, gtAtScale[0]);
  if (R) {
    // the other regions are forced at the top scale only, patch by patch (selection.ts forcingCapacity)
    const top = gtPerScale.length - 1;
    const cells = grids[top]![0] * grids[top]![1];
    const forcedTop = gtPerScale[top]!.slice();
    regionAtScale.forEach((perScale, k) => perScale[top]!.forEach((v, g) => {
      if (v > 0) forcedTop[regions!.owner[k]! * cells + g] = 1;
    }));
    gtPerScale[top] = forcedTop;
  }
  const forced = forceGroundTruth(topdown, gtPerScale);

  const sizes = grids.map(([h, gw]) => h * gw);
  const probArrays = forced.map((p) => p.dataSync() as Float32Array);
  forced.forEach((p) => p.dispose());
  const base = baseBudgets(cfg);
  const chosen: Int32Array[][] = grids.map(() => []);
  for (let b = 0; b < B; b++) {
    chooseLook(probArrays.map((p, i) => p.subarray(b * sizes[i]!, (b + 1) * sizes[i]!)), null, base).forEach((ids, i) => chosen[i]!.push(ids));
  }
  const maps: SelectionMap[] = grids.map(([h, gw], i) => {
    const data = new Uint8Array(B * h * gw);
    chosen[i]!.forEach((ids, b) => ids.forEach((g) => (data[b * sizes[i]! + g] = 1)));
    return { height: h, width: gw, data };
  });

  // pooling mask: the box area-downsampled straight to each scale's grid, read at the chosen patches
  const poolMask: number[] = [];
  for (let b = 0; b < B; b++) {
    chosen.forEach((perImage, i) => perImage[b]!.forEach((g) => poolMask.push(gtAtScale[i]![b * sizes[i]! + g]!)));
  }

  const tokens = highResTokens(w, cfg, images, B, chosen);
  const high = trunk(w, cfg.trunk, tokens, { cache: low.kvCache });
  const lastHigh = high.hiddenStates[high.hiddenStates.length - 1]!;
  const lastLow = low.hiddenStates[low.hiddenStates.length - 1]!;
  const n = lastHigh.shape[1]!;
  const normed = finalNorm(w, cfg.trunk, lastHigh);
  const pooledOutput = tf.tidy(() => {
    const local = mapPool(w, cfg.trunk, normed, tf.tensor2d(poolMask, [B, n]));
    const global = mapPool(w, cfg.trunk, finalNorm(w, cfg.trunk, lastLow));
    const isGlobal = tf.tensor2d(Float32Array.from(isGlobalText), [B, 1]);
    return tf.add(tf.mul(isGlobal, global), tf.mul(tf.sub(1, isGlobal), local));
  });
  // each region pooled over its owner's chosen tokens, masked to its box: [R, n] -> [R, D]
  const regionMask = new Float32Array(R * n);
  regionAtScale.forEach((perScale, k) => {
    const b = regions!.owner[k]!;
    let t = 0;
    chosen.forEach((perImage, i) => perImage[b]!.forEach((g) => (regionMask[k * n + t++] = perScale[i]![g]!)));
  });
  const regionOutputs = !R
    ? null
    : tf.tidy(() => {
        const own = tf.gather(normed, tf.tensor1d(regions!.owner, 'int32')); // [R, n, D]
        return { pooled: mapPool(w, cfg.trunk, own, tf.tensor2d(regionMask, [R, n])), ...(options.tokenMeans ? { tokens: maskedTokenMean(own, regionMask) } : {}) };
      });
  const regionPooled = regionOutputs?.pooled ?? null;
  const regionTokens = regionOutputs?.tokens ?? null;
  const boxTokens = options.tokenMeans ? maskedTokenMean(normed, Float32Array.from(poolMask)) : null;
  return { pooledOutput, selectionMaps: maps, bottomupSelectionProbs: bottomup, topdownSelectionProbs: topdown, gtAtScale, regionPooled, regionSelection, boxTokens, regionTokens };
}

/**
 * The plain mean of the tokens the pooling keeps: [rows, n, D] with `mask` [rows * n] -> [rows, D].
 * A token counts when its mask value is above 0 and, as in the pooling, a row that keeps none
 * takes every token.
 */
export function maskedTokenMean(tokens: tf.Tensor, mask: Float32Array): tf.Tensor {
  const [rows, n] = tokens.shape as [number, number, number];
  const weights = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const row = mask.subarray(r * n, (r + 1) * n);
    const kept = row.reduce((a, v) => a + (v > 0 ? 1 : 0), 0);
    for (let t = 0; t < n; t++) weights[r * n + t] = kept ? (row[t]! > 0 ? 1 / kept : 0) : 1 / n;
  }
  return tf.tidy(() => tf.reshape(tf.matMul(tf.tensor3d(weights, [rows, 1, n]), tokens), [rows, tokens.shape[2]!]));
}
