/**
 * The trunk's blocks as an ONNX graph, built from the same named weights and `TrunkConfig` as
 * `block` in src/model/vit.ts, op for op:
 *
 *   x [B, N, D] -> LayerNormalization(norm1) -> MatMul(qkv.weight^T) + qkv.bias -> Split q, k, v
 *   k, v: Concat(cached keys/values [B, M, D], own) on the token axis
 *   attention per head (d = D / H): softmax(q k^T / sqrt(d)) v, heads side by side -> [B, N, D]
 *     'ops':   Reshape/Transpose to [B, H, ., d], MatMul, Softmax, MatMul (standard opset 17; any
 *              runtime; materialises the [B, H, N, M] scores: 0.5 GB per block for a so400m look)
 *     'fused': ONNX Runtime's com.microsoft.MultiHeadAttention on the same [B, ., D] tensors
 *              (its CPU kernel is a flash attention: no [B, H, N, M] buffer, and faster)
 *   h = x + proj(attended);  out = h + fc2(GELU_erf(fc1(LayerNormalization(norm2, h))))
 *
 * One graph serves both uses of the trunk, so its weights are held once: the low-res pass feeds
 * an empty cache (M = 0) and fetches every block's hidden state, keys and values; a look feeds
 * the low-res cache and fetches hidden states only (all, or just the last). Token counts are
 * symbolic dims, so one session serves every look. Each block's outputs:
 *   hidden.i [B, N, D];  key.i, value.i [B, M + N, D] (the tokens' keys/values after the cache's)
 */
import type { TrunkConfig } from '../../io/config.js';
import type { Weights } from '../../model/weights.js';
import { GraphBuilder } from './graph.js';

const T = 'vision_model.trunk';

/** Names of the graph's inputs and outputs for block i. */
export const io = {
  tokens: 'tokens',
  cacheKey: (i: number): string => `cache_key.${i}`,
  cacheValue: (i: number): string => `cache_value.${i}`,
  hidden: (i: number): string => `hidden.${i}`,
  key: (i: number): string => `key.${i}`,
  value: (i: number): string => `value.${i}`,
};

/** A weight's values and shape, read from its source when TensorFlow.js does not hold it (it then never does). */
function read(w: Weights, key: string): { data: Float32Array; shape: readonly number[] } {
  return { data: w.values(key), shape: w.shapeOf(key) };
}

/** An [out, in] Linear weight as the [in, out] matrix MatMul multiplies by, column j scaled by `columnScale(j)` when given. */
function transposedLinear(w: Weights, key: string, columnScale?: (j: number) => number): { data: Float32Array; dims: [number, number] } {
  const { data, shape } = read(w, key);
  const [outDim, inDim] = shape as [number, number];
  const t = new Float32Array(data.length);
  for (let o = 0; o < outDim; o++) {
    const s = columnScale ? columnScale(o) : 1;
    for (let i = 0; i < inDim; i++) t[i * outDim + o] = data[o * inDim + i]! * s;
  }
  return { data: t, dims: [inDim, outDim] };
}

/** Bytes of float32 weights in one block (what its initializers hold). */
export function blockBytes(cfg: TrunkConfig): number {
  const D = cfg.width;
  const F = cfg.mlpHidden;
  return 4 * (4 * D + 3 * D * D + 3 * D + D * D + D + D * F + F + F * D + D);
}

export type AttentionOps = 'ops' | 'fused';

class TrunkGraph {
  constructor(
    private readonly g: GraphBuilder,
    private readonly w: Weights,
    private readonly cfg: TrunkConfig,
    private readonly attentionOps: AttentionOps,
  ) {}

  private layerNorm(prefix: string, x: string): string {
    const D = this.cfg.width;
    const scale = this.g.floats(`${prefix}.weight`, [D], read(this.w, `${prefix}.weight`).data);
    const bias = this.g.floats(`${prefix}.bias`, [D], read(this.w, `${prefix}.bias`).data);
    return this.g.op('LayerNormalization', [x, scale, bias], [{ name: 'axis', int: -1 }, { name: 'epsilon', float: this.cfg.normEps }]);
  }

  /** x [B, N, in] -> [B, N, out]; the weight pre-transposed so MatMul runs on it as stored. */
  private linear(prefix: string, x: string, columnScale?: (j: number) => number): string {
    const y = this.matMul(prefix, x, columnScale);
    if (!this.w.has(`${prefix}.bias`)) return y;
    const b = read(this.w, `${prefix}.bias`).data;
    const scaled = columnScale ? b.map((v, j) => v * columnScale(j)) : b;
    return this.g.op('Add', [y, this.g.floats(`${prefix}.bias`, [b.length], scaled)]);
  }

  private matMul(prefix: string, x: string, columnScale?: (j: number) => number): string {
    const t = transposedLinear(this.w, `${prefix}.weight`, columnScale);
    return this.g.op('MatMul', [x, this.g.floats(`${prefix}.weight_t`, t.dims, t.data)]);
  }

  /**
   * GELU_erf(fc1(x)). With ONNX Runtime's ops ('fused'), its com.microsoft.BiasGelu adds the bias
   * and applies the GELU in one pass, with the same float steps as the standard ops
   * ((x + b) / sqrt 2 -> erf -> 0.5 (x + b) (erf + 1)): one [B, N, F] buffer where the standard
   * ops' chain holds several (so400m look: 44 MB each).
   */
  private fc1Gelu(prefix: string, x: string): string {
    if (this.attentionOps !== 'fused') return this.gelu(this.linear(prefix, x));
    const b = read(this.w, `${prefix}.bias`).data;
    this.g.useDomain('com.microsoft', 1);
    return this.g.node('BiasGelu', [this.matMul(prefix, x), this.g.floats(`${prefix}.bias`, [b.length], b)], [], 1, 'com.microsoft')[0]!;
  }

  /** [B, L, D] -> [B, H, L, d] (or [B, H, d, L] with `keysLast`, the layout q k^T needs). */
  private heads(x: string, keysLast = false): string {
    const { heads: H, width: D } = this.cfg;
    const split = this.g.op('Reshape', [x, this.g.int64s([0, 0, H, D / H])]);
    return this.g.op('Transpose', [split], [{ name: 'perm', ints: keysLast ? [0, 2, 3, 1] : [0, 2, 1, 3] }]);
  }

  /** softmax(q k^T) v per head, q pre-scaled by 1/sqrt(d); q [B, N, D], k and v [B, M, D] -> [B, N, D]. */
  private attention(q: string, k: string, v: string): string {
    if (this.attentionOps === 'fused') {
      this.g.useDomain('com.microsoft', 1);
      return this.g.node('MultiHeadAttention', [q, k, v], [{ name: 'num_heads', int: this.cfg.heads }, { name: 'scale', float: 1 }], 1, 'com.microsoft')[0]!;
    }
    const scores = this.g.op('MatMul', [this.heads(q), this.heads(k, true)]); // [B, H, N, M]
    const probs = this.g.op('Softmax', [scores], [{ name: 'axis', int: -1 }]);
    const out = this.g.op('MatMul', [probs, this.heads(v)]); // [B, H, N, d]
    const tokenMajor = this.g.op('Transpose', [out], [{ name: 'perm', ints: [0, 2, 1, 3] }]);
    return this.g.op('Reshape', [tokenMajor, this.g.int64s([0, 0, this.cfg.width])]);
  }

  /** 0.5 x (1 + erf(x / sqrt 2)), as `gelu` in src/model/layers.ts */
  private gelu(x: string): string {
    const erf = this.g.op('Erf', [this.g.op('Mul', [x, this.g.scalar(Math.SQRT1_2)])]);
    return this.g.op('Mul', [this.g.op('Mul', [x, this.g.scalar(0.5)]), this.g.op('Add', [erf, this.g.scalar(1)])]);
  }

  /** Block i on x [B, N, D]; returns its output, and its keys and values after the cache's. */
  block(i: number, x: string): { x: string; k: string; v: string } {
    const { width: D, heads: H } = this.cfg;
    const p = `${T}.blocks.${i}`;
    // fold attention's 1/sqrt(d) into the q columns of qkv: N x D multiplies instead of N x M per head
    const scale = 1 / Math.sqrt(D / H);
    const qkv = this.linear(`${p}.attn.qkv`, this.layerNorm(`${p}.norm1`, x), (j) => (j < D ? scale : 1));
    const [q, kOwn, vOwn] = this.g.node('Split', [qkv, this.g.int64s([D, D, D])], [{ name: 'axis', int: -1 }], 3) as [string, string, string];
    const k = this.g.op('Concat', [io.cacheKey(i), kOwn], [{ name: 'axis', int: 1 }], io.key(i));
    const v = this.g.op('Concat', [io.cacheValue(i), vOwn], [{ name: 'axis', int: 1 }], io.value(i));
    const h = this.g.op('Add', [x, this.linear(`${p}.attn.proj`, this.attention(q, k, v))]);
    const mlp = this.linear(`${p}.mlp.fc2`, this.fc1Gelu(`${p}.mlp.fc1`, this.layerNorm(`${p}.norm2`, h)));
    return { x: this.g.op('Add', [h, mlp], [], io.hidden(i)), k, v };
  }
}

/**
 * The ONNX model of blocks [from, to): input `tokens` (block `from`'s input) and each block's
 * cache; outputs each block's hidden state, keys and values (see the file comment).
 */
export function trunkGroupModel(w: Weights, cfg: TrunkConfig, from: number, to: number, attention: AttentionOps): Uint8Array {
  const g = new GraphBuilder(`ps3_trunk_blocks_${from}_${to}`);
  const D = cfg.width;
  const builder = new TrunkGraph(g, w, cfg, attention);
  let x = g.input(io.tokens, ['batch', 'tokens', D]);
  for (let i = from; i < to; i++) {
    g.input(io.cacheKey(i), ['batch', 'cached', D]);
    g.input(io.cacheValue(i), ['batch', 'cached', D]);
    const out = builder.block(i, x);
    x = out.x;
    g.output(io.hidden(i), ['batch', 'tokens', D]);
    g.output(io.key(i), ['batch', 'keys', D]);
    g.output(io.value(i), ['batch', 'keys', D]);
  }
  return g.toBytes();
}
