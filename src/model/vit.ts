/**
 * The ViT trunk as PS3 uses it: patch embedding of all or only the chosen patches, the position
 * embedding resampled to any grid, blocks that can attend to a low-res KV cache, and MAP
 * (attention-pool) pooling with an optional token mask.
 */
import { tf } from '../tensor/engine.js';
import { nestedGrads, resize2d } from '../tensor/ops.js';
import { resampleMatrix, tapsFor } from '../tensor/resample.js';
import type { TrunkConfig } from '../io/config.js';
import { attention, layerNorm, linear, mlp } from './layers.js';
import { Weights } from './weights.js';

const T = 'vision_model.trunk';

/**
 * One block's keys and values, [B, N, D] each (heads side by side): the low-res KV cache high-res
 * tokens attend to. Another engine's trunk may return entries that hold its own copy and make
 * `k` and `v` only when read; those free it with `dispose` (see `disposeKv`).
 */
export interface KV {
  readonly k: tf.Tensor;
  readonly v: tf.Tensor;
  dispose?(): void;
}

/** Free a KV cache: each entry's own `dispose` when it has one, else its keys and values. */
export function disposeKv(cache: readonly KV[]): void {
  for (const kv of cache) {
    if (kv.dispose) kv.dispose();
    else tf.dispose([kv.k, kv.v]);
  }
}

/**
 * Unfold P x P patches of a [B, C, H, W] image, row-major over the grid, each flattened
 * channel-major (C, row, column) like `F.unfold`. `select[b]` lists the grid indices to keep
 * (ascending) for image b; all patches when omitted. Returns [B * n, C * P * P].
 */
export function patchify(
  pixels: Float32Array,
  dims: { batch: number; channels: number; height: number; width: number },
  P: number,
  select?: readonly Int32Array[],
): { data: Float32Array; perImage: number } {
  const { batch, channels, height, width } = dims;
  const gh = Math.floor(height / P);
  const gw = Math.floor(width / P);
  const perImage = select ? select[0]!.length : gh * gw;
  const K = channels * P * P;
  const out = new Float32Array(batch * perImage * K);
  for (let b = 0; b < batch; b++) {
    const ids = select ? select[b]! : null;
    if (ids && ids.length !== perImage) throw new RangeError('patchify: every image must select the same number of patches');
    for (let j = 0; j < perImage; j++) {
      const g = ids ? ids[j]! : j;
      const py = Math.floor(g / gw) * P;
      const px = (g % gw) * P;
      let o = (b * perImage + j) * K;
      for (let c = 0; c < channels; c++) {
        const plane = (b * channels + c) * height * width;
        for (let y = 0; y < P; y++) {
          const row = plane + (py + y) * width + px;
          for (let x = 0; x < P; x++) out[o++] = pixels[row + x]!;
        }
      }
    }
  }
  return { data: out, perImage };
}

/**
 * Transpose now, for frozen weights, the matrices outside the blocks that TensorFlow.js multiplies
 * by (patch embedding, pooling head), and resample the position embedding's columns for the square
 * grids `grids` (each high-res scale's side in patches), as the first encode would: part of an
 * engine's set-up.
 */
export function prepareFrozenLayouts(w: Weights, cfg: TrunkConfig, grids: readonly number[] = []): void {
  if (w.trainable) return;
  w.transposed(`${T}.patch_embed.proj.weight`, cfg.width);
  for (const k of ['q', 'kv', 'proj', 'mlp.fc1', 'mlp.fc2']) {
    const key = `${T}.attn_pool.${k}.weight`;
    if (w.has(key)) w.transposed(key);
  }
  const stored = w.shapeOf(`${T}.pos_embed`)[1]!;
  for (const m of grids) if (m * m !== stored) resampledColumns(w, m);
}

/** Transpose now, for frozen weights, every block's matrices, as TensorFlow.js's trunk would on its first pass. */
export function prepareBlockLayouts(w: Weights, cfg: TrunkConfig): void {
  if (w.trainable) return;
  for (let i = 0; i < cfg.depth; i++) for (const k of ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2']) w.transposed(`${T}.blocks.${i}.${k}.weight`);
}

/** `columns` [m, D * n] = A P (A [m, n] the antialiased-bicubic matrix, as values `a` and tensor `A`) from the stored position embedding [1, n * n, D]. */
function columnsProduct(pe: tf.Tensor, m: number): { a: Float32Array; A: tf.Tensor; columns: tf.Tensor } {
  const [, count, D] = pe.shape as [number, number, number];
  const n = Math.round(Math.sqrt(count));
  const a = resampleMatrix(tapsFor('bicubic-antialias', n, m), m);
  const A = tf.tensor2d(a, [m, n]);
  const columns = tf.tidy(() => tf.matMul(A, tf.reshape(tf.transpose(tf.reshape(pe, [n, n, D]), [1, 2, 0]), [n, D * n]))); // [j, D * i] -> [c, D * i]
  return { a, A, columns };
}

/**
 * The position embedding resampled along one axis to m (antialiased bicubic): `columns` [m, D * n]
 * (column c of the m x m grid, each of the stored n rows), and the resampling matrix `a` [m, n]
 * that finishes a cell. Kept per frozen weights (a few tens of MB at 4K) since it does not depend
 * on the image.
 */
const columnsCache = new WeakMap<Weights, Map<number, { columns: Float32Array; a: Float32Array }>>();

function resampledColumns(w: Weights, m: number): { columns: Float32Array; a: Float32Array } {
  let perModel = columnsCache.get(w);
  const hit = perModel?.get(m);
  if (hit) return hit;
  const { a, A, columns } = columnsProduct(w.get(`${T}.pos_embed`), m);
  // read outside a tidy: a tidy's result is searched element by element for tensors
  const made = { columns: columns.dataSync() as Float32Array, a };
  tf.dispose([A, columns]);
  if (!perModel) {
    perModel = new Map();
    columnsCache.set(w, perModel);
    w.onDispose(() => columnsCache.delete(w));
  }
  perModel.set(m, made);
  return made;
}

/** Patches [B * n, 3 * P * P] -> tokens [B, n, D]: the patch conv as a matrix product. */
export function patchEmbed(w: Weights, patches: tf.Tensor, batch: number): tf.Tensor {
  return tf.tidy(() => {
    const D = w.shapeOf(`${T}.patch_embed.proj.weight`)[0]!;
    const y = tf.add(tf.matMul(patches, w.transposed(`${T}.patch_embed.proj.weight`, D)), w.get(`${T}.patch_embed.proj.bias`));
    return tf.reshape(y, [batch, -1, D]);
  });
}

/** Weights the encoder reads by rows only (`Weights.rows`): each scale's position residual. */
export function readByRows(key: string): boolean {
  return /^vision_model\.pos_emb_residual\./.test(key);
}

/**
 * The position embedding for a gh x gw grid, [gh * gw, D]: as stored when the grid is the stored
 * square one, else resampled with antialiased bicubic to the larger side and cropped top-left.
 */
export function positionEmbedding(w: Weights, gh: number, gw: number): tf.Tensor {
  return tf.tidy(() => {
    const pe = w.get(`${T}.pos_embed`);
    const [, count, D] = pe.shape as [number, number, number];
    const n = Math.round(Math.sqrt(count));
    if (gh === gw && gh * gw === count) return tf.reshape(pe, [count, D]);
    const m = Math.max(gh, gw);
    return tf.reshape(resize2d(tf.reshape(pe, [n, n, D]), 0, m, m, 'bicubic-antialias', gh, gw), [gh * gw, D]);
  });
}

/**
 * The position embedding (plus the scale's residual when given) of chosen grid cells only,
 * [ids.length, D], for `ids` flat indices into a gh x gw grid. Equal to gathering rows of
 * `positionEmbedding` (+ `positionResidual`), without resampling the whole grid: at 3780 px that
 * grid is 270 x 270, and under autograd every full-grid intermediate would be kept.
 */
export function selectedPositionEmbedding(w: Weights, gh: number, gw: number, ids: Int32Array, residualScale?: number): tf.Tensor {
  return tf.tidy(() => {
    const pe = w.get(`${T}.pos_embed`);
    const [, count, D] = pe.shape as [number, number, number];
    const n = Math.round(Math.sqrt(count));
    const rows = Int32Array.from(ids, (g) => Math.floor(g / gw));
    const cols = Int32Array.from(ids, (g) => g % gw);
    let pos: tf.Tensor;
    if (gh === gw && gh * gw === count) {
      pos = tf.gather(tf.reshape(pe, [count, D]), tf.tensor1d(ids, 'int32'));
    } else {
      // pos[r, c] = sum_ij A[r, i] P[i, j] A[c, j], A the antialiased-bicubic matrix to m x m;
      // each grid column resampled once (m rows): a look chooses thousands of cells on a grid a
      // few hundred wide, so this is the smaller product
      const m = Math.max(gh, gw);
      if (w.trainable) {
        const { A, columns } = columnsProduct(pe, m);
        const aRows = tf.gather(A, tf.tensor1d(rows, 'int32')); // [k, n] over i
        const z = tf.reshape(tf.gather(columns, tf.tensor1d(cols, 'int32')), [ids.length, D, n]); // [k, D, i]
        pos = tf.sum(tf.mul(z, tf.reshape(aRows, [ids.length, 1, n])), -1); // [k, D]
      } else {
        // frozen: the columns made once per model, and the per-cell sum over i on plain arrays
        // (TensorFlow.js's WASM gather of the [k, D * n] rows alone costs seconds at 3780 px)
        const { columns, a } = resampledColumns(w, m);
        pos = tf.tensor2d(rowSums(columns, a, rows, cols, n, D), [ids.length, D]);
      }
    }
    if (residualScale === undefined) return pos;
    const key = `vision_model.pos_emb_residual.${residualScale}`;
    const side = Math.round(Math.sqrt(w.shapeOf(key)[1]!));
    // stored for the full square grid and cropped top-left: cell (row, col) is row * side + col
    return tf.add(pos, w.rows(key, Int32Array.from(ids, (_, k) => rows[k]! * side + cols[k]!)));
  });
}

/** out[k, d] = sum_i a[rows[k], i] columns[cols[k], d, i]: columns [m, D, n], a [m, n] -> [k, D]. */
function rowSums(columns: Float32Array, a: Float32Array, rows: Int32Array, cols: Int32Array, n: number, D: number): Float32Array {
  const out = new Float32Array(rows.length * D);
  for (let k = 0; k < rows.length; k++) {
    const ar = rows[k]! * n;
    const base = cols[k]! * D * n;
    for (let d = 0; d < D; d++) {
      const o = base + d * n;
      let acc = 0;
      for (let i = 0; i < n; i++) acc += a[ar + i]! * columns[o + i]!;
      out[k * D + d] = acc;
    }
  }
  return out;
}

/** A scale's learned residual `pos_emb_residual[i]`, stored for the full square grid, cropped top-left: [gh * gw, D]. */
export function positionResidual(w: Weights, scaleIndex: number, gh: number, gw: number): tf.Tensor {
  return tf.tidy(() => {
    const r = w.get(`vision_model.pos_emb_residual.${scaleIndex}`);
    const [, count, D] = r.shape as [number, number, number];
    const n = Math.round(Math.sqrt(count));
    return tf.reshape(tf.slice(tf.reshape(r, [n, n, D]), [0, 0, 0], [gh, gw, D]), [gh * gw, D]);
  });
}

/** One transformer block; with `cache`, the tokens attend to the cached keys/values followed by their own. */
export function block(w: Weights, cfg: TrunkConfig, i: number, x: tf.Tensor, cache?: KV): { x: tf.Tensor; kv: KV } {
  const p = `${T}.blocks.${i}`;
  const [B, N, D] = x.shape as [number, number, number];
  const qkv = linear(w, `${p}.attn.qkv`, layerNorm(w, `${p}.norm1`, x, cfg.normEps));
  const [q, kOwn, vOwn] = tf.split(qkv, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
  const k = cache ? tf.concat([cache.k, kOwn], 1) : kOwn;
  const v = cache ? tf.concat([cache.v, vOwn], 1) : vOwn;
  const attended = tf.reshape(attention(q, k, v, cfg.heads), [B, N, D]);
  const h = tf.add(x, linear(w, `${p}.attn.proj`, attended));
  const out = tf.add(h, mlp(w, `${p}.mlp`, layerNorm(w, `${p}.norm2`, h, cfg.normEps)));
  return { x: out, kv: { k, v } };
}

export interface TrunkOutput {
  /** every block's output, [B, N, D] each */
  readonly hiddenStates: tf.Tensor[];
  /** every block's keys and values (only the tokens' own when run with a cache is not kept) */
  readonly kvCache: KV[];
}

/**
 * Runs all blocks on tokens [B, N, D] as `trunk` does, possibly on another engine (hence async).
 * With `lastOnly` the caller keeps only the last hidden state, so it may be all that comes back.
 * With `hiddenLayers` the caller reads only those blocks' hidden states (and the last block's):
 * `hiddenStates` keeps its length, one entry per block, but the others may be left empty.
 */
export type TrunkRunner = (tokens: tf.Tensor, options: { cache?: KV[]; keepKv?: boolean; lastOnly?: boolean; hiddenLayers?: readonly number[] }) => Promise<TrunkOutput>;

/** Picks the runner of a model's trunk when the caller names none; null means TensorFlow.js's own blocks. */
export type DefaultTrunk = (w: Weights, cfg: TrunkConfig) => TrunkRunner | null;

// TensorFlow.js until the engine layer (src/engine/trunkEngine.ts) installs the fast one: this
// module cannot import it (the arrows point from engine to model), and a browser bundle never does
let defaultTrunk: DefaultTrunk = () => null;

/** Install the runner used when `EncodeOptions.trunk` is absent (see `useTrunkEngine`). */
export function setDefaultTrunk(pick: DefaultTrunk): void {
  defaultTrunk = pick;
}

/**
 * The runner for a pass: `explicit` when given (null = TensorFlow.js), else the installed
 * default's; trainable weights always run on TensorFlow.js, the only engine with autograd.
 */
export function trunkFor(w: Weights, cfg: TrunkConfig, explicit?: TrunkRunner | null): TrunkRunner | null {
  if (explicit !== undefined) return explicit;
  return w.trainable ? null : defaultTrunk(w, cfg);
}

/** `trunk` on the chosen runner (TensorFlow.js when null). */
export async function runTrunk(run: TrunkRunner | null, w: Weights, cfg: TrunkConfig, tokens: tf.Tensor, options: { cache?: KV[]; keepKv?: boolean; lastOnly?: boolean } = {}): Promise<TrunkOutput> {
  if (run) return run(tokens, options);
  return trunk(w, cfg, tokens, options);
}

/**
 * Run all blocks. With `cache` (the low-res pass's), the tokens are high-res ones that see the
 * low-res tokens; they are not added to the cache, so looks never see each other.
 * `keepKv` keeps each block's keys and values (the low-res pass needs them, looks do not).
 * `firstBlock` starts at that block (the tokens are the hidden states entering it): hidden
 * states, keys and values then count from it, and so does `cache`, as a pass from the same block
 * made it.
 */
export function trunk(w: Weights, cfg: TrunkConfig, tokens: tf.Tensor, options: { cache?: KV[]; keepKv?: boolean; firstBlock?: number } = {}): TrunkOutput {
  const hiddenStates: tf.Tensor[] = [];
  const kvCache: KV[] = [];
  const first = options.firstBlock ?? 0;
  if (!Number.isInteger(first) || first < 0 || first >= cfg.depth) throw new RangeError(`trunk: firstBlock ${first} is not a block of ${cfg.depth}`);
  let x = tokens;
  for (let i = first; i < cfg.depth; i++) {
    const cached = options.cache?.[i - first];
    const out = tf.tidy(() => {
      if (w.trainable) return checkpointedBlock(w, cfg, i, x, cached, options.keepKv ?? false);
      const r = block(w, cfg, i, x, cached);
      return options.keepKv ? [r.x, r.kv.k, r.kv.v] : [r.x];
    });
    x = out[0]!;
    hiddenStates.push(x);
    if (options.keepKv) kvCache.push({ k: out[1]!, v: out[2]! });
  }
  return { hiddenStates, kvCache };
}

const BLOCK_PARAMS = ['norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias', 'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'];

/** The weights of the trunk's blocks from `firstBlock` on and of its final norm: what a pass from that block reads to make the final-normed tokens. */
export function trunkTailKeys(w: Weights, cfg: TrunkConfig, firstBlock: number): string[] {
  const keys: string[] = [];
  for (let i = firstBlock; i < cfg.depth; i++) keys.push(...BLOCK_PARAMS.map((k) => `${T}.blocks.${i}.${k}`));
  keys.push(`${T}.norm.weight`, `${T}.norm.bias`);
  return keys.filter((k) => w.has(k));
}

/**
 * One block under autograd with gradient checkpointing: only the block's inputs are kept for the
 * backward pass, which recomputes the block. Without it every block's attention scores
 * ([N, N + M] per head) stay alive until the backward pass, and a 3780-px batch of two outgrows
 * the 4 GB WASM heap. Returns [x] or [x, k, v] like the plain path.
 */
function checkpointedBlock(w: Weights, cfg: TrunkConfig, i: number, x: tf.Tensor, cache: KV | undefined, keepKv: boolean): tf.Tensor[] {
  const keys = BLOCK_PARAMS.map((k) => `${T}.blocks.${i}.${k}`).filter((k) => w.has(k));
  const D = x.shape[2]!;
  // inputs: x, the cached keys and values if any, then the block's weights
  const run = (xs: tf.Tensor[]): tf.Tensor => {
    let j = 1;
    const c = cache ? { k: xs[j++]!, v: xs[j++]! } : undefined;
    const local = new Weights(new Map(keys.map((k, n) => [k, xs[j + n]!])), true);
    const r = block(local, cfg, i, xs[0]!, c);
    // one output tensor (customGrad returns one): [x | k | v] side by side when the keys are kept
    return keepKv ? tf.concat([r.x, r.kv.k, r.kv.v], -1) : r.x;
  };
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args.pop() as tf.GradSaveFunc;
    const xs = args as tf.Tensor[];
    save(xs);
    return {
      value: tf.tidy(() => run(xs)),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => nestedGrads((...ys: tf.Tensor[]) => run(ys), saved, dy as tf.Tensor),
    };
  });
  const inputs = [x, ...(cache ? [cache.k, cache.v] : []), ...keys.map((k) => w.get(k))];
  const y = f(...inputs) as tf.Tensor;
  if (!keepKv) return [y];
  return tf.split(y, [D, D, D], -1);
}

/** The trunk's final LayerNorm. */
export function finalNorm(w: Weights, cfg: TrunkConfig, x: tf.Tensor): tf.Tensor {
  return layerNorm(w, `${T}.norm`, x, cfg.normEps);
}

/**
 * MAP pooling (timm's AttentionPoolLatent) over final-normed tokens [B, N, D] -> [B, D].
 * `mask` [B, N] (1 keeps a token) restricts the pooled tokens; an all-zero row pools everything.
 */
export function mapPool(w: Weights, cfg: TrunkConfig, x: tf.Tensor, mask?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const p = `${T}.attn_pool`;
    const [B, N, D] = x.shape as [number, number, number];
    const H = cfg.poolHeads;
    const d = D / H;
    // One learned query, so attention needs neither keys nor values per token: head h's score of
    // token n is x_n . u_h plus a constant the softmax drops (u_h = W_k,h^T q_h / sqrt(d), the
    // constant q_h . b_k,h / sqrt(d)), and its output is (sum_n p_hn x_n) W_v,h^T + b_v,h, the
    // weights summing to 1. Two products of the tokens with [D, H]-sized operands instead of
    // projecting every token to 2D keys and values (the same values up to float rounding).
    const q = tf.reshape(linear(w, `${p}.q`, w.get(`${p}.latent`)), [1, H, d]);
    const kvT = w.transposed(`${p}.kv.weight`); // [D, 2D]: keys' columns, then values'
    const u = tf.mul(tf.sum(tf.mul(tf.reshape(tf.slice(kvT, [0, 0], [D, D]), [D, H, d]), q), -1), 1 / Math.sqrt(d)); // [D, H]
    let scores = tf.transpose(tf.reshape(tf.matMul(tf.reshape(x, [B * N, D]), u), [B, N, H]), [0, 2, 1]); // [B, H, N]
    if (mask) {
      // rows with nothing to keep pool every token, as the reference does
      const keep = tf.logicalOr(tf.greater(mask, 0), tf.equal(tf.sum(mask, -1, true), 0));
      scores = tf.add(scores, tf.reshape(tf.where(keep, tf.zeros([B, N]), tf.fill([B, N], -Infinity)), [B, 1, N]));
    }
    const pooled = tf.matMul(tf.softmax(scores), x); // [B, H, D]
    // every head's pooled tokens through every head's value rows, then head h's own block: [B, H, d]
    const all = tf.reshape(tf.matMul(tf.reshape(pooled, [B * H, D]), tf.slice(kvT, [0, D], [D, D])), [B, H, H, d]);
    const own = tf.sum(tf.mul(all, tf.reshape(tf.eye(H), [1, H, H, 1])), 2);
    let o = tf.reshape(own, [B, 1, D]);
    if (w.has(`${p}.kv.bias`)) o = tf.add(o, tf.slice(w.get(`${p}.kv.bias`), [D], [D]));
    o = linear(w, `${p}.proj`, o);
    o = tf.add(o, mlp(w, `${p}.mlp`, layerNorm(w, `${p}.norm`, o, cfg.normEps)));
    return tf.reshape(o, [B, D]);
  });
}
