/**
 * The small layers every tower shares, as functions of named weights. Linear weights are stored
 * PyTorch-style [out, in], so a linear layer is x @ W^T + b.
 */
import { tf } from '../tensor/engine.js';
import type { Weights } from './weights.js';

/** x [..., in] -> [..., out] */
export function linear(w: Weights, prefix: string, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const weight = w.get(`${prefix}.weight`);
    const inDim = x.shape[x.rank - 1]!;
    const outDim = weight.shape[0]!;
    let y = tf.matMul(tf.reshape(x, [-1, inDim]), weight, false, true);
    if (w.has(`${prefix}.bias`)) y = tf.add(y, w.get(`${prefix}.bias`));
    return tf.reshape(y, [...x.shape.slice(0, -1), outDim]);
  });
}

/** LayerNorm over the last axis (biased variance, as PyTorch). */
export function layerNorm(w: Weights, prefix: string, x: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const centred = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centred), -1, true);
    const normed = tf.mul(centred, tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, w.get(`${prefix}.weight`)), w.get(`${prefix}.bias`));
  });
}

/** GELU: exact (erf) or the tanh approximation. */
export function gelu(x: tf.Tensor, tanh = false): tf.Tensor {
  return tf.tidy(() => {
    if (tanh) {
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  });
}

/**
 * timm's Mlp: fc1 -> GELU -> (LayerNorm, eps 1e-5, when the module has one) -> fc2.
 * `selection_feature_proj` and `prompt_proj` carry the norm; block MLPs do not.
 */
export function mlp(w: Weights, prefix: string, x: tf.Tensor, options: { tanh?: boolean } = {}): tf.Tensor {
  return tf.tidy(() => {
    let h = gelu(linear(w, `${prefix}.fc1`, x), options.tanh);
    if (w.has(`${prefix}.norm.weight`)) h = layerNorm(w, `${prefix}.norm`, h, 1e-5);
    return linear(w, `${prefix}.fc2`, h);
  });
}

/** F.normalize along the last axis: x / max(||x||, 1e-12). */
export function l2Normalize(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', -1, true), 1e-12)));
}

/** Scaled dot-product attention. q [B, H, N, d], k and v [B, H, M, d] -> [B, H, N, d]. */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = q.shape[3]!;
    let scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
    if (bias) scores = tf.add(scores, bias);
    return tf.matMul(tf.softmax(scores), v);
  });
}

/** [B, N, H * d] -> [B, H, N, d] */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor {
  const [B, N, C] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [B, N, heads, C / heads]), [0, 2, 1, 3]);
}

/** [B, H, N, d] -> [B, N, H * d] */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [B, H, N, d] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [B, N, H * d]);
}
