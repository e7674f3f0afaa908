/**
 * The processor on two threads: squashing a 4K image (PIL's two passes and the normalisation) is
 * the longest single-threaded stage of an encode, while the engine's passes use every core. With
 * a second core, a worker decodes the same bytes and writes the bottom half of the output rows
 * into shared memory while the main thread writes the top half: the same values, about half the
 * wall time. The worker starts on first use (or `warmSquashThread`) and does not keep the process
 * alive while idle.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';
import type { SquashJob, SquashReply } from './squashWorker.js';

/** Below this many output pixels one thread is as fast (a job's hand-over costs a few ms). */
export const SQUASH_THREAD_MIN_PIXELS = 1024 * 1024;

interface Pending {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

class SquashThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  broken = false;

  constructor() {
    this.worker = new Worker(new URL('./squashWorker.js', import.meta.url));
    this.worker.on('message', (m: SquashReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.ok) p.resolve();
      else p.reject(m.user ? new UserError(m.message) : new Error(`squash worker: ${m.message}`));
    });
    const fail = (e: Error): void => {
      this.broken = true;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`squash worker exited (code ${code})`)));
    // after the listeners, which hold the worker's port: idle, it must not keep the process alive
    this.worker.unref();
  }

  run(job: Omit<SquashJob, 'id'>): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ ...job, id } satisfies SquashJob);
    });
  }
}

let thread: SquashThread | null = null;

/** The worker, started if needed; null on a single core. */
export function squashThread(): { run(job: Omit<SquashJob, 'id'>): Promise<void> } | null {
  if (os.availableParallelism() < 2) return null;
  if (!thread || thread.broken) thread = new SquashThread();
  return thread;
}

/** Start the worker now (a server's or benchmark's set-up), so the first image does not wait for it. */
export function warmSquashThread(): void {
  squashThread();
}
