/**
 * Training benchmark: N pre-training steps of a model at its top scale (plus one warm-up step).
 *
 * By default the steps run as the trainer runs them: samples (decode, random resized crop, PIL
 * resize, normalise, box map, the encoder's resizes) come from the trainer's worker thread, two
 * ahead, while this thread runs the gradient step and the optimizer. Samples per second are then
 * the trainer's, and each step is split into
 *   data      waiting for the worker's samples (what the overlap does not hide)
 *   backward  the gradient step (stacking the batch, forward with tape, checkpoint recomputes, backward)
 *   optimizer clipping and AdamW
 * With `phases`, everything runs in this thread, one phase after the other, so each is measured
 * alone: data (read .. box map, stacking the batch), resizes (the encoder's other input sizes), forward (the objective
 * without gradients: a separate, extra pass and the profile's only cost), backward (the gradient
 * step minus forward), optimizer. Samples per second then count data + resizes + gradient step +
 * optimizer, run one after the other.
 * With `threads` > 1 the gradient step is `ps3 train --threads`'s (train/gradShards.ts): the
 * batch's towers on that many worker threads, the loss terms on this one.
 * GFLOP/s count the model's FLOPs (3 forwards a sample) over the gradient step and optimizer;
 * CPU time is the process's (every thread), per sample.
 */
import { tf } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { resize } from '../tensor/resample.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { ShardDataset } from '../io/shards.js';
import { inputResizes } from '../model/encoder.js';
import type { PS3Model } from '../model/load.js';
import { WorkerSampleSource } from '../train/prefetch.js';
import { sampleSource } from '../train/sampleStream.js';
import { BufferPool } from '../tensor/bufferPool.js';
import { BatchGradients, sampleFlops } from '../train/trainer.js';
import { collate, releaseBatch, type SampleSource, type TrainSample } from '../train/batch.js';
import { DEFAULT_LOSS_WEIGHTS, lossAndGrads, pretrainObjective, type LossAndGrads, type LossWeights } from '../train/objective.js';
import { AdamW, clipGradients } from '../train/optimizer.js';

export interface TrainPhases {
  data: number;
  resizes: number;
  forward: number;
  backward: number;
  optimizer: number;
}

export interface TrainBench {
  readonly resolution: number;
  readonly batch: number;
  readonly steps: number;
  /** "pipelined": data in the trainer's worker thread; "phases": every phase in turn in one thread */
  readonly mode: 'pipelined' | 'phases';
  /** threads that shared each step's batch (1: the training thread alone) */
  readonly threads: number;
  readonly loss_weights: LossWeights;
  /** per step, mean over the timed steps (the first step warms up and is not counted) */
  readonly ms_per_step: TrainPhases;
  /** CPU ms of this process (every thread) per step and phase; pipelined, the worker's work lands in whichever phase it overlaps */
  readonly cpu_ms_per_step: TrainPhases;
  readonly share: TrainPhases;
  readonly samples_per_s: number;
  /** samples/s of the model's work alone (gradient step and optimizer), as if data cost nothing */
  readonly samples_per_s_model_only: number;
  /** CPU time (all threads) per sample over the timed steps */
  readonly cpu_ms_per_sample: number;
  readonly gflops: number;
  readonly losses: number[];
  readonly rss_peak_mb: number;
}

export interface BenchTrainOptions {
  steps: number;
  batch: number;
  seed: number;
  /** run every phase in turn in this thread (the step's profile) instead of as the trainer does */
  phases?: boolean;
  /** worker threads sharing each step's batch, as `ps3 train --threads` (not with `phases`) */
  threads?: number;
  lossWeights?: LossWeights;
  onStep?: (done: number) => void;
}

/** Time `steps` steps (plus one warm-up) of batches of `batch` from the shard sets. */
export async function benchTrain(model: PS3Model, data: { images: string; annotations: string }, tokenizer: TextTokenizer, options: BenchTrainOptions): Promise<TrainBench> {
  const v = model.config.vision;
  const S = v.scales[v.scales.length - 1]!;
  const sizes = inputResizes(v, S, S);
  const lossWeights = options.lossWeights ?? DEFAULT_LOSS_WEIGHTS;
  const phases = options.phases ?? false;
  const threads = Math.min(options.threads ?? 1, options.batch);
  if (phases && threads > 1) throw new UserError('--phases times each phase in one thread: drop --threads');
  // big arrays reused from step to step, as the trainer reuses them
  const pool = new BufferPool();
  let source: SampleSource & { close?: () => Promise<void> };
  if (phases) {
    const dataset = new ShardDataset({ images: data.images, annotations: data.annotations, seed: options.seed, shuffleBuffer: 0, resample: true });
    source = sampleSource(dataset, options.seed, 0, { size: S, globalCaptionProb: 0.25, pool });
  } else {
    source = new WorkerSampleSource(
      { data, seed: options.seed, shuffleBuffer: 0, skip: 0, size: S, globalCaptionProb: 0.25, ahead: 2, resizes: sizes },
      () => undefined,
    );
  }
  const optimizer = new AdamW();
  const total: TrainPhases = { data: 0, resizes: 0, forward: 0, backward: 0, optimizer: 0 };
  const cpuTotal: TrainPhases = { data: 0, resizes: 0, forward: 0, backward: 0, optimizer: 0 };
  const losses: number[] = [];
  let cpuStart = process.cpuUsage();
  let wallStart = performance.now();
  // pipelined, the gradient step is the trainer's
  const gradients = phases ? null : await BatchGradients.start(model, tokenizer, source, { threads, batch: options.batch, trainable: [...model.weights.keys()], lossWeights });
  try {
    for (let step = 0; step <= options.steps; step++) {
      if (step === 1) {
        cpuStart = process.cpuUsage();
        wallStart = performance.now();
      }
      const t: TrainPhases = { data: 0, resizes: 0, forward: 0, backward: 0, optimizer: 0 };
      const c: TrainPhases = { data: 0, resizes: 0, forward: 0, backward: 0, optimizer: 0 };
      let t0 = performance.now();
      let c0 = process.cpuUsage();
      // wall and CPU ms since the last lap, into `phase`
      const lap = (phase: keyof TrainPhases): void => {
        const used = process.cpuUsage(c0);
        t[phase] += performance.now() - t0;
        c[phase] += (used.user + used.system) / 1000;
        t0 = performance.now();
        c0 = process.cpuUsage();
      };
      const samples: TrainSample[] = [];
      for (let i = 0; i < options.batch; i++) samples.push(await source.next());
      lap('data');
      let r: LossAndGrads;
      if (gradients) r = await gradients.of(samples);
      else {
        const withResizes = samples.map((s) => ({ ...s, resized: new Map(sizes.map(([h, w]) => [`${h}x${w}`, resize(s.pixels, 3, S, S, h, w, 'bicubic', pool.float32(3 * h * w))])) }));
        lap('resizes');
        const batch = collate(withResizes, S, tokenizer, pool);
        withResizes.forEach((s) => pool.give(s.pixels, s.gt, ...s.resized.values()));
        // stacking the batch counts as data
        lap('data');
        tf.tidy(() => {
          pretrainObjective(model.weights, model.config, batch, lossWeights).total.dataSync();
        });
        lap('forward');
        r = lossAndGrads(model.weights, model.config, batch, { lossWeights });
        releaseBatch(batch, pool);
      }
      lap('backward');
      // the gradient pass less the separately timed forward; on a busy machine that forward can
      // take longer than the whole gradient pass, and a negative share means nothing
      t.backward = Math.max(0, t.backward - t.forward);
      c.backward = Math.max(0, c.backward - c.forward);
      clipGradients(r.grads, 1);
      optimizer.apply(model.weights, r.grads, 1e-4);
      tf.dispose([...r.grads.values()]);
      lap('optimizer');
      losses.push(r.loss.total);
      if (step > 0) {
        for (const k of Object.keys(total) as Array<keyof TrainPhases>) {
          total[k] += t[k] / options.steps;
          cpuTotal[k] += c[k] / options.steps;
        }
      }
      options.onStep?.(step);
    }
  } finally {
    await gradients?.close();
    await source.close?.();
  }
  const cpu = process.cpuUsage(cpuStart);
  const wallMs = performance.now() - wallStart;
  const samplesTimed = options.batch * options.steps;
  const modelMs = total.forward + total.backward + total.optimizer;
  // pipelined, a step is what the clock says (data waits included); in phases, the sum of the phases
  const stepMs = phases ? total.data + total.resizes + modelMs : wallMs / options.steps;
  const share = Object.fromEntries(Object.entries(total).map(([k, ms]) => [k, ms / stepMs])) as unknown as TrainPhases;
  return {
    resolution: S,
    batch: options.batch,
    steps: options.steps,
    mode: phases ? 'phases' : 'pipelined',
    threads,
    loss_weights: lossWeights,
    ms_per_step: total,
    cpu_ms_per_step: cpuTotal,
    share,
    samples_per_s: options.batch / (stepMs / 1000),
    samples_per_s_model_only: options.batch / (modelMs / 1000),
    cpu_ms_per_sample: (cpu.user + cpu.system) / 1000 / samplesTimed,
    gflops: (3 * sampleFlops(model) * options.batch) / (modelMs / 1000) / 1e9,
    losses,
    rss_peak_mb: process.resourceUsage().maxRSS / 1024,
  };
}
