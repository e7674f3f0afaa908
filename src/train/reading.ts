/**
 * The reading objective: glyph crops through PS3's trunk as a look sees them at the top scale,
 * the mean token through a linear head (`reading_head`) scored against the character. Not the
 * reference's: a stage that teaches a trunk strokes that local captions name too weakly for a
 * small model to learn them (models/ps3-tiny/TRAINING.md).
 *
 * A crop's tokens take the top scale's position embedding (and residual) of the grid cells it
 * covers, so what the trunk learns is what it meets in a high-res look. They attend to each other
 * only: a look's tokens also attend to the low-res tokens, which a crop has none of.
 *
 * The keep term (`keepLoss`, crops in readingKeep.ts) holds the trunk's tokens on natural scenes
 * near another trunk's, so that a stage rewarding strokes alone does not wear the rest out.
 */
import { tf } from '../tensor/engine.js';
import type { VisionConfig } from '../io/config.js';
import { Rng } from '../rng.js';
import { linear } from '../model/layers.js';
import { finalNorm, patchEmbed, patchify, selectedPositionEmbedding, trunk, type KV } from '../model/vit.js';
import { lowRes } from '../model/encoder.js';
import { Weights } from '../model/weights.js';

export const READING_HEAD = 'reading_head';
const PATCH_EMBED = 'vision_model.trunk.patch_embed.';
const BLOCKS = 'vision_model.trunk.blocks.';

/**
 * What the stage trains: the patch embedding, the blocks and the head. Position embeddings stay,
 * so the low-res tokens keep their places and a look its own; the pooling head and the text side
 * play no part.
 */
export function readingTrainable(keys: Iterable<string>): string[] {
  return [...keys].filter((k) => k.startsWith(PATCH_EMBED) || k.startsWith(BLOCKS) || k.startsWith(`${READING_HEAD}.`));
}

/** A fresh head: weight [classes, width] ~ N(0, 0.02^2), bias zero (timm's classifier init). */
export function newReadingHead(width: number, classes: number, seed: number): Map<string, tf.Tensor> {
  const weight = new Rng(seed).fillNormal(new Float32Array(classes * width), 0.02);
  return new Map([
    [`${READING_HEAD}.weight`, tf.tensor2d(weight, [classes, width])],
    [`${READING_HEAD}.bias`, tf.zeros([classes])],
  ]);
}

/** Square crops of one scale, each a block of that scale's patch grid. */
export interface CropBatch {
  readonly batch: number;
  /** crop side in pixels, a whole number of patches */
  readonly side: number;
  /** [batch, 3, side, side], normalised as the model's processor does */
  readonly pixels: Float32Array;
  /** [batch * cells] flat indices into the scale's patch grid of each crop's cells, row-major */
  readonly cells: Int32Array;
  /** index into the config's scales; the top scale when absent */
  readonly scale?: number;
  /**
   * a scene's low-res keys and values (constants): the crops then run as one look, each crop's
   * tokens attending to every crop's and to the scene's low-res tokens, as a look's tokens do
   * (readingContext.ts), instead of each crop alone
   */
  readonly context?: readonly KV[];
}

export interface ReadingBatch extends CropBatch {
  /** [batch] character indices */
  readonly labels: Int32Array;
}

/** [g * g] flat indices of the g x g block at (row0, col0) of a grid `grid` cells wide, row-major. */
export function blockCells(row0: number, col0: number, g: number, grid: number): Int32Array {
  const cells = new Int32Array(g * g);
  for (let r = 0; r < g; r++) for (let q = 0; q < g; q++) cells[r * g + q] = (row0 + r) * grid + col0 + q;
  return cells;
}

/**
 * The crops' final tokens [B, n, D], each crop's tokens attending to each other, with the scale's
 * position embedding of the cells it covers (and the scale's residual, as a look adds it; the
 * low-res scale has none).
 */
export function cropTokens(w: Weights, cfg: VisionConfig, b: CropBatch): tf.Tensor {
  return tf.tidy(() => {
    const P = cfg.trunk.patchSize;
    const scale = b.scale ?? cfg.scales.length - 1;
    const grid = Math.floor(cfg.scales[scale]! / P);
    const { data } = patchify(b.pixels, { batch: b.batch, channels: 3, height: b.side, width: b.side }, P);
    const embedded = patchEmbed(w, tf.tensor2d(data, [data.length / (3 * P * P), 3 * P * P]), b.batch); // [B, n, D]
    const residual = cfg.separatePosEmb && scale > 0 ? scale - 1 : undefined;
    const pos = selectedPositionEmbedding(w, grid, grid, b.cells, residual); // [B * n, D]
    const tokens = tf.add(embedded, tf.reshape(pos, embedded.shape));
    if (!b.context) {
      const { hiddenStates } = trunk(w, cfg.trunk, tokens);
      return finalNorm(w, cfg.trunk, hiddenStates[hiddenStates.length - 1]!);
    }
    // [B, n, D] -> one look [1, B * n, D] beside the scene's low-res tokens -> [B, n, D]
    const { hiddenStates } = trunk(w, cfg.trunk, tf.reshape(tokens, [1, -1, cfg.trunk.width]), { cache: [...b.context] });
    return tf.reshape(finalNorm(w, cfg.trunk, hiddenStates[hiddenStates.length - 1]!), tokens.shape);
  });
}

/** Logits [B, classes]: the head on the crops' mean token. */
export function readingLogits(w: Weights, cfg: VisionConfig, b: ReadingBatch): tf.Tensor {
  return tf.tidy(() => linear(w, READING_HEAD, tf.mean(cropTokens(w, cfg, b), 1))); // [B, D] -> [B, classes]
}

/** Crops of natural scenes with the tokens another trunk (the kept one) gives them: [batch * n * D]. */
export interface KeepBatch extends CropBatch {
  readonly kept: Float32Array;
  /**
   * in a look: the crops' scene's low-res image [3, s0, s0] and the kept trunk's final low-res
   * tokens [n0 * D]; the crops then run as one look beside the trunk's own low-res pass
   */
  readonly lowres?: { readonly pixels: Float32Array; readonly kept: Float32Array };
}

/**
 * Mean squared difference between the crops' tokens and the kept trunk's, over every token and
 * channel; in a look, over the low-res tokens and the look's together, the gradient reaching the
 * low-res pass through the look's attention too.
 */
export function keepLoss(w: Weights, cfg: VisionConfig, b: KeepBatch): tf.Scalar {
  return tf.tidy(() => {
    if (!b.lowres) {
      const tokens = cropTokens(w, cfg, b);
      return tf.mean(tf.squaredDifference(tokens, tf.tensor(b.kept, tokens.shape))) as tf.Scalar;
    }
    const s0 = cfg.scales[0]!;
    const pass = lowRes(w, cfg, { data: b.lowres.pixels, batch: 1, height: s0, width: s0 }, true);
    const low = finalNorm(w, cfg.trunk, pass.hiddenStates[pass.hiddenStates.length - 1]!); // [1, n0, D]
    const look = cropTokens(w, cfg, { ...b, context: pass.kvCache }); // [B, n, D]
    const sum = tf.add(tf.sum(tf.squaredDifference(low, tf.tensor(b.lowres.kept, low.shape))), tf.sum(tf.squaredDifference(look, tf.tensor(b.kept, look.shape))));
    return tf.div(sum, low.size + look.size) as tf.Scalar;
  });
}

export interface ReadingStep {
  /** the reading cross-entropy */
  readonly loss: number;
  /** the keep term before its weight; NaN without one */
  readonly keep: number;
  /** crops of the batch whose character scored highest */
  readonly correct: number;
  readonly grads: Map<string, tf.Tensor>;
}

/**
 * Softmax cross-entropy of the batch, plus `keep.weight` times the keep term of `keep.batch` when
 * given, and the sum's gradient with respect to `trainable`; other weights are constants.
 */
export function readingLossAndGrads(w: Weights, cfg: VisionConfig, b: ReadingBatch, trainable: readonly string[], keep?: { batch: KeepBatch; weight: number }): ReadingStep {
  let correct = 0;
  let ce = NaN;
  let kept = NaN;
  const { value, grads } = tf.tidy(() => {
    const xs = trainable.map((k) => w.get(k));
    const f = (): tf.Scalar => {
      const map = new Map(w.entries());
      trainable.forEach((k, i) => map.set(k, xs[i]!));
      const weights = new Weights(map, true);
      const logits = readingLogits(weights, cfg, b);
      const classes = logits.shape[1]!;
      const hits = tf.equal(tf.argMax(logits, 1), tf.tensor1d(b.labels, 'int32'));
      correct = tf.sum(tf.cast(hits, 'int32')).dataSync()[0]!;
      const reading = tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(b.labels, 'int32'), classes), logits) as tf.Scalar;
      ce = reading.dataSync()[0]!;
      if (!keep) return reading;
      const term = keepLoss(weights, cfg, keep.batch);
      kept = term.dataSync()[0]!;
      return tf.add(reading, tf.mul(term, keep.weight)) as tf.Scalar;
    };
    const r = tf.engine().gradients(f, xs, undefined, true);
    return { value: r.value, grads: r.grads.map((g, i) => g ?? tf.zerosLike(xs[i]!)) };
  });
  value.dispose();
  return { loss: ce, keep: kept, correct, grads: new Map(trainable.map((k, i) => [k, grads[i]!])) };
}

/** The character each crop of the batch scores highest, without gradients: [B] indices. */
export function readingPredictions(w: Weights, cfg: VisionConfig, b: ReadingBatch): Int32Array {
  return tf.tidy(() => tf.argMax(readingLogits(w, cfg, b), 1).dataSync() as Int32Array);
}
