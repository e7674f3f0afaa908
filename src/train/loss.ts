/**
 * PS3's pre-training loss: the SigLIP sigmoid loss between image and text features, plus two
 * box-supervision terms that teach the selector where to look — binary cross-entropy of the
 * bottom-up and top-down selection probabilities against the ground-truth box, per scale.
 */
import { tf } from '../tensor/engine.js';

/**
 * log sigmoid(z) = min(z, 0) - log(1 + e^-|z|), stable for any z. (tf.logSigmoid's custom
 * gradient closes over its input, which breaks when a tidy scope has released it.)
 */
export function logSigmoid(z: tf.Tensor): tf.Tensor {
  return tf.sub(tf.minimum(z, 0), tf.log1p(tf.exp(tf.neg(tf.abs(z)))));
}

/**
 * SigLIP: logits = e^t <x_i, z_j> + b over L2-normalised features [B, D]; labels +1 on the
 * diagonal, -1 elsewhere; loss = -sum log sigmoid(label * logit) / B.
 */
export function siglipLoss(imageFeatures: tf.Tensor, textFeatures: tf.Tensor, logitScale: tf.Tensor, logitBias: tf.Tensor): { loss: tf.Tensor; logits: tf.Tensor } {
  return tf.tidy(() => {
    const B = imageFeatures.shape[0]!;
    const logits = tf.add(tf.mul(tf.matMul(imageFeatures, tf.transpose(textFeatures)), tf.exp(tf.reshape(logitScale, []))), tf.reshape(logitBias, []));
    const labels = tf.sub(tf.mul(tf.eye(B), 2), 1);
    const loss = tf.div(tf.neg(tf.sum(logSigmoid(tf.mul(labels, logits)))), B);
    return { loss, logits };
  });
}

/**
 * The box target of each high-res scale: the ground-truth map area-downsampled to the scale's
 * grid ([B, gh, gw] per scale, as the pre-training layout computes it) binarised at > 0.
 */
export function boxTargets(gtAtScale: readonly Float32Array[]): Float32Array[] {
  return gtAtScale.map((g) => g.map((v) => (v > 0 ? 1 : 0)));
}

/**
 * `bce`: the reference's mean over every patch. `balanced`: the mean over the box's patches and
 * the mean over the rest, averaged — a box of one or two patches among hundreds otherwise leaves
 * "select nothing" within a hair of the optimum, and the selector (and the prompts that drive it)
 * learn nothing about which object a caption names. `softmax`: a look keeps the top-ranked
 * patches, so rank the box above the rest: -log of the box's share of a softmax over the
 * patches' logits (log p - log(1 - p)); its gradient falls on the patches that outrank the box,
 * not on the hundreds already far below it.
 */
export type BoxLossKind = 'bce' | 'balanced' | 'softmax';

/** A large negative added to the logits outside the box: their exp underflows to 0. */
const OUTSIDE = -1e4;

/**
 * Box supervision: per scale, the mean binary cross-entropy (log clamped at -100, as PyTorch's)
 * over the local-caption rows' patches (or, `softmax`, the mean over those rows whose box covers
 * a patch of the scale of -log(box's softmax share)), averaged over scales. Rows with a global
 * caption carry no box and are left out; with none left the term is 0.
 */
export function boxLoss(probs: readonly tf.Tensor[], targets: readonly Float32Array[], isGlobalText: ArrayLike<number>, kind: BoxLossKind = 'bce'): tf.Tensor {
  return tf.tidy(() => {
    const B = isGlobalText.length;
    const local = Array.from({ length: B }, (_, b): number => (isGlobalText[b]! > 0 ? 0 : 1));
    const nLocal = local.reduce((a, c) => a + c, 0);
    // no box to supervise: zero, but still a function of the probabilities so the selector's
    // weights stay on the gradient tape
    if (nLocal === 0) return tf.mul(tf.addN(probs.map((p) => tf.sum(p))), 0);
    const rowWeight = tf.tensor1d(local);
    const terms = probs.map((p, i) => {
      const [, gh, gw] = p.shape as [number, number, number];
      const t = tf.tensor(targets[i]!, p.shape);
      const logP = tf.maximum(tf.log(p), -100);
      const log1mP = tf.maximum(tf.log(tf.sub(1, p)), -100);
      if (kind === 'softmax') {
        const z = tf.reshape(tf.sub(logP, log1mP), [B, gh * gw]);
        const inBox = tf.reshape(t, [B, gh * gw]);
        const boxZ = tf.add(z, tf.mul(tf.sub(1, inBox), OUTSIDE));
        // a row whose box covers no patch of this scale has nothing to rank
        const ranked = tf.mul(rowWeight, tf.cast(tf.greater(tf.sum(inBox, 1), 0), 'float32'));
        const n = tf.maximum(tf.sum(ranked), 1);
        return tf.div(tf.sum(tf.mul(tf.sub(tf.logSumExp(z, 1), tf.logSumExp(boxZ, 1)), ranked)), n);
      }
      if (kind === 'balanced') {
        const inBox = tf.sum(t, [1, 2]); // [B]
        const outBox = tf.sub(gh * gw, inBox);
        const pos = tf.div(tf.neg(tf.sum(tf.mul(t, logP), [1, 2])), tf.maximum(inBox, 1));
        const neg = tf.div(tf.neg(tf.sum(tf.mul(tf.sub(1, t), log1mP), [1, 2])), tf.maximum(outBox, 1));
        return tf.div(tf.sum(tf.mul(tf.mul(tf.add(pos, neg), 0.5), rowWeight)), nLocal);
      }
      const bce = tf.neg(tf.add(tf.mul(t, logP), tf.mul(tf.sub(1, t), log1mP))); // [B, gh, gw]
      return tf.div(tf.sum(tf.mul(tf.sum(bce, [1, 2]), rowWeight)), nLocal * gh * gw);
    });
    return tf.div(tf.addN(terms), probs.length);
  });
}
