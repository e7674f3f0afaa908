/**
 * The language model: decoder-only, pre-norm blocks (LayerNorm -> causal self-attention ->
 * residual, LayerNorm -> GELU MLP -> residual), learned positions, a final LayerNorm and an
 * output head (tied to the token embedding by default). Inputs are embeddings, so visual tokens
 * from the projector and word embeddings share one sequence. Attention is per head on 2-d
 * matmuls (layers.ts `attention`): WASM's batched matmuls are several times slower.
 *
 * A KV cache lets a prefix (the visual tokens and the question) run once and every option or
 * generated word run on top of it; a packed layout runs a prefix and several continuations of it
 * in one pass, as training's choice term needs.
 */
import { tf } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { attention, layerNorm, linear, mlp } from '../model/layers.js';
import type { Weights } from '../model/weights.js';
import type { LmConfig } from './config.js';

/** One block's keys and values so far, [1, M, W] each. */
export interface LmKV {
  readonly k: tf.Tensor;
  readonly v: tf.Tensor;
}

/** Word embeddings of ids, [N, W]. */
export function embedTokens(w: Weights, prefix: string, ids: Int32Array): tf.Tensor {
  return tf.tidy(() => tf.gather(w.get(`${prefix}.embed_tokens.weight`), tf.tensor1d(ids, 'int32')));
}

/** Additive mask [1, 1, N, M + N]: cached positions all visible, new ones causal. */
function causalBias(n: number, cached: number): tf.Tensor {
  const m = cached + n;
  const data = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = cached + i + 1; j < m; j++) data[i * m + j] = -Infinity;
  return tf.tensor4d(data, [1, 1, n, m]);
}

/**
 * Several continuations of one prefix packed into one sequence, [prefix, c_1, ..., c_K]: each
 * continuation sees the prefix and its own earlier tokens only, and its positions go on from the
 * prefix's end, so its states are those of [prefix, c_k] run alone — a question's K options for
 * about the price of one.
 */
export interface PackedLayout {
  /** each token's position, [N] */
  readonly positions: Int32Array;
  /** additive attention mask, [N, N] row-major (0 where visible, -Infinity where not) */
  readonly bias: Float32Array;
}

export function packedLayout(prefix: number, lengths: readonly number[]): PackedLayout {
  const n = prefix + lengths.reduce((a, b) => a + b, 0);
  const positions = new Int32Array(n);
  const bias = new Float32Array(n * n).fill(-Infinity);
  for (let i = 0; i < prefix; i++) {
    positions[i] = i;
    bias.fill(0, i * n, i * n + i + 1);
  }
  let start = prefix;
  for (const len of lengths) {
    for (let j = 0; j < len; j++) {
      const row = (start + j) * n;
      positions[start + j] = prefix + j;
      bias.fill(0, row, row + prefix);
      bias.fill(0, row + start, row + start + j + 1);
    }
    start += len;
  }
  return { positions, bias };
}

function lmBlock(w: Weights, p: string, cfg: LmConfig, x: tf.Tensor, bias: tf.Tensor, cache?: LmKV): { x: tf.Tensor; kv: LmKV } {
  const [, N, W] = x.shape as [number, number, number];
  const qkv = linear(w, `${p}.attn.qkv`, layerNorm(w, `${p}.norm1`, x, cfg.normEps));
  const [q, kOwn, vOwn] = tf.split(qkv, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
  const k = cache ? tf.concat([cache.k, kOwn], 1) : kOwn;
  const v = cache ? tf.concat([cache.v, vOwn], 1) : vOwn;
  const attended = tf.reshape(attention(q, k, v, cfg.heads, bias), [1, N, W]);
  const h = tf.add(x, linear(w, `${p}.attn.proj`, attended));
  return { x: tf.add(h, mlp(w, `${p}.mlp`, layerNorm(w, `${p}.norm2`, h, cfg.normEps))), kv: { k, v } };
}

export interface LmOutput {
  /** final-normed hidden states of the new tokens, [N, W] */
  readonly hidden: tf.Tensor;
  /** each block's keys and values, cache included (kept only when asked) */
  readonly kv: LmKV[];
}

/**
 * Run embeddings [N, W] (positions are added here, after the cache's length, or as a packed
 * `layout` places them) through the blocks. The caller disposes `hidden` and, with `keepKv`, the
 * cache it gets back.
 */
export function lmForward(w: Weights, prefix: string, cfg: LmConfig, embeddings: tf.Tensor, options: { cache?: readonly LmKV[]; keepKv?: boolean; layout?: PackedLayout } = {}): LmOutput {
  const N = embeddings.shape[0]!;
  const { layout } = options;
  if (layout && (options.cache || layout.positions.length !== N)) throw new Error(`a packed layout of ${layout.positions.length} tokens for ${N} embeddings${options.cache ? ', with a cache' : ''}`);
  const cached = options.cache?.[0]?.k.shape[1] ?? 0;
  const length = layout ? layout.positions.reduce((a, b) => Math.max(a, b), -1) + 1 : cached + N;
  if (length > cfg.contextLength) throw new UserError(`the sequence (${length} tokens: visual tokens, question and answer) is longer than the LM's context of ${cfg.contextLength}`);
  const kv: LmKV[] = [];
  const hidden = tf.tidy(() => {
    const table = w.get(`${prefix}.embed_positions.weight`);
    const pos = layout ? tf.gather(table, tf.tensor1d(layout.positions, 'int32')) : tf.slice(table, [cached, 0], [N, cfg.width]);
    let x = tf.reshape(tf.add(embeddings, pos), [1, N, cfg.width]);
    const bias = layout ? tf.tensor4d(layout.bias, [1, 1, N, N]) : causalBias(N, cached);
    for (let i = 0; i < cfg.layers; i++) {
      const r = lmBlock(w, `${prefix}.blocks.${i}`, cfg, x, bias, options.cache?.[i]);
      x = r.x;
      if (options.keepKv) kv.push({ k: tf.keep(r.kv.k), v: tf.keep(r.kv.v) });
    }
    return tf.reshape(layerNorm(w, `${prefix}.norm`, x, cfg.normEps), [N, cfg.width]);
  });
  return { hidden, kv };
}

/** Next-token logits [N, V] of hidden states [N, W]. */
export function lmLogits(w: Weights, prefix: string, cfg: LmConfig, hidden: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.matMul(hidden, w.transposed(cfg.tieWordEmbeddings ? `${prefix}.embed_tokens.weight` : `${prefix}.head.weight`)));
}

/** Log-softmax over the last axis, stable. */
export function logSoftmax(logits: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(logits, tf.logSumExp(logits, -1, true)));
}

/**
 * Sum of log p(target[i] | hidden[i]) for hidden [N, W] and targets [N]: the log-likelihood of
 * a continuation, and (negated, averaged) the next-token loss.
 */
export function targetLogProbs(w: Weights, prefix: string, cfg: LmConfig, hidden: tf.Tensor, targets: Int32Array): tf.Tensor {
  return tf.tidy(() => {
    const lp = logSoftmax(lmLogits(w, prefix, cfg, hidden)); // [N, V]
    const onehot = tf.oneHot(tf.tensor1d(targets, 'int32'), cfg.vocabSize); // [N, V]
    return tf.sum(tf.mul(lp, onehot), -1); // [N]
  });
}

export function disposeKv(kv: readonly LmKV[]): void {
  for (const { k, v } of kv) tf.dispose([k, v]);
}
