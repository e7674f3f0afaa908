/**
 * The pre-training loop: batches of (image, box, caption) samples, the PS3 objective, AdamW with
 * warm-up + cosine, optional clipping, gradient accumulation and frozen groups, checkpoints that
 * resume exactly. The data stream and the per-sample augmentation are functions of the seed and
 * the sample's index, so a killed-and-resumed run sees the same samples as an uninterrupted one.
 */
import { tf, type BackendName } from '../tensor/engine.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import type { PS3Model } from '../model/load.js';
import { trunkFlops, convnetFlops, embedFlops, selectionFlops } from '../model/flops.js';
import { AdamW, clipGradients, type AdamWOptions } from './optimizer.js';
import { learningRate } from './schedule.js';
import { BufferPool } from '../tensor/bufferPool.js';
import { collate, releaseBatch, type SampleSource, type TrainSample } from './batch.js';
import { lossAndGrads, type LossAndGrads, type LossWeights } from './objective.js';
import { ShardedStep } from './gradShards.js';

/**
 * `prompts`: the text tower and the prompt projection stay as they are, so every caption keeps
 * the prompt it has (at random init, distinct ones); only the image side learns to meet them.
 * Trained jointly from scratch, prompts and selection features tend to settle on one shared
 * "any object" direction, after which neither side's gradient tells captions apart.
 */
export type FreezeGroup = 'none' | 'text' | 'prompts' | 'all-but-selection' | 'trunk' | 'features';

export interface TrainLoopOptions {
  readonly steps: number;
  readonly batch: number;
  readonly accum: number;
  readonly lr: number;
  readonly warmup: number;
  readonly clip: number;
  readonly freeze: FreezeGroup;
  readonly adamw: AdamWOptions;
  readonly lossWeights: LossWeights;
  /** stop early (after a whole step) once this many seconds have passed; 0 = no limit */
  readonly maxSeconds: number;
  /**
   * stop after this step, with a checkpoint, the schedule still that of `steps`: a long run's
   * stages (or another run's `--init`) can then start from a step anyone can re-make
   */
  readonly stopAt?: number;
  readonly saveEvery: number;
  /** steps between held-out evaluations (the `evaluate` hook); 0 = never */
  readonly evalEvery?: number;
  /**
   * worker threads that share each micro-batch (gradShards.ts); 1 (the default) computes it on
   * this thread. A run resumes on the same curve with the same number.
   */
  readonly threads?: number;
}

export interface StepMetrics {
  step: number;
  loss: number;
  contrastive_loss: number;
  /** in-batch top-1 of the contrastive pairs (captions whose own image scores highest) and the pairs a micro-batch held: chance is 1 / pairs */
  pairs_top1: number;
  pairs: number;
  /** the caption-word term (`--word-loss`; 0 when off) */
  word_loss: number;
  /** the caption-word term on the boxes' mean tokens (`--token-word-loss`; 0 when off) */
  token_word_loss: number;
  /** the hard-negative term (`--hard-negatives`; 0 when off) */
  hard_negative_loss: number;
  prior_box_loss: number;
  posterior_box_loss: number;
  lr: number;
  grad_norm: number;
  samples_per_s: number;
  gflops: number;
  logit_scale: number;
  seconds: number;
  /** held-out evaluation of this step, on the steps that ran one (`val_*` keys) */
  [val: `val_${string}`]: number | null;
}

/** The token-selection modules (the reference's `token_selection_param_names`). */
export const SELECTION_MODULES = ['vision_model.selection_feature_proj.', 'vision_model.highres_selection_feature_module.', 'vision_model.prompt_proj_for_highres.'];
/** Bottom-up selection's learned prompt: part of selection, not of the tokens. */
const PRIOR_PROMPT = 'vision_model.prior_prompt';
/** The text tower's prompt projection: a caption's top-down prompt, read by selection alone. */
export const PROMPT_PROJ = 'text_model.prompt_proj.';

export function trainableKeys(keys: Iterable<string>, freeze: FreezeGroup): string[] {
  const all = [...keys];
  if (freeze === 'text') return all.filter((k) => !k.startsWith('text_model.'));
  if (freeze === 'prompts') return all.filter((k) => !k.startsWith('text_model.'));
  if (freeze === 'all-but-selection') return all.filter((k) => SELECTION_MODULES.some((m) => k.startsWith(m)));
  // The vision tower's tokens stay as they are (a VILA-HD LM trained on them stays valid); the
  // text tower, its prompt projection, the selection modules and the bottom-up prior prompt learn.
  if (freeze === 'trunk') return all.filter((k) => !k.startsWith('vision_model.') || k === PRIOR_PROMPT || SELECTION_MODULES.some((m) => k.startsWith(m)));
  // Everything selection alone reads learns (the selection modules, the prior prompt and the text
  // tower's prompt projection); the tokens and both towers' contrastive features stay.
  if (freeze === 'features') return all.filter((k) => k === PRIOR_PROMPT || k.startsWith(PROMPT_PROJ) || SELECTION_MODULES.some((m) => k.startsWith(m)));
  return all;
}

/** Forward FLOPs of one training sample (text tower, low-res, selection, one full look). */
export function sampleFlops(model: PS3Model): number {
  const v = model.config.vision;
  const t = model.config.text;
  const n0 = (v.scales[0]! / v.trunk.patchSize) ** 2;
  const n = v.maxSelectNum;
  const text = t.layers * (2 * t.contextLength * t.width * 4 * t.width + 4 * t.contextLength * t.width * t.mlpHidden + 4 * t.contextLength ** 2 * t.width);
  return trunkFlops(v, n0, n0) + embedFlops(v, n0 + n) + convnetFlops(v) + selectionFlops(v) + trunkFlops(v, n, n0 + n) + text;
}

export interface TrainHooks {
  onStep?: (m: StepMetrics) => void;
  save?: (state: LoopState) => Promise<void>;
  evaluate?: (state: LoopState) => Promise<Record<`val_${string}`, number | null>>;
}

export interface LoopState {
  step: number;
  samplesSeen: number;
}

/**
 * Run steps from `state.step` to `options.steps` (or until the time budget), calling `onStep`
 * after each and `save` every `saveEvery` steps and at the end.
 */
export async function trainLoop(
  model: PS3Model,
  optimizer: AdamW,
  source: SampleSource,
  tokenizer: TextTokenizer,
  options: TrainLoopOptions,
  state: LoopState,
  hooks: TrainHooks,
): Promise<LoopState> {
  const trainable = trainableKeys(model.weights.keys(), options.freeze);
  const gradients = await BatchGradients.start(model, tokenizer, source, { threads: options.threads ?? 1, batch: options.batch, trainable, lossWeights: options.lossWeights });
  const flopsPerSample = 3 * sampleFlops(model); // forward + backward ~ 3 forwards
  const started = performance.now();
  const maxLogitScale = Math.log(100);
  try {
    while (state.step < options.steps) {
      const t0 = performance.now();
      const lr = learningRate(state.step, { lr: options.lr, warmup: options.warmup, steps: options.steps });
      const grads = new Map<string, tf.Tensor>();
      const terms = { total: 0, contrastive: 0, priorBox: 0, posteriorBox: 0, words: 0, tokenWords: 0, hardNegatives: 0 };
      let hits = 0;
      let pairs = 0;
      for (let micro = 0; micro < options.accum; micro++) {
        const samples: TrainSample[] = [];
        for (let i = 0; i < options.batch; i++) samples.push(await source.next());
        state.samplesSeen += options.batch;
        const r = await gradients.of(samples);
        for (const [k, g] of r.grads) {
          const scaled = options.accum === 1 ? g : tf.mul(g, 1 / options.accum);
          if (scaled !== g) g.dispose();
          const prev = grads.get(k);
          grads.set(k, prev ? tf.add(prev, scaled) : scaled);
          if (prev) {
            prev.dispose();
            scaled.dispose();
          }
        }
        terms.total += r.loss.total / options.accum;
        terms.contrastive += r.loss.contrastive / options.accum;
        terms.priorBox += r.loss.priorBox / options.accum;
        terms.posteriorBox += r.loss.posteriorBox / options.accum;
        terms.words += r.loss.words / options.accum;
        terms.tokenWords += r.loss.tokenWords / options.accum;
        terms.hardNegatives += r.loss.hardNegatives / options.accum;
        hits += r.pairs.top1 * r.pairs.count;
        pairs += r.pairs.count;
      }
      const gradNorm = clipGradients(grads, options.clip);
      optimizer.apply(model.weights, grads, lr);
      tf.dispose([...grads.values()]);
      if (model.weights.has('logit_scale')) {
        const clamped = tf.clipByValue(model.weights.get('logit_scale'), 0, maxLogitScale);
        model.weights.replace('logit_scale', clamped);
      }
      state.step += 1;
      const seconds = (performance.now() - t0) / 1000;
      const samples = options.batch * options.accum;
      const evalEvery = options.evalEvery ?? 0;
      const evaluation = hooks.evaluate && evalEvery > 0 && state.step % evalEvery === 0 ? await hooks.evaluate(state) : {};
      hooks.onStep?.({
        ...evaluation,
        step: state.step,
        loss: terms.total,
        contrastive_loss: terms.contrastive,
        pairs_top1: pairs ? hits / pairs : 0,
        pairs: pairs / options.accum,
        word_loss: terms.words,
        token_word_loss: terms.tokenWords,
        hard_negative_loss: terms.hardNegatives,
        prior_box_loss: terms.priorBox,
        posterior_box_loss: terms.posteriorBox,
        lr,
        grad_norm: gradNorm,
        samples_per_s: samples / seconds,
        gflops: (flopsPerSample * samples) / seconds / 1e9,
        logit_scale: model.weights.has('logit_scale') ? model.weights.get('logit_scale').dataSync()[0]! : NaN,
        seconds,
      });
      const outOfTime = options.maxSeconds > 0 && (performance.now() - started) / 1000 >= options.maxSeconds;
      const stopHere = outOfTime || (options.stopAt !== undefined && state.step >= options.stopAt);
      const last = state.step >= options.steps || stopHere;
      if (hooks.save && (last || state.step % options.saveEvery === 0)) await hooks.save(state);
      if (stopHere) break;
    }
  } finally {
    await gradients.close();
  }
  return state;
}

/**
 * A micro-batch's loss and gradients: stacked and computed on this thread, or with `threads` > 1
 * shared between worker threads (gradShards.ts). The samples' arrays go back to their source.
 */
export class BatchGradients {
  // the batches' arrays, reused step after step (fresh ones of this size are slow to fault in)
  private readonly pool = new BufferPool();

  private constructor(
    private readonly model: PS3Model,
    private readonly tokenizer: TextTokenizer,
    private readonly source: SampleSource,
    private readonly trainable: readonly string[],
    private readonly lossWeights: LossWeights,
    private readonly sharded: ShardedStep | null,
  ) {}

  static async start(model: PS3Model, tokenizer: TextTokenizer, source: SampleSource, o: { threads: number; batch: number; trainable: readonly string[]; lossWeights: LossWeights }): Promise<BatchGradients> {
    const threads = Math.min(o.threads, o.batch);
    const sharded = threads > 1 ? await ShardedStep.start(model.weights, model.config, { threads, trainable: o.trainable, lossWeights: o.lossWeights, backend: tf.getBackend() as BackendName }) : null;
    return new BatchGradients(model, tokenizer, source, o.trainable, o.lossWeights, sharded);
  }

  async of(samples: readonly TrainSample[]): Promise<LossAndGrads> {
    if (this.sharded) {
      const done = await this.sharded.run(this.model.weights, samples, this.tokenizer);
      this.source.recycle?.(done.samples);
      return done;
    }
    const v = this.model.config.vision;
    const batch = collate(samples, v.scales[v.scales.length - 1]!, this.tokenizer, this.pool, this.lossWeights.hardNegatives);
    this.source.recycle?.(samples);
    const r = lossAndGrads(this.model.weights, this.model.config, batch, { trainable: this.trainable, lossWeights: this.lossWeights });
    releaseBatch(batch, this.pool);
    return r;
  }

  async close(): Promise<void> {
    await this.sharded?.close();
  }
}

