/**
 * Worker thread that computes one shard of a VILA-HD training step: the same
 * `batchLossAndGrads` the training thread runs on its own shard, on its own TensorFlow.js engine,
 * over the same token cache. The training thread sends the current trainable weights with each
 * shard and adds the gradients that come back to its own (gradShards.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine, tf, type BackendName } from '../tensor/engine.js';
import { loadModel } from '../model/load.js';
import { Weights } from '../model/weights.js';
import type { BoxLossKind } from '../train/loss.js';
import { errorReply, type ErrorReply } from '../train/workerLink.js';
import type { EncodeMethod } from '../model/baselines.js';
import type { LmConfig } from './config.js';
import { batchLossAndGrads, lossTerms } from './objective.js';
import { LmTokenizer } from './tokenizer.js';
import { SampleReader, type SampleTask, type TrainQuestion } from './trainData.js';

export interface GradWorkerData {
  readonly backend: BackendName;
  readonly ps3Dir: string;
  /** each task's token cache */
  readonly cacheDirs: Partial<Record<SampleTask, string>>;
  /** the qa cache holds the ConvNeXt's inputs, which a run tuning the ConvNeXt reads */
  readonly convInput: boolean;
  readonly method: EncodeMethod;
  readonly lm: LmConfig;
  readonly vocab: ReadonlyArray<readonly [string, number]>;
  readonly selectionWeight: number;
  readonly choiceWeight: number;
  readonly boxLoss: BoxLossKind;
  /** the block the cache's hidden states enter (null: PS3's trunk frozen) */
  readonly trunkFrom: number | null;
  /** VILA-HD's trainable keys and their shapes, in the order weights and gradients travel */
  readonly trainable: ReadonlyArray<readonly [string, readonly number[]]>;
  /** PS3's tuned keys (selection modules, trunk blocks) and shapes (empty when PS3 is frozen) */
  readonly ps3Trainable: ReadonlyArray<readonly [string, readonly number[]]>;
}

export interface ShardRequest {
  readonly questions: readonly TrainQuestion[];
  /** the whole batch's size: the shard's sum of losses is divided by it */
  readonly denominator: number;
  readonly weights: readonly Float32Array[];
  readonly ps3Weights: readonly Float32Array[];
}

export type ShardReply =
  | { type: 'ready' }
  | { type: 'shard'; answer: number; caption: number; selection: number; choice: number; loss: number; grads: Float32Array[]; ps3Grads: Float32Array[] }
  | ErrorReply;

const port = parentPort!;
const d = workerData as GradWorkerData;

async function start(): Promise<void> {
  await initEngine({ backend: d.backend });
  const ps3 = loadModel(d.ps3Dir, 'vision');
  const tokenizer = new LmTokenizer(new Map(d.vocab));
  const reader = new SampleReader(d.cacheDirs, d.convInput);
  const keys = d.trainable.map(([k]) => k);
  const ps3Keys = d.ps3Trainable.map(([k]) => k);
  let weights: Weights | undefined;
  port.on('message', (r: ShardRequest) => {
    try {
      weights?.dispose();
      weights = new Weights(new Map(d.trainable.map(([k, shape], i) => [k, tf.tensor(r.weights[i]!, [...shape])])));
      d.ps3Trainable.forEach(([k, shape], i) => ps3.weights.replace(k, tf.tensor(r.ps3Weights[i]!, [...shape])));
      const batch = r.questions.map((q) => ({ question: q, arrays: reader.arrays(q) }));
      const out = batchLossAndGrads(weights, keys, d.method, d.lm, ps3, tokenizer, batch, lossTerms(d, r.denominator, ps3Keys));
      const grads = keys.map((k) => out.grads.get(k)!.dataSync() as Float32Array);
      const ps3Grads = ps3Keys.map((k) => out.ps3Grads.get(k)!.dataSync() as Float32Array);
      tf.dispose([...out.grads.values(), ...out.ps3Grads.values()]);
      const reply: ShardReply = { type: 'shard', answer: out.answer, caption: out.caption, selection: out.selection, choice: out.choice, loss: out.loss, grads, ps3Grads };
      port.postMessage(reply, [...grads, ...ps3Grads].map((a) => a.buffer as ArrayBuffer));
    } catch (e) {
      port.postMessage(errorReply(e));
    }
  });
  port.postMessage({ type: 'ready' } satisfies ShardReply);
}

start().catch((e: unknown) => port.postMessage(errorReply(e)));
