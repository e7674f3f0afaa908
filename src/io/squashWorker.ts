/**
 * The second thread of the processor (squashThread.ts): it decodes the same bytes the main thread
 * decodes and writes its share of the squashed, normalised rows into the shared output.
 */
import { parentPort } from 'node:worker_threads';
import { UserError } from '../errors.js';
import { decodeImage } from './image.js';
import { squashNormalise } from './pixels.js';

export interface SquashJob {
  readonly id: number;
  readonly bytes: Uint8Array;
  readonly name: string;
  readonly maxPixels?: number;
  readonly size: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** the [3, size, size] float32 output, shared with the main thread */
  readonly out: SharedArrayBuffer;
  /** output rows this thread writes */
  readonly rows: readonly [number, number];
}

export type SquashReply = { readonly id: number; readonly ok: true } | { readonly id: number; readonly ok: false; readonly message: string; readonly user: boolean };

const port = parentPort;
if (!port) throw new Error('squashWorker.js runs as a worker thread');
port.on('message', (job: SquashJob) => {
  void (async () => {
    try {
      const image = await decodeImage(job.bytes, { name: job.name, ...(job.maxPixels !== undefined ? { maxPixels: job.maxPixels } : {}) });
      squashNormalise(image, job.size, job.size, job.mean, job.std, new Float32Array(job.out), job.rows);
      port.postMessage({ id: job.id, ok: true } satisfies SquashReply);
    } catch (e) {
      port.postMessage({ id: job.id, ok: false, message: e instanceof Error ? e.message : String(e), user: e instanceof UserError } satisfies SquashReply);
    }
  })();
});
