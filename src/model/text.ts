/**
 * The text tower (open_clip's TextTransformer as PS3 ships it): token and position embeddings,
 * pre-norm blocks with packed `in_proj`, the final LayerNorm, pooling at one position, the text
 * projection, and `prompt_proj` which turns the L2-normalised text feature into the prompt that
 * drives top-down selection.
 */
import { tf } from '../tensor/engine.js';
import type { TextConfig } from '../io/config.js';
import { UserError } from '../errors.js';
import { attention, gelu, l2Normalize, layerNorm, mlp } from './layers.js';
import type { Weights } from './weights.js';

const X = 'text_model';

export interface TextOutput {
  /** [B, output_dim] */
  readonly pooledOutput: tf.Tensor;
  /** [B, prompt_proj_dim]: the top-down prompt */
  readonly prompt: tf.Tensor;
}

function textBlock(w: Weights, cfg: TextConfig, i: number, x: tf.Tensor, mask: tf.Tensor | undefined): tf.Tensor {
  return tf.tidy(() => {
    const p = `${X}.transformer.resblocks.${i}`;
    const [B, N, W] = x.shape as [number, number, number];
    const h = layerNorm(w, `${p}.ln_1`, x, cfg.normEps);
    const qkv = tf.add(tf.matMul(tf.reshape(h, [B * N, W]), w.transposed(`${p}.attn.in_proj_weight`)), w.get(`${p}.attn.in_proj_bias`));
    const [q, k, v] = tf.split(tf.reshape(qkv, [B, N, 3 * W]), 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const attended = tf.reshape(attention(q, k, v, cfg.heads, mask), [B * N, W]);
    const out = tf.add(tf.matMul(attended, w.transposed(`${p}.attn.out_proj.weight`)), w.get(`${p}.attn.out_proj.bias`));
    const y = tf.add(x, tf.reshape(out, [B, N, W]));
    const m = layerNorm(w, `${p}.ln_2`, y, cfg.normEps);
    const fc = tf.add(tf.matMul(tf.reshape(m, [B * N, W]), w.transposed(`${p}.mlp.c_fc.weight`)), w.get(`${p}.mlp.c_fc.bias`));
    const proj = tf.add(tf.matMul(gelu(fc, cfg.geluTanh), w.transposed(`${p}.mlp.c_proj.weight`)), w.get(`${p}.mlp.c_proj.bias`));
    return tf.add(y, tf.reshape(proj, [B, N, W]));
  });
}

/** Token ids [B, N] (N <= context length) -> pooled output and prompt. */
export function encodeText(w: Weights, cfg: TextConfig, ids: Int32Array, batch: number): TextOutput {
  const N = ids.length / batch;
  if (!Number.isInteger(N) || N < 1 || N > cfg.contextLength) {
    throw new UserError(`text: ${ids.length} token ids do not make [${batch}, N] with 1 <= N <= ${cfg.contextLength}`);
  }
  for (const id of ids) {
    if (id < 0 || id >= cfg.vocabSize) throw new UserError(`text: token id ${id} is outside the vocabulary (size ${cfg.vocabSize})`);
  }
  return tf.tidy(() => {
    const W = cfg.width;
    const idTensor = tf.tensor2d(ids, [batch, N], 'int32');
    let x = tf.reshape(tf.gather(w.get(`${X}.token_embedding.weight`), tf.reshape(idTensor, [-1])), [batch, N, W]);
    x = tf.add(x, tf.slice(w.get(`${X}.positional_embedding`), [0, 0], [N, W]));
    // causal: position i sees positions <= i (an additive -inf above the diagonal)
    const mask = cfg.causalMask ? tf.reshape(tf.where(tf.cast(tf.linalg.bandPart(tf.ones([N, N]), -1, 0), 'bool'), tf.zeros([N, N]), tf.fill([N, N], -Infinity)), [1, 1, N, N]) : undefined;
    for (let i = 0; i < cfg.layers; i++) x = textBlock(w, cfg, i, x, mask);
    x = layerNorm(w, `${X}.ln_final`, x, cfg.normEps);
    let pooled: tf.Tensor;
    if (cfg.poolType === 'first') pooled = tf.reshape(tf.slice(x, [0, 0, 0], [batch, 1, W]), [batch, W]);
    else if (cfg.poolType === 'last') pooled = tf.reshape(tf.slice(x, [0, N - 1, 0], [batch, 1, W]), [batch, W]);
    else {
      // argmax: the end-of-text token has the highest id in each row
      const at = tf.cast(tf.argMax(idTensor, 1), 'int32');
      const rows = tf.add(tf.mul(tf.range(0, batch, 1, 'int32'), tf.scalar(N, 'int32')), at);
      pooled = tf.gather(tf.reshape(x, [batch * N, W]), rows);
    }
    const projected = cfg.projBias
      ? tf.add(tf.matMul(pooled, w.transposed(`${X}.text_projection.weight`)), w.get(`${X}.text_projection.bias`))
      : tf.matMul(pooled, w.get(`${X}.text_projection`));
    const prompt = mlp(w, `${X}.prompt_proj`, l2Normalize(projected));
    return { pooledOutput: projected, prompt };
  });
}
