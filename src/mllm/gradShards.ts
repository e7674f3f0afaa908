/**
 * A VILA-HD training step over several threads. A question's loss depends on that question
 * alone, so the batch splits into contiguous shards: the training thread computes the first, a
 * worker thread each other one (gradWorker.ts) with the weights of this step, and the shards'
 * gradients add up to the batch's. TensorFlow.js's WASM engine runs on one core, so on a machine
 * with two cores a step takes about half the time. The split depends only on the batch size and
 * the number of threads, and shards are added in order, so a run is reproducible (and resumes on
 * the same curve) for a given `--threads`.
 */
import { tf } from '../tensor/engine.js';
import { shardSizes } from '../train/gradShards.js';
import { WorkerLink } from '../train/workerLink.js';
import type { PS3Model } from '../model/load.js';
import type { Weights } from '../model/weights.js';
import type { BoxLossKind } from '../train/loss.js';
import type { EncodeMethod } from '../model/baselines.js';
import type { LmConfig } from './config.js';
import { batchLossAndGrads, lossTerms, type BatchLoss, type SampleInputs } from './objective.js';
import type { LmTokenizer } from './tokenizer.js';
import type { SampleReader, TrainQuestion } from './trainData.js';
import type { GradWorkerData, ShardReply, ShardRequest } from './gradWorker.js';

export interface StepSetup {
  readonly method: EncodeMethod;
  readonly lm: LmConfig;
  readonly ps3: PS3Model;
  readonly ps3Dir: string;
  readonly tokenizer: LmTokenizer;
  readonly reader: SampleReader;
  readonly convInput: boolean;
  readonly trainable: readonly string[];
  readonly ps3Trainable: readonly string[];
  readonly selectionWeight: number;
  readonly choiceWeight: number;
  readonly boxLoss: BoxLossKind;
  /** the block the cache's hidden states enter, where a run tunes PS3's last blocks (null: PS3's trunk frozen) */
  readonly trunkFrom: number | null;
}

/** Computes each step's loss and gradients on this thread and `threads - 1` workers. */
export class ShardedStep {
  private constructor(
    private readonly setup: StepSetup,
    private readonly workers: Array<WorkerLink<ShardReply>>,
  ) {}

  /** Starts the workers (each loads PS3 and its engine) and waits until they are ready; `weights` gives the trainable keys' shapes. */
  static async start(setup: StepSetup, threads: number, weights: Weights): Promise<ShardedStep> {
    const data: GradWorkerData = {
      backend: tf.getBackend() as GradWorkerData['backend'],
      ps3Dir: setup.ps3Dir,
      cacheDirs: setup.reader.dirs,
      convInput: setup.convInput,
      method: setup.method,
      lm: setup.lm,
      vocab: [...setup.tokenizer.vocabulary()],
      selectionWeight: setup.selectionWeight,
      choiceWeight: setup.choiceWeight,
      boxLoss: setup.boxLoss,
      trunkFrom: setup.trunkFrom,
      trainable: setup.trainable.map((k) => [k, weights.shapeOf(k)]),
      ps3Trainable: setup.ps3Trainable.map((k) => [k, setup.ps3.weights.shapeOf(k)]),
    };
    const workers = Array.from({ length: Math.max(0, threads - 1) }, () => new WorkerLink<ShardReply>(new URL('./gradWorker.js', import.meta.url), { workerData: data }));
    const step = new ShardedStep(setup, workers);
    try {
      await Promise.all(workers.map((w) => w.ready));
    } catch (e) {
      await step.close();
      throw e;
    }
    return step;
  }

  /** The batch's mean loss and gradients, as `batchLossAndGrads` gives them on one thread. */
  async run(weights: Weights, questions: readonly TrainQuestion[]): Promise<BatchLoss> {
    const s = this.setup;
    const sizes = shardSizes(questions.length, this.workers.length + 1);
    const shards: TrainQuestion[][] = [];
    let at = 0;
    for (const n of sizes) {
      shards.push(questions.slice(at, at + n));
      at += n;
    }
    const replies: Array<Promise<Extract<ShardReply, { type: 'shard' }>>> = [];
    if (shards.length > 1) {
      const values = s.trainable.map((k) => weights.values(k));
      const ps3Values = s.ps3Trainable.map((k) => s.ps3.weights.values(k));
      shards.slice(1).forEach((shard, i) => {
        const worker = this.workers[i]!;
        replies.push(worker.expect('shard'));
        worker.post({ questions: shard, denominator: questions.length, weights: values, ps3Weights: ps3Values } satisfies ShardRequest);
      });
      // awaited below; a failure of this thread's shard must not leave them unhandled
      for (const r of replies) r.catch(() => undefined);
    }
    // this thread's shard runs while the workers run theirs
    const batch: SampleInputs[] = shards[0]!.map((q) => ({ question: q, arrays: s.reader.arrays(q) }));
    const own = batchLossAndGrads(weights, s.trainable, s.method, s.lm, s.ps3, s.tokenizer, batch, lossTerms(s, questions.length, s.ps3Trainable));
    const totals = { loss: own.loss, answer: own.answer, caption: own.caption, selection: own.selection, choice: own.choice };
    for (const pending of replies) {
      const r = await pending;
      totals.loss += r.loss;
      totals.answer += r.answer;
      totals.caption += r.caption;
      totals.choice += r.choice;
      totals.selection += r.selection;
      addInto(own.grads, s.trainable, r.grads);
      addInto(own.ps3Grads, s.ps3Trainable, r.ps3Grads);
    }
    return { ...totals, grads: own.grads, ps3Grads: own.ps3Grads };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/** grads[k] += values[i] for the i-th key, in place of the old tensor. */
function addInto(grads: Map<string, tf.Tensor>, keys: readonly string[], values: readonly Float32Array[]): void {
  keys.forEach((k, i) => {
    const old = grads.get(k)!;
    grads.set(k, tf.tidy(() => tf.add(old, tf.tensor(values[i]!, old.shape))));
    old.dispose();
  });
}

