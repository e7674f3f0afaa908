/**
 * Worker thread that prepares training samples (decode or draw the scene, random resized crop,
 * PIL resize, normalise, box map, the encoder's resizes) while the main thread trains: on 2 cores
 * the data work then overlaps the model's. It runs exactly the stream `sampleSource` (shards) or
 * `synthSampleSource` (fresh synthetic scenes) would run in the main thread, so the samples and
 * their order are unchanged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShardDataset } from '../io/shards.js';
import { BufferPool } from '../tensor/bufferPool.js';
import type { ForcingCapacity } from '../model/selection.js';
import { sampleSource, type StreamOptions } from './sampleStream.js';
import { synthSampleSource, type SynthStreamSpec } from './synthStream.js';
import type { SampleSource, TrainSample } from './batch.js';

export interface SampleWorkerData {
  /** the shard sets, or an endless stream of fresh synthetic scenes instead */
  readonly data: { readonly images: string; readonly annotations: string } | { readonly synth: SynthStreamSpec };
  readonly seed: number;
  readonly shuffleBuffer: number;
  readonly skip: number;
  readonly size: number;
  readonly globalCaptionProb: number;
  /** local (box, caption) pairs per image for the contrastive term */
  readonly regions?: number;
  /** what one look can force, for the regions (samples.ts) */
  readonly forcing?: ForcingCapacity;
  /** samples prepared ahead of the trainer */
  readonly ahead: number;
  /** the encoder's resizes of each sample, made here so the training thread need not */
  readonly resizes: ReadonlyArray<readonly [number, number]>;
}

export type WorkerMessage =
  | { type: 'sample'; sample: TrainSample }
  | { type: 'skipped'; key: string; message: string }
  | { type: 'summary'; summary: string; badImages: number }
  | { type: 'error'; message: string; user: boolean };

const port = parentPort!;
const d = workerData as SampleWorkerData;
// the samples' arrays come back from the trainer once used ("recycle") and are filled again
const pool = new BufferPool();
const options: StreamOptions = {
  size: d.size,
  globalCaptionProb: d.globalCaptionProb,
  ...(d.regions ? { regions: d.regions } : {}),
  ...(d.forcing ? { forcing: d.forcing } : {}),
  resizes: d.resizes,
  pool,
};
const stream = streamOf(d);

/** The samples and what to say of them at the end (for shards, images that did not decode too). */
function streamOf(d: SampleWorkerData): { source: SampleSource; summary: () => { summary: string; badImages: number } } {
  if ('synth' in d.data) {
    const source = synthSampleSource(d.data.synth, d.seed, d.skip, options);
    return { source, summary: () => ({ summary: source.summary(), badImages: 0 }) };
  }
  const dataset = new ShardDataset({ images: d.data.images, annotations: d.data.annotations, seed: d.seed, shuffleBuffer: d.shuffleBuffer, resample: true });
  const source = sampleSource(dataset, d.seed, d.skip, { ...options, onBadImage: (key, message) => port.postMessage({ type: 'skipped', key, message } satisfies WorkerMessage) });
  return { source, summary: () => ({ summary: dataset.summary(), badImages: source.badImages }) };
}
let credit = d.ahead;
let producing = false;

async function produce(): Promise<void> {
  if (producing) return;
  producing = true;
  try {
    while (credit > 0) {
      credit--;
      const sample = await stream.source.next();
      const buffers = [sample.pixels, sample.gt, ...(sample.resized?.values() ?? [])].map((a) => a.buffer as ArrayBuffer);
      port.postMessage({ type: 'sample', sample } satisfies WorkerMessage, buffers);
    }
  } catch (e) {
    const user = e instanceof Error && e.name === 'UserError';
    port.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e), user } satisfies WorkerMessage);
  } finally {
    producing = false;
  }
}

port.on('message', (m: { type: 'more' } | { type: 'summary' } | { type: 'recycle'; arrays: Float32Array[] }) => {
  if (m.type === 'recycle') pool.give(...m.arrays);
  else if (m.type === 'more') {
    credit++;
    void produce();
  } else {
    port.postMessage({ type: 'summary', ...stream.summary() } satisfies WorkerMessage);
  }
});
void produce();
