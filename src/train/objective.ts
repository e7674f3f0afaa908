/**
 * One pre-training forward pass and its loss, as a pure function of the weights, in two halves:
 * the towers (text tower -> features and prompt; encoder in the pre-training layout), which work
 * on each sample alone, and the terms over the whole batch (SigLIP, the caption-word term, the box
 * BCE terms). Gradients come from `lossAndGrads`, which differentiates it with respect to any
 * subset of the weights; a batch shared between threads runs the halves apart (gradShards.ts).
 */
import { tf } from '../tensor/engine.js';
import type { PS3Config } from '../io/config.js';
import { UserError } from '../errors.js';
import type { Pixels, SelectionMap } from '../model/encoder.js';
import { l2Normalize } from '../model/layers.js';
import { encodePretrain, pretrainSelection, type PretrainRegions, type RegionSelection } from '../model/pretrain.js';
import { encodeText } from '../model/text.js';
import { Weights } from '../model/weights.js';
import { concatArrays } from './batch.js';
import { boxLoss, boxTargets, logSigmoid, siglipLoss, type BoxLossKind } from './loss.js';
import { hardNegativeLoss, type HardNegativeLabels, type HardNegativeSpec } from './hardNegatives.js';

/**
 * A pre-training batch: images, caption token ids [B, N], box maps [B, H, W], global-caption
 * flags [B]; optionally other local regions of the images with their captions' ids [R, N].
 */
export interface PretrainBatch {
  readonly pixels: Pixels;
  readonly text: Int32Array;
  readonly gtSelectionMaps: Float32Array;
  readonly isGlobalText: Float32Array;
  readonly regions?: PretrainRegions & { readonly text: Int32Array };
  /** captions one word away from each pair's own (`LossWeights.hardNegatives`; batch.ts draws them) */
  readonly negatives?: HardNegativeLabels;
}

export interface LossWeights {
  readonly contrastive: number;
  readonly priorBox: number;
  readonly posteriorBox: number;
  /** how the box terms weigh the box's patches against the rest (default `bce`, the reference's) */
  readonly box?: BoxLossKind;
  /** the caption-word term (`wordLoss`; not the reference's; default 0, off) */
  readonly words?: number;
  /** the same term on each box's mean high-res token instead of its pooled feature (not the reference's; default 0, off) */
  readonly tokenWords?: number;
  /** the regions' captions drive selection too, each scored by the box terms against its own box (not the reference's; needs regions) */
  readonly regionSelection?: boolean;
  /** the hard-negative term and how its negatives are drawn (hardNegatives.ts; not the reference's; default off) */
  readonly hardNegatives?: HardNegativeSpec;
}

export const DEFAULT_LOSS_WEIGHTS: LossWeights = { contrastive: 1, priorBox: 1, posteriorBox: 1 };

export interface ObjectiveOutput {
  readonly total: tf.Tensor;
  readonly contrastive: tf.Tensor;
  /** the caption-word term (0 when its weight is) */
  readonly words: tf.Tensor;
  /** the caption-word term on the boxes' mean tokens (0 when its weight is) */
  readonly tokenWords: tf.Tensor;
  /** the hard-negative term (0 when off) */
  readonly hardNegatives: tf.Tensor;
  readonly priorBox: tf.Tensor;
  readonly posteriorBox: tf.Tensor;
  readonly logits: tf.Tensor;
  readonly imageFeatures: tf.Tensor;
  readonly textFeatures: tf.Tensor;
  readonly pooledOutput: tf.Tensor;
  readonly bottomupSelectionProbs: tf.Tensor[];
  readonly topdownSelectionProbs: tf.Tensor[];
  readonly selectionMaps: SelectionMap[];
}

/**
 * What the towers make of a batch, sample by sample: everything the loss reads before a term
 * compares one sample with another. The rows of a batch split into shards are the shards' rows
 * one after the other (gradShards.ts), so the terms can be computed once over all of them.
 */
export interface PretrainTowers {
  /** [B, D] the captions' pooled text features (null when only the box terms are on) */
  readonly textPooled: tf.Tensor | null;
  /** [R, D] the other regions' captions (null without regions) */
  readonly regionText: tf.Tensor | null;
  /** [B, D] the boxes' (or, global rows, the low-res) pooled image features (null as textPooled) */
  readonly pooledOutput: tf.Tensor | null;
  /** [R, D] the other regions' pooled image features (null without regions) */
  readonly regionPooled: tf.Tensor | null;
  /** [B, D] and [R, D]: the boxes' and the regions' mean high-res tokens (null unless the token-word term is on) */
  readonly boxTokens: tf.Tensor | null;
  readonly regionTokens: tf.Tensor | null;
  /** [B * K, D] and [R * K, D]: the hard negatives' pooled text features (null unless the batch has negatives) */
  readonly negativeText: tf.Tensor | null;
  readonly regionNegativeText: tf.Tensor | null;
  /** [B, gh, gw] per high-res scale */
  readonly bottomupSelectionProbs: tf.Tensor[];
  readonly topdownSelectionProbs: tf.Tensor[];
  /** the ground-truth map area-downsampled to each high-res grid, [B, gh, gw] per scale */
  readonly gtAtScale: Float32Array[];
  readonly selectionMaps: SelectionMap[];
  /** the regions' selections, more rows for the box terms (null unless `regionSelection`) */
  readonly regionSelection: RegionSelection | null;
}

/** What the terms read of a batch besides the towers' outputs: the captions and which are global. */
export type PretrainLabels = Pick<PretrainBatch, 'text' | 'isGlobalText' | 'regions' | 'negatives'>;

export function pretrainTowers(w: Weights, config: PS3Config, batch: PretrainBatch, weights: LossWeights = DEFAULT_LOSS_WEIGHTS): PretrainTowers {
  const { pixels } = batch;
  const B = pixels.batch;
  if (batch.text.length % B !== 0) throw new UserError(`text: ${batch.text.length} token ids for a batch of ${B}`);
  const text = encodeText(w, config.text, batch.text, B);
  const selectionOnly = weights.contrastive === 0 && !weights.words && !weights.tokenWords && !weights.hardNegatives;
  // the regions' captions: their pooled features for the contrastive and word terms, their prompts for selection
  const regionText = batch.regions && (!selectionOnly || weights.regionSelection) ? encodeText(w, config.text, batch.regions.text, batch.regions.owner.length) : null;
  const regions = batch.regions && { owner: batch.regions.owner, boxes: batch.regions.boxes, ...(weights.regionSelection && regionText ? { prompt: regionText.prompt } : {}) };
  // with no contrastive or word term only the box losses remain, and they see selection alone:
  // the look and the pooled features are not computed
  if (selectionOnly) {
    const vision = pretrainSelection(w, config.vision, pixels, text.prompt, batch.gtSelectionMaps, regions);
    return { textPooled: null, regionText: null, pooledOutput: null, regionPooled: null, boxTokens: null, regionTokens: null, negativeText: null, regionNegativeText: null, selectionMaps: [], ...vision };
  }
  const vision = encodePretrain(w, config.vision, pixels, text.prompt, batch.gtSelectionMaps, batch.isGlobalText, regions, { tokenMeans: Boolean(weights.tokenWords) });
  const neg = weights.hardNegatives && batch.negatives;
  const pooledOf = (ids: Int32Array | undefined): tf.Tensor | null => (ids?.length ? encodeText(w, config.text, ids, ids.length / (batch.text.length / B)).pooledOutput : null);
  return { textPooled: text.pooledOutput, regionText: regionText?.pooledOutput ?? null, negativeText: neg ? pooledOf(neg.text) : null, regionNegativeText: neg ? pooledOf(neg.regionText) : null, ...vision };
}

/**
 * The loss terms over a batch's tower outputs: SigLIP over every (box, caption) pair — the
 * batch's own and its regions' — the caption-word term, and the box terms.
 */
export function pretrainTerms(w: Weights, config: PS3Config, towers: PretrainTowers, labels: PretrainLabels, weights: LossWeights = DEFAULT_LOSS_WEIGHTS): ObjectiveOutput {
  // the regions' selections are more rows of the box terms, each a local box
  const rs = towers.regionSelection;
  const rows = (own: tf.Tensor[], more: tf.Tensor[] | undefined): tf.Tensor[] => (more ? own.map((p, i) => tf.concat([p, more[i]!])) : own);
  const targets = boxTargets(rs ? towers.gtAtScale.map((g, i) => concatArrays([g, rs.gtAtScale[i]!])) : towers.gtAtScale);
  const isGlobal = rs ? concatArrays([Float32Array.from(labels.isGlobalText), new Float32Array(rs.topdownSelectionProbs[0]!.shape[0]!)]) : labels.isGlobalText;
  const priorBox = boxLoss(rows(towers.bottomupSelectionProbs, rs?.bottomupSelectionProbs), targets, isGlobal, weights.box);
  const posteriorBox = boxLoss(rows(towers.topdownSelectionProbs, rs?.topdownSelectionProbs), targets, isGlobal, weights.box);
  const selection = { bottomupSelectionProbs: towers.bottomupSelectionProbs, topdownSelectionProbs: towers.topdownSelectionProbs, selectionMaps: towers.selectionMaps };
  if (!towers.pooledOutput || !towers.textPooled) {
    // the selection-only objective: the contrastive outputs are zeros
    const B = labels.isGlobalText.length;
    const zero = tf.zeros([B, config.vision.trunk.width]);
    return {
      total: tf.addN([tf.mul(priorBox, weights.priorBox), tf.mul(posteriorBox, weights.posteriorBox)]),
      contrastive: tf.scalar(0),
      words: tf.scalar(0),
      tokenWords: tf.scalar(0),
      hardNegatives: tf.scalar(0),
      priorBox,
      posteriorBox,
      logits: tf.zeros([B, B]),
      imageFeatures: zero,
      textFeatures: zero,
      pooledOutput: zero,
      ...selection,
      selectionMaps: [],
    };
  }
  // the regions' pairs join the batch's: [B + R, D] on each side, every other pair a negative
  const imageFeatures = l2Normalize(towers.regionPooled ? tf.concat([towers.pooledOutput, towers.regionPooled]) : towers.pooledOutput);
  const textFeatures = l2Normalize(towers.regionText ? tf.concat([towers.textPooled, towers.regionText]) : towers.textPooled);
  const scale = w.has('logit_scale') ? w.get('logit_scale') : tf.scalar(config.initLogitScale);
  const bias = w.has('logit_bias') ? w.get('logit_bias') : tf.scalar(config.initLogitBias);
  const { loss: contrastive, logits } = siglipLoss(imageFeatures, textFeatures, scale, bias);
  const words = weights.words ? wordLoss(w, config, towers.pooledOutput, towers.regionPooled, labels) : tf.scalar(0);
  const tokenWords = weights.tokenWords && towers.boxTokens ? wordLoss(w, config, towers.boxTokens, towers.regionTokens, labels) : tf.scalar(0);
  const hardNegatives = hardNegativeTerm(towers, labels, imageFeatures, textFeatures, scale);
  // a term weighted 0 stays out of the total, so the gradient does not run back through what only it reads
  const terms = [[contrastive, weights.contrastive], [priorBox, weights.priorBox], [posteriorBox, weights.posteriorBox], [words, weights.words ?? 0], [tokenWords, weights.tokenWords ?? 0], [hardNegatives, weights.hardNegatives?.weight ?? 0]] as const;
  const weighted = terms.filter(([, k]) => k !== 0).map(([t, k]) => tf.mul(t, k));
  const total = weighted.length === 1 ? weighted[0]! : tf.addN(weighted);
  return { total, contrastive, words, tokenWords, hardNegatives, priorBox, posteriorBox, logits, imageFeatures, textFeatures, pooledOutput: towers.pooledOutput, ...selection };
}

/** The hard-negative term over the pairs the contrastive term scores ([B + R] rows: own, then regions'); 0 without negatives. */
function hardNegativeTerm(towers: PretrainTowers, labels: PretrainLabels, imageFeatures: tf.Tensor, textFeatures: tf.Tensor, scale: tf.Tensor): tf.Tensor {
  const neg = labels.negatives;
  if (!neg || !towers.negativeText) return tf.scalar(0);
  const negatives = l2Normalize(towers.regionNegativeText ? tf.concat([towers.negativeText, towers.regionNegativeText]) : towers.negativeText);
  const valid = neg.regionValid ? concatArrays([neg.valid, neg.regionValid]) : neg.valid;
  return hardNegativeLoss(imageFeatures, textFeatures, negatives, valid, scale);
}

/** One pre-training forward pass and its loss: the towers, then the terms over the whole batch. */
export function pretrainObjective(w: Weights, config: PS3Config, batch: PretrainBatch, weights: LossWeights = DEFAULT_LOSS_WEIGHTS): ObjectiveOutput {
  return pretrainTerms(w, config, pretrainTowers(w, config, batch, weights), batch, weights);
}

/**
 * The caption-word term: each local pair's box feature [P, D] scores the batch's words —
 * those some caption of the batch holds and not every one (padding and the end-of-text token
 * drop out) — through the text tower's token embedding, as the contrastive term scores a pair:
 * e^t cos(feature, embedding) + b with its logit scale and bias, so the scores have a useful range
 * whatever the embeddings' norms (logits [P, K]); mean binary cross-entropy against the words of
 * each caption. Over the whole vocabulary the term would mostly teach that ids no caption uses
 * are absent (the tiny presets have 4,096 ids for a word tokenizer's ~140). Unlike the
 * contrastive term its signal does not come from the batch's other pairs, so a batch of 2 at 4K
 * still says, for every box, which colour, shape and characters its caption names. Not in the
 * reference.
 *
 * The box feature is its pooled feature (`words`) or the plain mean of the high-res tokens the
 * pooling reads (`tokenWords`): the MAP head can learn to read a word from tokens none of which
 * carries it, while a multimodal model's projector reads the tokens themselves, so the second
 * puts the words in the tokens. `features` [B, D] (the global rows are skipped), `regionFeatures` [R, D].
 */
export function wordLoss(w: Weights, config: PS3Config, features: tf.Tensor, regionFeatures: tf.Tensor | null, batch: PretrainLabels): tf.Tensor {
  if (features.shape[1] !== config.text.width) throw new UserError(`the caption-word term compares ${features.shape[1]}-wide image features with the ${config.text.width}-wide token embedding: the trunk and text widths must match`);
  const B = batch.isGlobalText.length;
  const N = batch.text.length / B;
  const local = [...batch.isGlobalText].flatMap((g, b) => (g ? [] : [b]));
  const captions: Int32Array[] = local.map((b) => batch.text.subarray(b * N, (b + 1) * N));
  const R = regionFeatures?.shape[0] ?? 0;
  for (let k = 0; k < R; k++) captions.push(batch.regions!.text.subarray(k * N, (k + 1) * N));
  const sets = captions.map((ids) => new Set(ids));
  const words = [...new Set(captions.flatMap((ids) => [...ids]))].filter((id) => id !== config.text.padId && !sets.every((s) => s.has(id)));
  if (!words.length) return tf.scalar(0);
  const target = Float32Array.from(sets.flatMap((s) => words.map((id) => (s.has(id) ? 1 : 0))));
  return tf.tidy(() => {
    const ownLocal = local.length ? tf.gather(features, tf.tensor1d(local, 'int32')) : null;
    const boxes = ownLocal && regionFeatures ? tf.concat([ownLocal, regionFeatures]) : (ownLocal ?? regionFeatures!);
    const scale = w.has('logit_scale') ? w.get('logit_scale') : tf.scalar(config.initLogitScale);
    const bias = w.has('logit_bias') ? w.get('logit_bias') : tf.scalar(config.initLogitBias);
    const embeddings = tf.gather(w.get('text_model.token_embedding.weight'), tf.tensor1d(words, 'int32')); // [K, D]
    const cosines = tf.matMul(l2Normalize(boxes), l2Normalize(embeddings), false, true);
    const logits = tf.add(tf.mul(cosines, tf.exp(tf.reshape(scale, []))), tf.reshape(bias, [])); // [P, K]
    const y = tf.tensor2d(target, [captions.length, words.length]);
    return tf.neg(tf.mean(tf.add(tf.mul(y, logSigmoid(logits)), tf.mul(tf.sub(1, y), logSigmoid(tf.neg(logits))))));
  });
}

/** Weights the selection-only objective never reads: their gradient is not asked for (nor applied). */
const SELECTION_ONLY_UNUSED = [/^vision_model\.trunk\.attn_pool\./, /^vision_model\.trunk\.norm\./, /^vision_model\.pos_emb_residual\./, /^logit_(scale|bias)$/];

/** Weights only the box terms read (selection and prompts): with both box weights 0 their gradient is not asked for (nor applied). */
const BOX_ONLY = [/^vision_model\.selection_feature_proj\./, /^vision_model\.highres_selection_feature_module\./, /^vision_model\.prompt_proj_for_highres\./, /^vision_model\.prior_prompt$/, /^text_model\.prompt_proj\./];

/** The loss and its terms, as numbers. */
export interface LossTerms {
  readonly total: number;
  readonly contrastive: number;
  readonly priorBox: number;
  readonly posteriorBox: number;
  readonly words: number;
  readonly tokenWords: number;
  readonly hardNegatives: number;
}

/** An objective output's terms, read back. */
export function termValues(out: ObjectiveOutput): LossTerms {
  const v = (t: tf.Tensor): number => t.dataSync()[0]!;
  return { total: v(out.total), contrastive: v(out.contrastive), priorBox: v(out.priorBox), posteriorBox: v(out.posteriorBox), words: v(out.words), tokenWords: v(out.tokenWords), hardNegatives: v(out.hardNegatives) };
}

export interface LossAndGrads {
  readonly loss: LossTerms;
  /**
   * The contrastive pairs' in-batch top-1: the share of captions whose own image (box) has the
   * highest logit of the batch's, and the number of pairs (chance is 1 / pairs). The loss alone
   * does not say whether features tell pairs apart: its "all alike" level moves with the pairs.
   */
  readonly pairs: { top1: number; count: number };
  /** gradient of the total loss for each key of `trainable` */
  readonly grads: Map<string, tf.Tensor>;
}

/**
 * The keys whose gradient a step asks for: the `trainable` ones (every key by default) but those
 * no term of nonzero weight reads.
 */
export function gradientKeys(w: Weights, options: { trainable?: readonly string[]; lossWeights?: LossWeights }): string[] {
  const all = options.trainable ? [...options.trainable] : [...w.keys()];
  // without the contrastive term the look, the pooling head and the logit scale play no part
  const lw = options.lossWeights;
  const unused = [
    // the word terms alone read the text tower's token embedding and nothing else of it; the
    // token-word term alone does not read the pooling head
    ...(lw?.contrastive === 0 && !lw.hardNegatives
      ? lw.words || lw.tokenWords
        ? [/^text_model\.(?!token_embedding\.)/, ...(lw.words ? [] : [/^vision_model\.trunk\.attn_pool\./])]
        : SELECTION_ONLY_UNUSED
      : []),
    ...(lw?.priorBox === 0 && lw.posteriorBox === 0 ? BOX_ONLY : []),
    // the hard-negative term's softmax cancels the logit bias, which only the others read
    ...(lw?.contrastive === 0 && lw.hardNegatives && !lw.words && !lw.tokenWords ? [/^logit_bias$/] : []),
  ];
  return all.filter((k) => !unused.some((re) => re.test(k)));
}

/**
 * The loss and its gradient with respect to the `trainable` keys (every key by default); other
 * weights are constants. Everything else the pass made is disposed.
 */
export function lossAndGrads(w: Weights, config: PS3Config, batch: PretrainBatch, options: { trainable?: readonly string[]; lossWeights?: LossWeights } = {}): LossAndGrads {
  const keys = gradientKeys(w, options);
  const lw = options.lossWeights;
  let terms: LossTerms | undefined;
  let pairs = { top1: 0, count: 0 };
  const { value, grads } = tf.tidy(() => {
    const f = (...xs: tf.Tensor[]): tf.Scalar => {
      const map = new Map<string, tf.Tensor>();
      for (const [k, t] of w.entries()) map.set(k, t);
      keys.forEach((k, i) => map.set(k, xs[i]!));
      const out = pretrainObjective(new Weights(map, true), config, batch, options.lossWeights);
      terms = termValues(out);
      if (lw?.contrastive !== 0) pairs = inBatchTop1(out.logits);
      return tf.reshape(out.total, []) as tf.Scalar;
    };
    // a batch can leave some keys, or all, unread by its terms (global captions alone under the word
    // or hard-negative term: nothing to score): their gradient is zero, not an error
    const xs = keys.map((k) => w.get(k));
    const r = tf.engine().gradients(() => f(...xs), xs, undefined, true);
    return { value: r.value, grads: r.grads.map((g, i) => g ?? tf.zerosLike(xs[i]!)) };
  });
  value.dispose();
  return { loss: terms!, pairs, grads: new Map(keys.map((k, i) => [k, grads[i]!])) };
}

/** logits [n images, n texts]: per text (column), is its own image the row of the highest logit. */
export function inBatchTop1(logits: tf.Tensor): { top1: number; count: number } {
  const n = logits.shape[0]!;
  const v = logits.dataSync();
  let hits = 0;
  for (let j = 0; j < n; j++) {
    let best = 0;
    for (let i = 1; i < n; i++) if (v[i * n + j]! > v[best * n + j]!) best = i;
    if (best === j) hits++;
  }
  return { top1: hits / n, count: n };
}
