/**
 * The encoders PS3 is compared with, all on the same trunk and weights, each reduced to one
 * pooled, L2-normalised feature [1, D] that text is scored against the CLIP way:
 *
 *  - `ps3`: PS3 itself — low-res pass, selection (top-down from a prompt, else bottom-up), N looks
 *    or a token budget; the chosen high-res tokens are MAP-pooled (`pooledRegion`).
 *  - `lowres`: the low-res pass only (scales[0], 729 tokens for the released models), MAP-pooled.
 *    Nothing else runs (no selection head): the cheapest honest baseline.
 *  - `anyres` (LLaVA-NeXT's AnyRes): the image at resolution R is cut into a grid of
 *    low-res-sized tiles — ceil(R / s0) per side; the image is resized (plain bicubic) to exactly
 *    that many tiles, which is "each tile resized to scales[0]" — and every tile goes through the
 *    trunk as an independent low-res pass with the native position embedding; plus one global
 *    low-res view. All tokens (tiles x N0 + N0), after the final norm, are MAP-pooled together.
 *  - `s2` (S², Shi et al. 2024): the image at every scale s <= R of the model (378, 756, 1512,
 *    3780) is cut into (s / s0)² low-res tiles, every tile through the trunk. S² merges scales by
 *    resizing each scale's feature map to the low-res grid and concatenating channels, which
 *    gives a 2D-wide feature with no text tower to score it against; here each scale's tokens are
 *    MAP-pooled (the same head as every other method), L2-normalised, and the scale features
 *    averaged — the pooled-score analogue of the channel concat. Tokens: Σ tiles x N0.
 *
 * Token counts are tokens through the trunk; times are wall time from the normalised pixels at
 * the top scale (already decoded) to the pooled feature, every resize included.
 *
 * Memory: the WASM heap is capped at 4 GiB and a failed allocation inside a kernel can kill the
 * WASM module, after which no kernel runs. So each method's peak is estimated first (`estimatePeakBytes`, the
 * attention scores of every head of a block, hidden states, KV cache, MAP pooling; it tends to
 * run low, e.g. 1.5 GiB estimated vs 1.9 GiB measured for a ViT-B PS3 look of 2,560 tokens at 4K)
 * and a method that clearly cannot fit is reported as out of memory ("estimated; not run");
 * an allocation failure that happens anyway is recognised by `isOutOfMemory`.
 */
import { EngineOutOfMemoryError, tf, WASM_HEAP_BYTES } from '../tensor/engine.js';
import { resize } from '../tensor/resample.js';
import type { TrunkConfig, VisionConfig } from '../io/config.js';
import { UserError } from '../errors.js';
import { lowRes, lowResOn, type Pixels } from './encoder.js';
import { l2Normalize } from './layers.js';
import type { PS3Model } from './load.js';
import type { Weights } from './weights.js';
import { baseBudgets, gridAtScale, planLooks, type LookCount } from './selection.js';
import { finalNorm, mapPool, patchEmbed, patchify, positionEmbedding, runTrunk, trunkFor } from './vit.js';
import { disposeEncode, encodeRegion } from './region.js';

export const ENCODE_METHODS = ['ps3', 'lowres', 'anyres', 's2'] as const;
export type EncodeMethod = (typeof ENCODE_METHODS)[number];

export { WASM_HEAP_BYTES };

export interface MethodOptions {
  /** ps3: number of looks (default 1) */
  readonly looks?: LookCount;
  /** ps3: a high-res token budget instead of looks */
  readonly tokens?: number;
  /** ps3: top-down prompt [1, D]; bottom-up when absent */
  readonly prompt?: tf.Tensor;
  /** ps3: 0/1 map [H, W] at input resolution whose patches are chosen first (an oracle box) */
  readonly gtSelectionMaps?: Float32Array;
  /** anyres/s2: the largest resolution tiled (long side), default the input's */
  readonly resolution?: number;
  /** anyres/s2: tiles per trunk call; default the most that fit 512 MB */
  readonly tileBatch?: number;
  /**
   * refuse, as out of memory, a run whose estimated peak does not fit the WASM heap (default
   * true: an allocation failure would kill the engine for every later run in this process)
   */
  readonly memoryCheck?: boolean;
}

export interface MethodEncoding {
  /** [1, D], L2-normalised; the caller disposes it */
  readonly feature: tf.Tensor;
  /** tokens through the trunk */
  readonly tokens: number;
  /** trunk passes of s0 x s0 tiles (anyres, s2), else 0 */
  readonly tiles: number;
  readonly ms: number;
}

/** Thrown (and reported) when a method cannot fit the WASM heap. */
export class OutOfMemoryError extends Error {
  override readonly name = 'OutOfMemoryError';
  constructor(
    message: string,
    readonly estimatedBytes?: number,
  ) {
    super(message);
  }
}

/**
 * Whether an error is running out of memory: the refusal by the estimate, the engine's own
 * allocation failure (src/tensor/engine.ts catches it where it happens), or Node failing to
 * allocate an array buffer. Anything else — "memory access out of bounds", "Invalid typed array
 * length", a bare WASM abort — is a bug and is not reported as out of memory.
 */
export function isOutOfMemory(e: unknown): boolean {
  if (e instanceof OutOfMemoryError || e instanceof EngineOutOfMemoryError) return true;
  const text = e instanceof Error ? `${e.name} ${e.message}` : String(e);
  return /Array buffer allocation failed|JavaScript heap out of memory|Cannot enlarge memory arrays/i.test(text);
}

/** Whether the engine still works after this out-of-memory error (refused by the estimate, or caught at the allocation). */
export function engineSurvives(e: unknown): boolean {
  return e instanceof OutOfMemoryError || e instanceof EngineOutOfMemoryError;
}

// ---------------------------------------------------------------------------------------------
// Tiles

/** A tiling of an image: rows x cols tiles of s0 x s0 after resizing to rows·s0 x cols·s0. */
export interface TileGrid {
  readonly rows: number;
  readonly cols: number;
}

/** The tile grid at resolution `resolution` (long side) for an input of height x width. */
export function tileGrid(s0: number, height: number, width: number, resolution: number): TileGrid {
  const long = Math.max(height, width);
  const h = Math.round((resolution * height) / long);
  const w = Math.round((resolution * width) / long);
  return { rows: Math.max(1, Math.ceil(h / s0)), cols: Math.max(1, Math.ceil(w / s0)) };
}

/** AnyRes's tiles at `resolution` (plus the global view, not counted here). */
export function anyresGrid(cfg: VisionConfig, height: number, width: number, resolution: number): TileGrid {
  return tileGrid(cfg.scales[0]!, height, width, resolution);
}

/** S²'s scales: the model's scales up to `resolution` (and `resolution` itself when it is not one), each with its tile grid. */
export function s2Grids(cfg: VisionConfig, height: number, width: number, resolution: number): Array<{ scale: number; grid: TileGrid }> {
  const scales = cfg.scales.filter((s) => s <= resolution);
  if (scales[scales.length - 1] !== resolution) scales.push(resolution);
  return scales.map((scale) => ({ scale, grid: tileGrid(cfg.scales[0]!, height, width, scale) }));
}

export function lowResTokenCount(cfg: VisionConfig): number {
  return (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
}

/**
 * Tokens through the trunk of a method, without running it. For PS3 this is the look plan's
 * budget (`ps3Plan`); with "all" looks the encoder can end a few patches short of every patch
 * (a small scale's leftovers are never handed to a larger one), so the run's own count is the
 * one to report.
 */
export function methodTokens(cfg: VisionConfig, method: EncodeMethod, input: { height: number; width: number }, options: MethodOptions = {}): number {
  const n0 = lowResTokenCount(cfg);
  const R = options.resolution ?? Math.max(input.height, input.width);
  switch (method) {
    case 'lowres':
      return n0;
    case 'anyres': {
      const g = anyresGrid(cfg, input.height, input.width, R);
      return g.rows * g.cols * n0 + n0;
    }
    case 's2':
      return s2Grids(cfg, input.height, input.width, R).reduce((a, { grid }) => a + grid.rows * grid.cols * n0, 0);
    case 'ps3':
      return n0 + ps3Plan(cfg, input, options).reduce((a, c) => a + c, 0);
  }
}

/** High-res tokens of each PS3 look for these options (the encoder's own plan). */
export function ps3Plan(cfg: VisionConfig, input: { height: number; width: number }, options: MethodOptions = {}): number[] {
  if (options.looks === 0 || options.tokens === 0) return [];
  const ns = cfg.scales.length - 1;
  const maxTokens = Array.from({ length: ns }, (_, i) => gridAtScale(cfg, input.height, input.width, i + 1)).reduce((a, [h, w]) => a + h * w, 0);
  const base = baseBudgets(cfg);
  const perLook = base.reduce((a, c) => a + c, 0);
  const plan = planLooks(base, maxTokens, options.tokens !== undefined ? { numTokenLookClose: options.tokens } : { numLookClose: options.looks ?? 1 });
  // null is a full look; the last of "all" takes only what is left
  let left = maxTokens;
  return plan.map((n) => {
    const take = Math.min(n ?? perLook, left);
    left -= take;
    return take;
  });
}

/** Normalised pixels [3, H, W] resized (plain bicubic) to rows·s0 x cols·s0 and cut into tiles [T, 3, s0, s0], row-major. */
export function cutTiles(pixels: Pixels, s0: number, grid: TileGrid): Float32Array {
  if (pixels.batch !== 1) throw new UserError('tiling takes one image at a time');
  const H = grid.rows * s0;
  const W = grid.cols * s0;
  const image = H === pixels.height && W === pixels.width ? pixels.data : resize(pixels.data, 3, pixels.height, pixels.width, H, W, 'bicubic');
  const T = grid.rows * grid.cols;
  const out = new Float32Array(T * 3 * s0 * s0);
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const t = r * grid.cols + c;
      for (let ch = 0; ch < 3; ch++) {
        for (let y = 0; y < s0; y++) {
          const src = ch * H * W + (r * s0 + y) * W + c * s0;
          out.set(image.subarray(src, src + s0), ((t * 3 + ch) * s0 + y) * s0);
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Memory estimates

/** Peak WASM bytes of one trunk pass (inside one block's tidy, plus the hidden states kept). */
export function trunkPassBytes(t: TrunkConfig, batch: number, n: number, m: number, keepKv: boolean): number {
  const D = t.width;
  const hidden = t.depth * batch * n * D * 4;
  const kv = keepKv ? t.depth * 2 * batch * n * D * 4 : 0;
  // per block: qkv, k/v with the cache, every head's scores (matMul, scale, softmax), MLP hidden x2, a few [n, D]
  const block = batch * 4 * (n * 3 * D + 2 * m * D + 3 * t.heads * n * m + 2 * n * t.mlpHidden + 6 * n * D);
  return hidden + kv + block;
}

/** Peak bytes of MAP pooling over `n` tokens (kv projection and the single query's scores). */
function poolBytes(t: TrunkConfig, n: number): number {
  return 4 * (n * t.width + n * 2 * t.width + 3 * t.poolHeads * n);
}

/** The most tiles per trunk call under `budget` bytes (1 to 16). */
export function defaultTileBatch(cfg: VisionConfig, budget = 512 * 1024 ** 2): number {
  const n0 = lowResTokenCount(cfg);
  let b = 16;
  while (b > 1 && trunkPassBytes(cfg.trunk, b, n0, n0, false) > budget) b--;
  return b;
}

/** Estimated peak WASM bytes of a method beyond what is allocated already (the weights). */
export function estimatePeakBytes(cfg: VisionConfig, method: EncodeMethod, input: { height: number; width: number }, options: MethodOptions = {}): number {
  const t = cfg.trunk;
  const n0 = lowResTokenCount(cfg);
  const lowPass = trunkPassBytes(t, 1, n0, n0, method === 'ps3');
  if (method === 'lowres') return lowPass + poolBytes(t, n0);
  if (method === 'ps3') {
    const plan = ps3Plan(cfg, input, options);
    const lowKept = t.depth * n0 * t.width * 4 * 3; // hidden states and the KV cache
    const highTotal = plan.reduce((a, c) => a + c, 0);
    const look = Math.max(0, ...plan.map((n) => trunkPassBytes(t, 1, n, n0 + n, false)));
    const assembled = 2 * (n0 + highTotal) * t.width * 4;
    return lowKept + look + highTotal * t.width * 4 + assembled + poolBytes(t, highTotal || n0);
  }
  const batch = options.tileBatch ?? defaultTileBatch(cfg);
  const R = options.resolution ?? Math.max(input.height, input.width);
  const tiles = method === 'anyres' ? (() => { const g = anyresGrid(cfg, input.height, input.width, R); return g.rows * g.cols; })() : Math.max(...s2Grids(cfg, input.height, input.width, R).map(({ grid }) => grid.rows * grid.cols));
  const kept = (tiles + (method === 'anyres' ? 1 : 0)) * n0 * t.width * 4;
  return Math.max(lowPass, trunkPassBytes(t, Math.min(batch, tiles), n0, n0, false)) + kept + poolBytes(t, kept / (t.width * 4));
}

const weightBytesCache = new WeakMap<Weights, { all: number; matrices: number }>();

/** Bytes of a model's weights, and of those the engine may also keep transposed (every matrix and the patch conv). */
export function weightBytes(weights: Weights): { all: number; matrices: number } {
  let known = weightBytesCache.get(weights);
  if (!known) {
    known = { all: 0, matrices: 0 };
    // shapes only: weights another engine runs are not made into tensors
    for (const key of weights.keys()) {
      const shape = weights.shapeOf(key);
      const size = shape.reduce((a, c) => a * c, 1);
      known.all += size * 4;
      if (shape.length >= 2 && shape[0]! > 1) known.matrices += size * 4;
    }
    weightBytesCache.set(weights, known);
  }
  return known;
}

/**
 * Throws OutOfMemoryError when the estimate does not fit what is left of the WASM heap. What is
 * in use counts at least the weights plus a transposed copy of every matrix (the engine caches
 * them on first use), so a first call is judged like later ones.
 */
export function checkFits(model: PS3Model, method: EncodeMethod, input: { height: number; width: number }, options: MethodOptions = {}): void {
  if (tf.getBackend() !== 'wasm') return;
  const need = estimatePeakBytes(model.config.vision, method, input, options);
  const w = weightBytes(model.weights);
  const used = Math.max(tf.memory().numBytes, w.all + w.matrices);
  const free = WASM_HEAP_BYTES - used;
  if (need > free) {
    throw new OutOfMemoryError(
      `${method} would need about ${(need / 1024 ** 3).toFixed(1)} GiB beyond the ${(used / 1024 ** 3).toFixed(1)} GiB of weights (with transposed copies) in the 4 GiB WASM heap (estimated; not run)`,
      need,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The methods

/** Tiles [T, 3, s0, s0] through the trunk (the default engine's, as PS3's own passes) in batches: their final-normed tokens [1, T·N0, D]. */
export async function tileTokens(model: PS3Model, tiles: Float32Array, count: number, batch: number): Promise<tf.Tensor> {
  const cfg = model.config.vision;
  const s0 = cfg.scales[0]!;
  const P = cfg.trunk.patchSize;
  const g = s0 / P;
  const D = cfg.trunk.width;
  const parts: tf.Tensor[] = [];
  for (let start = 0; start < count; start += batch) {
    const b = Math.min(batch, count - start);
    const chunk = tiles.subarray(start * 3 * s0 * s0, (start + b) * 3 * s0 * s0);
    const { data } = patchify(chunk, { batch: b, channels: 3, height: s0, width: s0 }, P);
    const tokens = tf.tidy(() => tf.add(patchEmbed(model.weights, tf.tensor2d(data, [b * g * g, 3 * P * P]), b), positionEmbedding(model.weights, g, g))); // [b, N0, D]
    const { hiddenStates } = await runTrunk(trunkFor(model.weights, cfg.trunk), model.weights, cfg.trunk, tokens, { lastOnly: true });
    parts.push(tf.tidy(() => tf.reshape(finalNorm(model.weights, cfg.trunk, hiddenStates[hiddenStates.length - 1]!), [1, b * g * g, D])));
    tf.dispose([tokens, ...hiddenStates]);
  }
  if (parts.length === 1) return parts[0]!;
  const all = tf.concat(parts, 1);
  tf.dispose(parts);
  return all;
}

/** The low-res view's final-normed tokens [1, N0, D]. */
async function globalTokens(model: PS3Model, pixels: Pixels): Promise<tf.Tensor> {
  const cfg = model.config.vision;
  const run = trunkFor(model.weights, cfg.trunk);
  const low = run ? await lowResOn(run, model.weights, cfg, pixels, false) : lowRes(model.weights, cfg, pixels, false);
  const out = tf.tidy(() => finalNorm(model.weights, cfg.trunk, low.hiddenStates[low.hiddenStates.length - 1]!));
  tf.dispose(low.hiddenStates);
  return out;
}

function pooled(model: PS3Model, tokens: tf.Tensor): tf.Tensor {
  return tf.tidy(() => l2Normalize(mapPool(model.weights, model.config.vision.trunk, tokens)));
}

/**
 * Encode one image [1, 3, H, W] (normalised, at the top scale) with `method` into a pooled
 * feature [1, D]. Throws OutOfMemoryError before running when it cannot fit.
 */
export async function encodeWith(model: PS3Model, pixels: Pixels, method: EncodeMethod, options: MethodOptions = {}): Promise<MethodEncoding> {
  const cfg = model.config.vision;
  if (pixels.batch !== 1) throw new UserError('encodeWith takes one image at a time');
  if (options.looks !== undefined && options.tokens !== undefined) throw new UserError('give looks or tokens, not both');
  if (options.memoryCheck ?? true) checkFits(model, method, pixels, options);
  const n0 = lowResTokenCount(cfg);
  const s0 = cfg.scales[0]!;
  const R = options.resolution ?? Math.max(pixels.height, pixels.width);
  if (R < s0) throw new UserError(`resolution ${R} is below the low-res scale ${s0}`);
  const started = performance.now();
  let feature: tf.Tensor;
  let tokens: number;
  let tiles = 0;
  switch (method) {
    case 'ps3': {
      const look = options.tokens !== undefined ? { numTokenLookClose: options.tokens } : { numLookClose: options.looks ?? 1 };
      const { out, region } = await encodeRegion(model, pixels, options.prompt, { ...look, ...(options.gtSelectionMaps ? { gtSelectionMaps: options.gtSelectionMaps } : {}) });
      tokens = out.lastHiddenState.shape[1]!;
      disposeEncode(out);
      feature = region;
      break;
    }
    case 'lowres': {
      const g = await globalTokens(model, pixels);
      feature = pooled(model, g);
      g.dispose();
      tokens = n0;
      break;
    }
    case 'anyres': {
      const grid = anyresGrid(cfg, pixels.height, pixels.width, R);
      tiles = grid.rows * grid.cols;
      const cut = cutTiles(pixels, s0, grid);
      const local = await tileTokens(model, cut, tiles, options.tileBatch ?? defaultTileBatch(cfg));
      const g = await globalTokens(model, pixels);
      const all = tf.concat([local, g], 1);
      tf.dispose([local, g]);
      feature = pooled(model, all);
      all.dispose();
      tokens = tiles * n0 + n0;
      break;
    }
    case 's2': {
      const perScale: tf.Tensor[] = [];
      tokens = 0;
      for (const { scale, grid } of s2Grids(cfg, pixels.height, pixels.width, R)) {
        const count = grid.rows * grid.cols;
        // the first scale is one low-res pass (square, as PS3's own low-res view)
        const t = scale === s0 && count === 1 ? await globalTokens(model, pixels) : await tileTokens(model, cutTiles(pixels, s0, grid), count, options.tileBatch ?? defaultTileBatch(cfg));
        perScale.push(pooled(model, t));
        t.dispose();
        tiles += count;
        tokens += count * n0;
      }
      feature = tf.tidy(() => l2Normalize(tf.mean(tf.concat(perScale, 0), 0, true)));
      tf.dispose(perScale);
      break;
    }
    default:
      throw new UserError(`unknown method "${String(method)}" (known: ${ENCODE_METHODS.join(', ')})`);
  }
  await feature.data();
  return { feature, tokens, tiles, ms: performance.now() - started };
}

/** Parse a method name (CLI input). */
export function parseMethod(name: string): EncodeMethod {
  if (!(ENCODE_METHODS as readonly string[]).includes(name)) throw new UserError(`--method must be one of ${ENCODE_METHODS.join(', ')}, got "${name}"`);
  return name as EncodeMethod;
}
