/**
 * A `SampleSource` whose samples are prepared in a worker thread, a few ahead of the trainer.
 */
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';
import type { SampleWorkerData, WorkerMessage } from './sampleWorker.js';
import type { SampleSource, TrainSample } from './batch.js';

export class WorkerSampleSource implements SampleSource {
  private readonly worker: Worker;
  private readonly ready: TrainSample[] = [];
  private readonly waiting: Array<{ resolve: (s: TrainSample) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;
  private summaryWaiter: ((s: { summary: string; badImages: number }) => void) | undefined;

  constructor(data: SampleWorkerData, onSkipped: (key: string, message: string) => void) {
    this.worker = new Worker(new URL('./sampleWorker.js', import.meta.url), { workerData: data });
    this.worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'sample') {
        const w = this.waiting.shift();
        if (w) w.resolve(m.sample);
        else this.ready.push(m.sample);
      } else if (m.type === 'skipped') onSkipped(m.key, m.message);
      else if (m.type === 'summary') this.summaryWaiter?.(m);
      else this.fail(m.user ? new UserError(m.message) : new Error(`sample worker: ${m.message}`));
    });
    this.worker.on('error', (e) => this.fail(e));
  }

  private fail(e: Error): void {
    this.failure = e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  next(): Promise<TrainSample> {
    if (this.failure) return Promise.reject(this.failure);
    // each sample taken lets the worker prepare one more
    this.worker.postMessage({ type: 'more' });
    const s = this.ready.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Send used samples' arrays back to the worker, which fills them again (fresh big arrays are slow to fault in). */
  recycle(samples: readonly TrainSample[]): void {
    const arrays = samples.flatMap((s) => [s.pixels, s.gt, ...(s.resized?.values() ?? [])]);
    this.worker.postMessage({ type: 'recycle', arrays }, arrays.map((a) => a.buffer as ArrayBuffer));
  }

  summary(): Promise<{ summary: string; badImages: number }> {
    return new Promise((resolve) => {
      this.summaryWaiter = resolve;
      this.worker.postMessage({ type: 'summary' });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
