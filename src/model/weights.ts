/**
 * Weights are plain named tensors keyed like the released checkpoint. A module is a function of
 * its weights and inputs, so `get` is the only way in, and a missing key names itself.
 */
import { tf } from '../tensor/engine.js';
import type { NamedArray } from '../io/safetensorsFormat.js';
import { UserError } from '../errors.js';
import { fnv1a, Rng } from '../rng.js';
import type { ParamTable } from './params.js';

/** A weight not made into a tensor yet: its shape, and how to read its values (from a file, say). */
export interface WeightSource {
  readonly shape: readonly number[];
  read(): NamedArray;
  /** rows of the weight seen as [-1, last dim], read without the rest (a checkpoint file can) */
  readRows?(rows: Int32Array): Float32Array;
}

export class Weights {
  /** transposed 2-d weights, cached for frozen weights (variables change, so they are transposed per use) */
  private readonly transposedCache = new Map<string, tf.Tensor>();
  /** what other engines hold for these weights (ONNX Runtime's sessions), freed with them */
  private readonly disposers: Array<() => void> = [];

  /**
   * `sources` are weights made into tensors on first `get`: a checkpoint's trunk blocks that run
   * on ONNX Runtime are read from the file straight into its sessions and never take space in
   * TensorFlow.js's heap.
   */
  constructor(
    private readonly tensors: Map<string, tf.Tensor>,
    readonly trainable = false,
    private readonly sources: Map<string, WeightSource> = new Map(),
  ) {}

  /**
   * A 2-d weight transposed, [in, out] for an [out, in] Linear weight, reshaped first to
   * [rows, -1] when `rows` is given (a conv kernel as a matrix). TensorFlow.js's WASM matmul is
   * an order of magnitude slower with a transposed operand, so the model multiplies by this.
   */
  transposed(key: string, rows?: number): tf.Tensor {
    const cacheKey = rows === undefined ? key : `${key}@${rows}`;
    const hit = this.transposedCache.get(cacheKey);
    if (hit) return hit;
    // a frozen weight not made yet is transposed straight from its source and not kept as it is
    // stored: the model multiplies by the transposed copy only (a so400m trunk's matrices would
    // otherwise sit in the heap twice); its source stays, so `get` can still make it
    const source = this.trainable || this.tensors.has(key) ? undefined : this.sources.get(key);
    const stored = source ? Weights.tensorOf(source.read()) : this.get(key);
    const t = tf.tidy(() => tf.transpose(rows === undefined ? stored : tf.reshape(stored, [rows, -1])));
    if (source) stored.dispose();
    if (this.trainable) return t;
    this.transposedCache.set(cacheKey, tf.keep(t));
    return t;
  }

  /** Whether `key` is held transposed (for every `rows` it was asked with). */
  hasTransposed(key: string): boolean {
    for (const cacheKey of this.transposedCache.keys()) if (cacheKey === key || cacheKey.startsWith(`${key}@`)) return true;
    return false;
  }

  private static tensorOf(a: NamedArray): tf.Tensor {
    return tf.tensor(a.data, [...a.shape], a.data instanceof Float32Array ? 'float32' : 'int32');
  }

  get(key: string): tf.Tensor {
    const t = this.tensors.get(key);
    if (t) return t;
    const source = this.sources.get(key);
    if (!source) throw new UserError(`weights: missing key "${key}"`);
    // kept: the first use may be inside a tidy scope, which must not take the weight with it
    const made = tf.keep(Weights.tensorOf(source.read()));
    this.tensors.set(key, made);
    this.sources.delete(key);
    return made;
  }

  /**
   * Rows `rows` of a weight seen as [-1, last dim]: [rows.length, last dim]. A frozen weight not
   * made yet whose source reads rows (a checkpoint file) is read for those rows alone and never
   * made a tensor: a 3780 px scale's position residual is 320 MB as float32, of which a look
   * needs a few thousand rows. Otherwise gathered from the tensor.
   */
  rows(key: string, rows: Int32Array): tf.Tensor {
    const shape = this.shapeOf(key);
    const width = shape[shape.length - 1]!;
    if (this.readsRows(key)) return tf.tensor2d(this.sources.get(key)!.readRows!(rows), [rows.length, width]);
    return tf.tidy(() => tf.gather(tf.reshape(this.get(key), [-1, width]), tf.tensor1d(rows, 'int32')));
  }

  /** Whether `rows` reads `key` from its source rather than from a tensor. */
  readsRows(key: string): boolean {
    return !this.trainable && !this.tensors.has(key) && this.sources.get(key)?.readRows !== undefined;
  }

  shapeOf(key: string): readonly number[] {
    const t = this.tensors.get(key);
    if (t) return t.shape;
    const source = this.sources.get(key);
    if (!source) throw new UserError(`weights: missing key "${key}"`);
    return source.shape;
  }

  /**
   * A weight's float32 values for another engine: read from its source when it is not a tensor
   * yet (and it stays one not made), else copied out of TensorFlow.js.
   */
  values(key: string): Float32Array {
    const source = this.sources.get(key);
    const data = source ? source.read().data : this.get(key).dataSync();
    if (!(data instanceof Float32Array)) throw new UserError(`weights: "${key}" is not float32`);
    return data;
  }

  /**
   * Swap in a new value for `key` (disposing the old one): how an optimizer step lands. What other
   * engines made of these weights (ONNX Runtime's sessions) holds the old values, so it is let go,
   * to be made again from the new ones on next use.
   */
  replace(key: string, value: tf.Tensor): void {
    const old = this.get(key);
    this.tensors.set(key, value);
    for (const release of this.disposers.splice(0)) release();
    for (const [cacheKey, t] of this.transposedCache) {
      if (cacheKey === key || cacheKey.startsWith(`${key}@`)) {
        t.dispose();
        this.transposedCache.delete(cacheKey);
      }
    }
    old.dispose();
  }

  has(key: string): boolean {
    return this.tensors.has(key) || this.sources.has(key);
  }

  keys(): IterableIterator<string> {
    return new Set([...this.tensors.keys(), ...this.sources.keys()]).values();
  }

  /** Every weight as a tensor (those not made yet are made now). */
  entries(): IterableIterator<[string, tf.Tensor]> {
    for (const key of [...this.sources.keys()]) this.get(key);
    return this.tensors.entries();
  }

  /** Variables for training: the same names, as trainable `tf.Variable`s. */
  toVariables(): Weights {
    const out = new Map<string, tf.Tensor>();
    for (const [k, t] of this.entries()) out.set(k, tf.variable(t, true, k.replace(/[^A-Za-z0-9_./-]/g, '_')));
    return new Weights(out, true);
  }

  /** Run `release` when these weights are disposed (another engine's copy of them). */
  onDispose(release: () => void): void {
    this.disposers.push(release);
  }

  dispose(): void {
    for (const release of this.disposers.splice(0)) release();
    for (const t of this.tensors.values()) t.dispose();
    for (const t of this.transposedCache.values()) t.dispose();
    this.tensors.clear();
    this.sources.clear();
    this.transposedCache.clear();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Check stored arrays against the parameter table and make them weights (tensors on first use):
 * every table key must be present with its shape; a stored key outside the table (and outside
 * `allowedExtra`) is refused by name. Allowed extra keys are checked, and kept where `loadExtra` says.
 */
export function checkAndLoad(
  arrays: { keys(): Iterable<string>; shapeOf(key: string): readonly number[]; read(key: string): NamedArray; readRows?(key: string, rows: Int32Array): Float32Array },
  table: ParamTable,
  where: string,
  allowedExtra: ParamTable = new Map(),
  loadExtra: (key: string) => boolean = () => true,
): Weights {
  const stored = new Set(arrays.keys());
  for (const [key, shape] of table) {
    if (!stored.has(key)) throw new UserError(`${where}: missing key "${key}" (expected shape ${JSON.stringify(shape)})`);
    const got = arrays.shapeOf(key);
    if (!sameShape(got, shape)) {
      throw new UserError(`${where}: key "${key}" has shape ${JSON.stringify(got)}, expected ${JSON.stringify(shape)}`);
    }
  }
  for (const key of stored) {
    if (table.has(key)) continue;
    const extra = allowedExtra.get(key);
    if (!extra) throw new UserError(`${where}: unexpected key "${key}"`);
    if (!sameShape(arrays.shapeOf(key), extra)) {
      throw new UserError(`${where}: key "${key}" has shape ${JSON.stringify(arrays.shapeOf(key))}, expected ${JSON.stringify(extra)}`);
    }
  }
  // read on first use: weights another engine runs are never made into tensors
  const sources = new Map<string, WeightSource>();
  for (const key of stored) {
    if (!table.has(key) && !loadExtra(key)) continue;
    const readRows = arrays.readRows?.bind(arrays);
    sources.set(key, { shape: arrays.shapeOf(key), read: () => arrays.read(key), ...(readRows ? { readRows: (rows: Int32Array) => readRows(key, rows) } : {}) });
  }
  return new Weights(new Map(), false, sources);
}

/** A seed of its own for each key (FNV-1a of the name, mixed with the model's seed). */
function keySeed(seed: number, key: string): number {
  // UTF-16 code units, as charCodeAt gives them (iterating the string would give code points)
  return fnv1a(Array.from({ length: key.length }, (_, i) => key.charCodeAt(i)), 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1));
}

/** One weight's random initial values (see `randomWeights`). */
function randomValues(key: string, shape: readonly number[], seed: number, init: { logitScale: number; logitBias: number }): Float32Array {
  const n = shape.reduce((a, c) => a * c, 1);
  const data = new Float32Array(n);
  const last = key.split('.').pop() ?? '';
  const isNorm = /(norm\d?|ln_\d|ln_final|stem\.1)\.(weight|bias)$/.test(key);
  if (key === 'logit_scale') data.fill(init.logitScale);
  else if (key === 'logit_bias') data.fill(init.logitBias);
  else if (isNorm) data.fill(last === 'weight' ? 1 : 0);
  else if (last === 'bias' || key.endsWith('in_proj_bias')) data.fill(0);
  // ConvNeXt's per-channel scale (timm's gamma); timm starts it at 1e-6, which would make a
  // random model's blocks vanish, so random models start it at 0.1
  else if (/highres_selection_feature_module\.blocks\.\d+\.weight$/.test(key)) data.fill(0.1);
  else {
    const fanIn = shape.length >= 2 ? n / shape[0]! : 1;
    const std = /embed|embedding|latent|prompt|residual/.test(key) ? 0.02 : 1 / Math.sqrt(fanIn);
    // drawn straight into the float32 buffer: a so400m trunk is ~400M values
    new Rng(keySeed(seed, key)).fillNormal(data, std);
  }
  return data;
}

/**
 * Random initialisation in the spirit of timm/open_clip: norms at (1, 0), biases 0, matrices
 * N(0, 1/fan_in), embeddings N(0, 0.02), the logit scale and bias at their configured init.
 * Each key draws from its own seed, so a weight is made only when used (and the same whichever
 * is made first): a trunk run by ONNX Runtime is generated straight into its sessions.
 */
export function randomWeights(table: ParamTable, seed: number, init: { logitScale: number; logitBias: number }): Weights {
  const sources = new Map<string, WeightSource>();
  for (const [key, shape] of table) sources.set(key, { shape, read: () => ({ shape, data: randomValues(key, shape, seed, init) }) });
  return new Weights(new Map(), false, sources);
}
