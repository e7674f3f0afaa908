/**
 * A pre-training step over several threads. TensorFlow.js's WASM engine runs on one core, and
 * the towers — the text tower, low-res, selection, the look, the pooling — work on each sample
 * alone, so the batch splits into contiguous shards, one per worker thread (gradWorker.ts). The
 * loss terms compare samples (SigLIP's negatives, the caption-word term's vocabulary), so they
 * are computed here, once, over every shard's tower outputs, as on one thread; their gradient
 * with respect to those outputs goes back to each worker, which runs its backward pass from
 * there without giving up its tape: the worker waits inside its gradient function for this
 * thread's answer. The shards' gradients add up to the batch's.
 *
 * Shards depend only on the batch size and the number of threads, and are added in order, so a
 * run is reproducible (and resumes on the same curve) for a given `--threads`; against one
 * thread the gradients agree to float rounding.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { tf } from '../tensor/engine.js';
import type { PS3Config } from '../io/config.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { Weights } from '../model/weights.js';
import { gradientKeys, inBatchTop1, pretrainTerms, termValues, type LossAndGrads, type LossTerms, type LossWeights, type PretrainLabels, type PretrainTowers } from './objective.js';
import { collateLabels, concatArrays, labelRows, type TrainSample } from './batch.js';
import type { GradWorkerData, ShardRequest, WorkerReply, TowerArrays } from './gradWorker.js';
import { WorkerLink } from './workerLink.js';

/** Sizes of `threads` contiguous shards of a batch of `batch`, as even as can be (the first ones larger). */
export function shardSizes(batch: number, threads: number): number[] {
  const n = Math.max(1, Math.min(threads, batch));
  return Array.from({ length: n }, (_, i) => Math.floor(batch / n) + (i < batch % n ? 1 : 0));
}

/** Weights only the terms read (not the towers): their gradient comes from this thread alone. */
const TERMS_ONLY = /^logit_(scale|bias)$/;
/** Weights the terms read (the word term scores the token embedding): their gradient here joins the workers'. */
const READ_BY_TERMS = /^(logit_(scale|bias)|text_model\.token_embedding\.weight)$/;

/** A worker and the channel on which it waits, inside its gradient function, for its outputs' gradients. */
class ShardWorker extends WorkerLink<WorkerReply> {
  /** the gradients with respect to the tower outputs travel here, read by the waiting worker */
  private readonly port: MessagePort;
  private readonly signal: Int32Array;

  constructor(data: Omit<GradWorkerData, 'port' | 'signal'>) {
    const channel = new MessageChannel();
    const signal = new Int32Array(new SharedArrayBuffer(4));
    super(new URL('./gradWorker.js', import.meta.url), { workerData: { ...data, port: channel.port1, signal }, transferList: [channel.port1] });
    this.port = channel.port2;
    this.signal = signal;
  }

  /** The gradients of the shard's tower outputs, to the worker waiting for them. */
  answer(grads: Array<Float32Array | null>): void {
    this.port.postMessage(grads, grads.flatMap((g) => (g ? [g.buffer as ArrayBuffer] : [])));
    Atomics.store(this.signal, 0, 1);
    Atomics.notify(this.signal, 0);
  }

  override async close(): Promise<void> {
    this.port.close();
    await super.close();
  }
}

export interface ShardedResult extends LossAndGrads {
  /** the step's samples, their arrays back from the workers (for the source to fill again) */
  readonly samples: TrainSample[];
}

/** Computes each step's towers on `threads` worker threads and the loss terms on this one. */
export class ShardedStep {
  private constructor(
    private readonly config: PS3Config,
    private readonly workers: ShardWorker[],
    private readonly trainable: readonly string[],
    private readonly lossWeights: LossWeights,
    /** the keys whose gradient a step gives (`gradientKeys`), fixed for the run */
    private readonly keys: readonly string[],
  ) {}

  /** Starts the workers, each with a copy of the weights, and waits until they are ready. */
  static async start(weights: Weights, config: PS3Config, options: { threads: number; trainable: readonly string[]; lossWeights: LossWeights; backend: GradWorkerData['backend'] }): Promise<ShardedStep> {
    const keys = gradientKeys(weights, options);
    const data: Omit<GradWorkerData, 'port' | 'signal'> = {
      backend: options.backend,
      config,
      weights: [...weights.keys()].map((k) => ({ key: k, shape: [...weights.shapeOf(k)], data: weights.values(k).slice() })),
      keys: keys.filter((k) => !TERMS_ONLY.test(k)),
      trainable: [...options.trainable],
      lossWeights: options.lossWeights,
    };
    const workers = Array.from({ length: options.threads }, () => new ShardWorker(data));
    const step = new ShardedStep(config, workers, options.trainable, options.lossWeights, keys);
    try {
      await Promise.all(workers.map((w) => w.ready));
    } catch (e) {
      await step.close();
      throw e;
    }
    return step;
  }

  /** The batch's loss and gradients, as `lossAndGrads` gives them on one thread. */
  async run(weights: Weights, samples: readonly TrainSample[], tokenizer: TextTokenizer): Promise<ShardedResult> {
    try {
      return await this.step(weights, samples, tokenizer);
    } catch (e) {
      // a worker may be waiting for gradients that will not come
      await this.close();
      throw e;
    }
  }

  private async step(weights: Weights, samples: readonly TrainSample[], tokenizer: TextTokenizer): Promise<ShardedResult> {
    const labels = collateLabels(samples, tokenizer, this.lossWeights.hardNegatives);
    const sizes = shardSizes(samples.length, this.workers.length);
    const values = this.trainable.map((k) => weights.values(k));
    const bounds = sizes.map((_, i) => sizes.slice(0, i).reduce((a, n) => a + n, 0));
    const active = this.workers.slice(0, sizes.length);
    const outputs = active.map((w) => w.expect('towers'));
    active.forEach((w, i) => {
      const shard = samples.slice(bounds[i]!, bounds[i]! + sizes[i]!);
      const arrays = shard.flatMap((s) => [s.pixels, s.gt, ...(s.resized?.values() ?? [])]);
      // a buffer handed over already would make postMessage drop the whole message, silently
      if (arrays.some((a) => a.buffer.byteLength === 0)) throw new Error('training thread: a sample\'s arrays were already handed to a worker');
      // the weights are copied (every worker reads them); the samples' arrays move and come back
      w.post({ samples: [...shard], labels: labelRows(labels, bounds[i]!, bounds[i]! + sizes[i]!), weights: values } satisfies ShardRequest, arrays.map((a) => a.buffer as ArrayBuffer));
    });
    const towers = (await Promise.all(outputs)).map((m) => m.towers);
    const replies = active.map((w) => w.expect('grads'));
    const terms = this.terms(weights, towers, labels);
    active.forEach((w, i) => w.answer(terms.outputGrads[i]!));
    const done = await Promise.all(replies);
    const grads = new Map<string, tf.Tensor>();
    for (const k of this.keys) {
      const sum = new Float32Array(weights.shapeOf(k).reduce((a, d) => a * d, 1));
      for (const r of done) {
        const g = r.grads[k];
        if (g) for (let i = 0; i < g.length; i++) sum[i] += g[i]!;
      }
      const own = terms.weightGrads.get(k);
      if (own) for (let i = 0; i < own.length; i++) sum[i] += own[i]!;
      grads.set(k, tf.tensor(sum, [...weights.shapeOf(k)]));
    }
    return { loss: terms.loss, pairs: terms.pairs, grads, samples: done.flatMap((r) => r.samples) };
  }

  /**
   * The terms over every shard's tower outputs (stacked in shard order): the loss, and its
   * gradient with respect to each shard's outputs and to the weights the terms read.
   */
  private terms(weights: Weights, shards: TowerArrays[], labels: PretrainLabels): { loss: LossAndGrads['loss']; pairs: LossAndGrads['pairs']; outputGrads: Array<Array<Float32Array | null>>; weightGrads: Map<string, Float32Array> } {
    const slots = shards[0]!.slots.length;
    const stacked: Array<tf.Variable | null> = Array.from({ length: slots }, (_, j) => {
      const parts = shards.flatMap((s) => (s.slots[j] ? [s.slots[j]!] : []));
      if (!parts.length) return null;
      const rows = parts.reduce((a, p) => a + p.shape[0]!, 0);
      const data = concatArrays(parts.map((p) => p.data));
      // a variable shares its initial tensor's data: made in a tidy scope, that tensor is let go
      return tf.tidy(() => tf.variable(tf.tensor(data, [rows, ...parts[0]!.shape.slice(1)])));
    });
    const read = this.keys.filter((k) => READ_BY_TERMS.test(k));
    const own = new Map(read.map((k) => [k, tf.tidy(() => tf.variable(weights.get(k).clone()))]));
    const map = new Map<string, tf.Tensor>();
    for (const [k, t] of weights.entries()) map.set(k, own.get(k) ?? t);
    const w = new Weights(map, true);
    const scales = this.config.vision.scales.length - 1;
    const gtAtScale = Array.from({ length: scales }, (_, i) => concatArrays(shards.map((s) => s.gtAtScale[i]!)));
    // the regions' rows, shard after shard as the labels hold them (a shard without regions has none)
    const withRegions = shards.flatMap((s) => (s.regionGtAtScale ? [s.regionGtAtScale] : []));
    const regionRows = (from: number): tf.Tensor[] => stacked.slice(from, from + scales) as tf.Tensor[];
    const towers: PretrainTowers = {
      textPooled: stacked[0] ?? null,
      regionText: stacked[1] ?? null,
      pooledOutput: stacked[2] ?? null,
      regionPooled: stacked[3] ?? null,
      boxTokens: stacked[4 + 4 * scales] ?? null,
      regionTokens: stacked[5 + 4 * scales] ?? null,
      negativeText: stacked[6 + 4 * scales] ?? null,
      regionNegativeText: stacked[7 + 4 * scales] ?? null,
      bottomupSelectionProbs: stacked.slice(4, 4 + scales) as tf.Tensor[],
      topdownSelectionProbs: stacked.slice(4 + scales, 4 + 2 * scales) as tf.Tensor[],
      gtAtScale,
      selectionMaps: [],
      regionSelection: withRegions.length
        ? {
            bottomupSelectionProbs: regionRows(4 + 2 * scales),
            topdownSelectionProbs: regionRows(4 + 3 * scales),
            gtAtScale: Array.from({ length: scales }, (_, i) => concatArrays(withRegions.map((g) => g[i]!))),
          }
        : null,
    };
    let values: LossTerms | undefined;
    let pairs = { top1: 0, count: 0 };
    const lw = this.lossWeights;
    // as lossAndGrads: what the batch's terms leave unread (possibly everything) has no gradient, not an error
    const xs = [...stacked.filter((v): v is tf.Variable => v !== null), ...own.values()];
    const { value, grads: list } = tf.engine().gradients(
      () =>
        tf.tidy(() => {
          const out = pretrainTerms(w, this.config, towers, labels, lw);
          values = termValues(out);
          if (lw.contrastive !== 0) pairs = inBatchTop1(out.logits);
          return tf.reshape(out.total, []) as tf.Scalar;
        }),
      xs,
      undefined,
      true,
    );
    const grads: Record<string, tf.Tensor> = {};
    list.forEach((g, i) => {
      if (g) grads[xs[i]!.name] = g;
    });
    value.dispose();
    // each stacked output's gradient, cut back into the shards' rows
    const rows = shards.map((s) => s.slots.map((t) => t?.shape[0] ?? 0));
    const outputGrads = shards.map(() => Array.from({ length: slots }, (): Float32Array | null => null));
    stacked.forEach((v, j) => {
      const g = v && grads[v.name];
      if (!g) return;
      const all = g.dataSync() as Float32Array;
      const perRow = all.length / v.shape[0]!;
      let at = 0;
      shards.forEach((_, i) => {
        const n = rows[i]![j]!;
        if (n) outputGrads[i]![j] = all.slice(at * perRow, (at + n) * perRow);
        at += n;
      });
    });
    const weightGrads = new Map<string, Float32Array>();
    for (const [k, v] of own) {
      const g = grads[v.name];
      if (g) weightGrads.set(k, g.dataSync() as Float32Array);
    }
    tf.dispose([...Object.values(grads), ...stacked.filter((v) => v !== null), ...own.values()]);
    return { loss: values!, pairs, outputGrads, weightGrads };
  }

  private closing: Promise<void> | undefined;

  /** Stops the workers (once: a failed step closes them, and the trainer closes on its way out). */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.workers.map((w) => w.close())).then(() => undefined);
    return this.closing;
  }
}

