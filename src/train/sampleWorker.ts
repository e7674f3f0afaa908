/**
 * Worker thread that prepares training samples (decode, random resized crop, PIL resize,
 * normalise, box map, the encoder's resizes) while the main thread trains: on 2 cores the data work then overlaps the
 * model's. It runs exactly the stream `sampleSource` would run in the main thread, so the
 * samples and their order are unchanged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShardDataset } from '../io/shards.js';
import { BufferPool } from '../tensor/bufferPool.js';
import type { ForcingCapacity } from '../model/selection.js';
import { sampleSource } from './sampleStream.js';
import type { TrainSample } from './batch.js';

export interface SampleWorkerData {
  readonly images: string;
  readonly annotations: string;
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
const dataset = new ShardDataset({ images: d.images, annotations: d.annotations, seed: d.seed, shuffleBuffer: d.shuffleBuffer, resample: true });
const source = sampleSource(dataset, d.seed, d.skip, {
  size: d.size,
  globalCaptionProb: d.globalCaptionProb,
  ...(d.regions ? { regions: d.regions } : {}),
  ...(d.forcing ? { forcing: d.forcing } : {}),
  onBadImage: (key, message) => port.postMessage({ type: 'skipped', key, message } satisfies WorkerMessage),
  resizes: d.resizes,
  pool,
});
let credit = d.ahead;
let producing = false;

async function produce(): Promise<void> {
  if (producing) return;
  producing = true;
  try {
    while (credit > 0) {
      credit--;
      const sample = await source.next();
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
    port.postMessage({ type: 'summary', summary: dataset.summary(), badImages: source.badImages } satisfies WorkerMessage);
  }
});
void produce();
