/**
 * The trunk on ONNX Runtime (onnxruntime-node, CPU): consecutive blocks grouped into ONNX models
 * of at most `maxModelBytes` of weights, one session each, run in a chain. Small groups, rather
 * than one model with external data, because:
 * - each protobuf stays far below its 2 GB limit (the so400m trunk is ~1.6 GB of float32);
 * - while a session is made, the transient copies (our protobuf bytes, ORT's parsed copy) are
 *   one group's size (ORT copies in-memory external data too, so that would not save them);
 * - ORT keeps every graph output of a run alive to the run's end, fetched or not: a group's
 *   keys/values ([B, M + N, D] per block) and hidden states cost one group's worth in a look,
 *   not the whole trunk's (so400m: 2 blocks, ~80 MB, instead of ~1.1 GB).
 * The CPU memory arena is off: a look's activations go back to the system after the run instead
 * of staying reserved beside TensorFlow.js's heap (no measurable cost in speed here). Sessions
 * run with intra-op threads = the cores (2 here), graph optimisation 'all', and without weight
 * prepacking (one copy of each weight in ONNX Runtime; see sessionOptions.ts).
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { TrunkConfig } from '../../io/config.js';
import { tf } from '../../tensor/engine.js';
import type { KV, TrunkOutput, TrunkRunner } from '../../model/vit.js';
import type { Weights } from '../../model/weights.js';
import { blockBytes, io, trunkGroupModel, type AttentionOps } from './trunkGraph.js';
import { ortFloats } from './ortFloats.js';
import { cpuSessionOptions } from './sessionOptions.js';

export interface OnnxTrunkOptions {
  /** most bytes of float32 weights per ONNX model (one session each); default 128 MiB */
  readonly maxModelBytes?: number;
  /** how attention is expressed (see trunkGraph.ts); default 'fused' */
  readonly attention?: AttentionOps;
  /** let ONNX Runtime repack the weights at session creation; default false (see sessionOptions.ts) */
  readonly prepack?: boolean;
}

/** One block's keys and values as ORT tensors, [B, M, D] each. */
export interface OrtKV {
  readonly k: Tensor;
  readonly v: Tensor;
}

interface Group {
  readonly from: number;
  readonly to: number;
  readonly session: InferenceSession;
}

/** Block ranges [from, to) of at most `maxBytes` each (one block at least). */
export function groupBlocks(cfg: TrunkConfig, maxBytes: number): Array<[number, number]> {
  const perGroup = Math.max(1, Math.floor(maxBytes / blockBytes(cfg)));
  const out: Array<[number, number]> = [];
  for (let from = 0; from < cfg.depth; from += perGroup) out.push([from, Math.min(cfg.depth, from + perGroup)]);
  return out;
}

function toOrt(data: Float32Array, dims: readonly number[]): Tensor {
  return new Tensor('float32', ortFloats(data), dims);
}

function toTf(t: Tensor): tf.Tensor {
  return tf.tensor(t.data as Float32Array, [...t.dims]);
}

/**
 * A block's low-res keys and values as ONNX Runtime returned them, made TensorFlow.js tensors
 * only when read: a look on this trunk feeds them back as they are, so the cache (so400m: 27
 * blocks x 2 x [1, 729, 1152], 180 MB) neither takes space in TensorFlow.js's heap (which never
 * shrinks) nor is copied out of it again for each look.
 */
class OrtCacheEntry implements KV {
  private made: { k?: tf.Tensor; v?: tf.Tensor } = {};

  constructor(private held: OrtKV | null) {}

  /** The ONNX Runtime tensors, null once disposed. */
  get ort(): OrtKV | null {
    return this.held;
  }

  get k(): tf.Tensor {
    return (this.made.k ??= toTf(this.live().k));
  }

  get v(): tf.Tensor {
    return (this.made.v ??= toTf(this.live().v));
  }

  private live(): OrtKV {
    if (!this.held) throw new Error('KV cache entry used after dispose');
    return this.held;
  }

  dispose(): void {
    tf.dispose([this.made.k, this.made.v].filter((t): t is tf.Tensor => t !== undefined));
    this.made = {};
    this.held = null;
  }
}

/** A cache entry as ONNX Runtime tensors: as held when this trunk made it, else copied out of TensorFlow.js. */
async function ortEntry(kv: KV): Promise<OrtKV> {
  const held = kv instanceof OrtCacheEntry ? kv.ort : null;
  if (held) return held;
  return { k: toOrt((await kv.k.data()) as Float32Array, kv.k.shape), v: toOrt((await kv.v.data()) as Float32Array, kv.v.shape) };
}

export class OnnxTrunk {
  private constructor(private readonly groups: readonly Group[]) {}

  /** Build every group's model from the weights and open its session (one group at a time, to bound memory). */
  static async create(w: Weights, cfg: TrunkConfig, options: OnnxTrunkOptions = {}): Promise<OnnxTrunk> {
    const sessionOptions = cpuSessionOptions({ prepack: options.prepack ?? false, memPattern: false });
    const groups: Group[] = [];
    try {
      for (const [from, to] of groupBlocks(cfg, options.maxModelBytes ?? 128 * 2 ** 20)) {
        groups.push({ from, to, session: await InferenceSession.create(trunkGroupModel(w, cfg, from, to, options.attention ?? 'fused'), sessionOptions) });
      }
    } catch (e) {
      await Promise.all(groups.map((g) => g.session.release()));
      throw e;
    }
    return new OnnxTrunk(groups);
  }

  get sessions(): number {
    return this.groups.length;
  }

  private get depth(): number {
    return this.groups[this.groups.length - 1]!.to;
  }

  /**
   * All blocks on tokens [B, N, D]; `cache` (one per block) is attended to before the tokens'
   * own keys/values (none when null). Returns every block's hidden state, or only the last one
   * when `lastOnly`, or only those of `hiddenLayers` (and the last) with the others left empty,
   * and every block's keys and values when `keepKv`.
   */
  async runOrt(tokens: Tensor, cache: readonly OrtKV[] | null, fetch: { lastOnly: boolean; keepKv: boolean; hiddenLayers?: readonly number[] }): Promise<{ hidden: Tensor[]; kv: OrtKV[] }> {
    const wanted = (i: number): boolean => !fetch.hiddenLayers || fetch.hiddenLayers.includes(i);
    const [B, , D] = tokens.dims as [number, number, number];
    const empty = toOrt(new Float32Array(0), [B, 0, D]);
    const hidden: Tensor[] = [];
    const kv: OrtKV[] = [];
    let x = tokens;
    for (const { from, to, session } of this.groups) {
      const feeds: Record<string, Tensor> = { [io.tokens]: x };
      const fetches: string[] = [];
      for (let i = from; i < to; i++) {
        feeds[io.cacheKey(i)] = cache ? cache[i]!.k : empty;
        feeds[io.cacheValue(i)] = cache ? cache[i]!.v : empty;
        // a group's last hidden state is the next group's input, so it is always fetched
        if ((!fetch.lastOnly && wanted(i)) || i === to - 1) fetches.push(io.hidden(i));
        if (fetch.keepKv) fetches.push(io.key(i), io.value(i));
      }
      const out = (await session.run(feeds, fetches)) as Record<string, Tensor>;
      for (let i = from; i < to; i++) {
        // left empty (not an entry) when not wanted: the array keeps one slot per block
        if (!fetch.lastOnly && (wanted(i) || i === this.depth - 1)) hidden[i] = out[io.hidden(i)]!;
        if (fetch.keepKv) kv.push({ k: out[io.key(i)]!, v: out[io.value(i)]! });
      }
      x = out[io.hidden(to - 1)]!;
    }
    if (fetch.lastOnly) hidden.push(x);
    return { hidden, kv };
  }

  /** `TrunkRunner`: TensorFlow.js tensors in and out, the blocks on ONNX Runtime. */
  readonly run: TrunkRunner = async (tokens, options): Promise<TrunkOutput> => {
    const cache = options.cache ? await Promise.all(options.cache.map(ortEntry)) : null;
    const x = toOrt((await tokens.data()) as Float32Array, tokens.shape);
    const out = await this.runOrt(x, cache, { lastOnly: options.lastOnly ?? false, keepKv: options.keepKv ?? false, ...(options.hiddenLayers ? { hiddenLayers: options.hiddenLayers } : {}) });
    const kvCache: KV[] = out.kv.map((kv) => new OrtCacheEntry(kv));
    // map keeps the empty slots empty
    return { hiddenStates: out.hidden.map(toTf), kvCache };
  };

  async release(): Promise<void> {
    await Promise.all(this.groups.map((g) => g.session.release()));
  }
}
