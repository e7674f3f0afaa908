/**
 * The training thread's side of a gradient worker (pre-training's and VILA-HD's): one reply
 * awaited at a time, of the type expected. A worker's `error` reply, its crash or its exit
 * rejects what is awaited and everything after; a user's mistake in a worker (a question longer
 * than the LM's context, say) arrives as a UserError.
 */
import { Worker, type Transferable, type WorkerOptions } from 'node:worker_threads';
import { isUserError, UserError } from '../errors.js';

export interface ErrorReply {
  readonly type: 'error';
  readonly message: string;
  readonly user: boolean;
}

/** What a worker posts when something throws. */
export function errorReply(e: unknown): ErrorReply {
  return { type: 'error', message: e instanceof Error ? e.message : String(e), user: isUserError(e) };
}

export class WorkerLink<Reply extends { readonly type: string }> {
  private readonly worker: Worker;
  private waiting: { type: string; resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  /** settles when the worker has posted `{ type: 'ready' }` */
  readonly ready: Promise<void>;

  constructor(url: URL, options: WorkerOptions) {
    this.worker = new Worker(url, options);
    this.ready = this.expect('ready').then(() => undefined);
    this.worker.on('message', (m: Reply | ErrorReply) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (m.type === 'error') {
        const e = m as ErrorReply;
        w?.reject(e.user ? new UserError(e.message) : new Error(`training thread: ${e.message}`));
      } else if (w && m.type === w.type) w.resolve(m as Reply);
      else w?.reject(new Error(`training thread: "${m.type}" where "${w.type}" was due`));
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`training thread exited (code ${code})`)));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiting?.reject(e);
    this.waiting = undefined;
  }

  /** The worker's next message, which must be of `type`. */
  expect<T extends Reply['type']>(type: T): Promise<Extract<Reply, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiting = { type, resolve: resolve as (r: Reply) => void, reject }));
  }

  post(message: unknown, transfer: readonly Transferable[] = []): void {
    this.worker.postMessage(message, [...transfer]);
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
