/**
 * Worker thread that runs one shard of a pre-training step (gradShards.ts): the towers over its
 * samples, then — inside the same gradient function, so the tape is kept — it sends their
 * outputs to the training thread, blocks until the gradient of the batch's loss with respect to
 * them comes back, and backpropagates sum(output * gradient) to the weights.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { initEngine, tf, type BackendName } from '../tensor/engine.js';
import type { PS3Config } from '../io/config.js';
import { Weights } from '../model/weights.js';
import { collatePixels, type TrainSample } from './batch.js';
import { pretrainTowers, type LossWeights, type PretrainLabels, type PretrainTowers } from './objective.js';
import { errorReply, type ErrorReply } from './workerLink.js';

/** One tower output as it travels: [rows, ...] values. */
export interface Slot {
  readonly data: Float32Array;
  readonly shape: number[];
}

/**
 * A shard's tower outputs: `slots` are text, region text, pooled, region pooled (null where the
 * shard has none), then the bottom-up and the top-down probabilities of each high-res scale, then
 * the regions' (null without region selection), then the boxes' and the regions' mean tokens (null
 * without the token-word term).
 */
export interface TowerArrays {
  readonly slots: Array<Slot | null>;
  readonly gtAtScale: Float32Array[];
  /** the regions' boxes at each grid (null without region selection) */
  readonly regionGtAtScale: Float32Array[] | null;
}

export interface GradWorkerData {
  readonly backend: BackendName;
  readonly config: PS3Config;
  /** every weight, as the training thread holds it when the run starts */
  readonly weights: ReadonlyArray<{ key: string; shape: number[]; data: Float32Array }>;
  /** the keys this thread differentiates (the step's but those only the loss terms read) */
  readonly keys: readonly string[];
  /** the keys whose values come with each step, in that order */
  readonly trainable: readonly string[];
  readonly lossWeights: LossWeights;
  /** where the training thread sends the gradients of the tower outputs */
  readonly port: MessagePort;
  /** set to 1 by the training thread once they are sent */
  readonly signal: Int32Array;
}

export interface ShardRequest {
  readonly samples: TrainSample[];
  readonly labels: PretrainLabels;
  /** the trainable weights' values this step, in the order of `trainable` */
  readonly weights: readonly Float32Array[];
}

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'towers'; towers: TowerArrays }
  | { type: 'grads'; grads: Record<string, Float32Array>; samples: TrainSample[] }
  | ErrorReply;

const port = parentPort!;
const d = workerData as GradWorkerData;

function slotsOf(t: PretrainTowers): Array<tf.Tensor | null> {
  const none = t.bottomupSelectionProbs.map(() => null);
  const rs = t.regionSelection;
  return [t.textPooled, t.regionText, t.pooledOutput, t.regionPooled, ...t.bottomupSelectionProbs, ...t.topdownSelectionProbs, ...(rs?.bottomupSelectionProbs ?? none), ...(rs?.topdownSelectionProbs ?? none), t.boxTokens, t.regionTokens, t.negativeText, t.regionNegativeText];
}

/** Blocks until the training thread has sent the gradients of this shard's outputs. */
function awaitOutputGrads(): Array<Float32Array | null> {
  for (;;) {
    Atomics.wait(d.signal, 0, 0);
    const m = receiveMessageOnPort(d.port);
    if (m) {
      Atomics.store(d.signal, 0, 0);
      return m.message as Array<Float32Array | null>;
    }
    // signalled before the message reached the port: look again shortly
    Atomics.wait(d.signal, 0, 1, 1);
  }
}

async function start(): Promise<void> {
  await initEngine({ backend: d.backend });
  const plain = new Weights(new Map(d.weights.map((w) => [w.key, tf.tensor(w.data, w.shape)])));
  const weights = plain.toVariables();
  plain.dispose();
  const S = d.config.vision.scales[d.config.vision.scales.length - 1]!;
  const variables = d.keys.map((k) => weights.get(k) as tf.Variable);
  port.on('message', (r: ShardRequest) => {
    try {
      d.trainable.forEach((k, i) => {
        const v = weights.get(k) as tf.Variable;
        tf.tidy(() => v.assign(tf.tensor(r.weights[i]!, v.shape)));
      });
      // a shard of one sample reads its arrays as they came
      const one = r.samples.length === 1 ? r.samples[0]! : null;
      const stacked = one ? { pixels: { data: one.pixels, batch: 1, height: S, width: S, ...(one.resized ? { resized: new Map(one.resized) } : {}) }, gtSelectionMaps: one.gt } : collatePixels(r.samples, S);
      const batch = { ...stacked, ...r.labels };
      const { value, grads } = tf.variableGrads(() => {
        const towers = pretrainTowers(weights, d.config, batch, d.lossWeights);
        const slots = slotsOf(towers);
        const reply: WorkerReply = {
          type: 'towers',
          towers: { slots: slots.map((t) => (t ? { data: t.dataSync() as Float32Array, shape: [...t.shape] } : null)), gtAtScale: towers.gtAtScale, regionGtAtScale: towers.regionSelection?.gtAtScale ?? null },
        };
        port.postMessage(reply);
        const outputGrads = awaitOutputGrads();
        const parts = slots.flatMap((t, j) => (t && outputGrads[j] ? [tf.sum(tf.mul(t, tf.tensor(outputGrads[j]!, t.shape)))] : []));
        // no output the loss reads: a zero that still depends on the towers
        return (parts.length ? tf.addN(parts) : tf.mul(tf.sum(slots.find((t) => t !== null)!), 0)) as tf.Scalar;
      }, variables);
      value.dispose();
      const out: Record<string, Float32Array> = {};
      d.keys.forEach((k, i) => {
        const g = grads[variables[i]!.name];
        if (g) out[k] = g.dataSync() as Float32Array;
      });
      tf.dispose(Object.values(grads));
      const arrays = [...Object.values(out), ...r.samples.flatMap((s) => [s.pixels, s.gt, ...(s.resized?.values() ?? [])])];
      port.postMessage({ type: 'grads', grads: out, samples: r.samples } satisfies WorkerReply, arrays.map((a) => a.buffer as ArrayBuffer));
    } catch (e) {
      port.postMessage(errorReply(e));
    }
  });
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
}

start().catch((e: unknown) => port.postMessage(errorReply(e)));
