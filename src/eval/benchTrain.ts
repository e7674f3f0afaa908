/**
 * Training benchmark: N pre-training steps of a model at its top scale, each split into the
 * phases a step spends its time in, all in this thread so each is measured alone:
 *   data      read, decode, random resized crop, PIL resize to the top scale, normalise, box map
 *   resizes   the encoder's other input sizes (low-res, the convnet's 1512, each scale)
 *   forward   the objective without gradients (a separate, extra pass: the profile's only cost)
 *   backward  the gradient step (forward with tape, checkpoint recomputes, backward) minus forward
 *   optimizer clipping and AdamW
 * Samples per second count a real step (data + resizes + gradient step + optimizer), and
 * GFLOP/s the model's FLOPs (3 forwards a sample) over the gradient step and optimizer.
 */
import { tf } from '../tensor/engine.js';
import { resize } from '../tensor/resample.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { ShardDataset } from '../io/shards.js';
import { inputResizes } from '../model/encoder.js';
import type { PS3Model } from '../model/load.js';
import { sampleSource } from '../train/sampleStream.js';
import { collate, sampleFlops, type TrainSample } from '../train/trainer.js';
import { lossAndGrads, pretrainObjective } from '../train/objective.js';
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
  /** per step, mean over the timed steps (the first step warms up and is not counted) */
  readonly ms_per_step: TrainPhases;
  readonly share: TrainPhases;
  readonly samples_per_s: number;
  /** samples/s if data and resizes overlapped the model's work (as the trainer's data thread does) */
  readonly samples_per_s_model_only: number;
  readonly gflops: number;
  readonly losses: number[];
  readonly rss_peak_mb: number;
}

/** Time `steps` steps (plus one warm-up) of batches of `batch` from the shard sets. */
export async function benchTrain(
  model: PS3Model,
  data: { images: string; annotations: string },
  tokenizer: TextTokenizer,
  options: { steps: number; batch: number; seed: number; onStep?: (done: number) => void },
): Promise<TrainBench> {
  const v = model.config.vision;
  const S = v.scales[v.scales.length - 1]!;
  const dataset = new ShardDataset({ images: data.images, annotations: data.annotations, seed: options.seed, shuffleBuffer: 0, resample: true });
  const source = sampleSource(dataset, options.seed, 0, { size: S, globalCaptionProb: 0.25 });
  const sizes = inputResizes(v, S, S);
  const optimizer = new AdamW();
  const total: TrainPhases = { data: 0, resizes: 0, forward: 0, backward: 0, optimizer: 0 };
  const losses: number[] = [];
  for (let step = 0; step <= options.steps; step++) {
    const t: TrainPhases = { data: 0, resizes: 0, forward: 0, backward: 0, optimizer: 0 };
    let t0 = performance.now();
    const samples: TrainSample[] = [];
    for (let i = 0; i < options.batch; i++) samples.push(await source.next());
    t.data = performance.now() - t0;
    t0 = performance.now();
    const withResizes = samples.map((s) => ({ ...s, resized: new Map(sizes.map(([h, w]) => [`${h}x${w}`, resize(s.pixels, 3, S, S, h, w, 'bicubic')])) }));
    t.resizes = performance.now() - t0;
    const batch = collate(withResizes, S, tokenizer);
    t0 = performance.now();
    tf.tidy(() => {
      pretrainObjective(model.weights, model.config, batch).total.dataSync();
    });
    t.forward = performance.now() - t0;
    t0 = performance.now();
    const r = lossAndGrads(model.weights, model.config, batch);
    t.backward = performance.now() - t0 - t.forward;
    t0 = performance.now();
    clipGradients(r.grads, 1);
    optimizer.apply(model.weights, r.grads, 1e-4);
    tf.dispose([...r.grads.values()]);
    t.optimizer = performance.now() - t0;
    losses.push(r.loss.total);
    if (step > 0) for (const k of Object.keys(total) as Array<keyof TrainPhases>) total[k] += t[k] / options.steps;
    options.onStep?.(step);
  }
  const stepMs = total.data + total.resizes + total.forward + total.backward + total.optimizer;
  const modelMs = total.forward + total.backward + total.optimizer;
  const share = Object.fromEntries(Object.entries(total).map(([k, ms]) => [k, ms / stepMs])) as unknown as TrainPhases;
  return {
    resolution: S,
    batch: options.batch,
    steps: options.steps,
    ms_per_step: total,
    share,
    samples_per_s: options.batch / (stepMs / 1000),
    samples_per_s_model_only: options.batch / (modelMs / 1000),
    gflops: (3 * sampleFlops(model) * options.batch) / (modelMs / 1000) / 1e9,
    losses,
    rss_peak_mb: process.resourceUsage().maxRSS / 1024,
  };
}
