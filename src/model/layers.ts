/**
 * The small layers every tower shares, as functions of named weights. Linear weights are stored
 * PyTorch-style [out, in], so a linear layer is x @ W^T + b.
 */
import { tf } from '../tensor/engine.js';
import type { Weights } from './weights.js';

/** x [..., in] -> [..., out], or only the first `outputs` of the out features (the rest never computed). */
export function linear(w: Weights, prefix: string, x: tf.Tensor, outputs?: number): tf.Tensor {
  return tf.tidy(() => {
    const full = w.transposed(`${prefix}.weight`); // [in, out]
    const inDim = x.shape[x.rank - 1]!;
    const outDim = outputs ?? full.shape[1]!;
    const weight = outputs === undefined ? full : tf.slice(full, [0, 0], [inDim, outDim]);
    let y = tf.matMul(tf.reshape(x, [-1, inDim]), weight);
    if (w.has(`${prefix}.bias`)) y = tf.add(y, outputs === undefined ? w.get(`${prefix}.bias`) : tf.slice(w.get(`${prefix}.bias`), [0], [outDim]));
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
 * timm's Mlp: fc1 -> GELU -> (LayerNorm, eps 1e-5, when the module has one) -> fc2 (its first
 * `outputs` features only, when given). `selection_feature_proj` and `prompt_proj` carry the
 * norm; block MLPs do not.
 */
export function mlp(w: Weights, prefix: string, x: tf.Tensor, options: { tanh?: boolean; outputs?: number } = {}): tf.Tensor {
  return tf.tidy(() => {
    let h = gelu(linear(w, `${prefix}.fc1`, x), options.tanh);
    if (w.has(`${prefix}.norm.weight`)) h = layerNorm(w, `${prefix}.norm`, h, 1e-5);
    return linear(w, `${prefix}.fc2`, h, options.outputs);
  });
}

/** F.normalize along the last axis: x / max(||x||, 1e-12). */
export function l2Normalize(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', -1, true), 1e-12)));
}

/**
 * Multi-head scaled dot-product attention on token-major tensors: q [B, N, H * d], k and v
 * [B, M, H * d] -> [B, N, H * d]; `bias` [B or 1, 1, N or 1, M] is added to the scores. Each
 * (image, head) pair is a pair of 2-d matmuls: TensorFlow.js's WASM backend runs batched
 * matmuls several times slower than the same work as 2-d ones.
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, heads: number, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [B, N, C] = q.shape as [number, number, number];
    const M = k.shape[1]!;
    const d = C / heads;
    const scale = 1 / Math.sqrt(d);
    const images: tf.Tensor[] = [];
    for (let b = 0; b < B; b++) {
      const qb = tf.reshape(tf.slice(q, [b, 0, 0], [1, N, C]), [N, C]);
      const kbT = tf.transpose(tf.reshape(tf.slice(k, [b, 0, 0], [1, M, C]), [M, C])); // [C, M]
      const vb = tf.reshape(tf.slice(v, [b, 0, 0], [1, M, C]), [M, C]);
      const biasB = bias ? tf.reshape(tf.slice(bias, [bias.shape[0] === 1 ? 0 : b, 0, 0, 0], [1, 1, -1, M]), [-1, M]) : undefined;
      const headsOut: tf.Tensor[] = [];
      for (let h = 0; h < heads; h++) {
        let scores = tf.mul(tf.matMul(tf.slice(qb, [0, h * d], [N, d]), tf.slice(kbT, [h * d, 0], [d, M])), scale); // [N, M]
        if (biasB) scores = tf.add(scores, biasB);
        headsOut.push(tf.matMul(tf.softmax(scores), tf.slice(vb, [0, h * d], [M, d]))); // [N, d]
      }
      images.push(heads === 1 ? headsOut[0]! : tf.concat(headsOut, 1));
    }
    return tf.reshape(B === 1 ? images[0]! : tf.stack(images), [B, N, C]);
  });
}
