/**
 * A bounded work queue in front of the encoder: at most `concurrency` jobs run, at most
 * `maxWaiting` wait; beyond that `run` refuses at once (the server answers 503 with
 * Retry-After). A waiting job whose signal aborts (its client went away) leaves the queue and
 * frees its place; a running one finishes, its result unused.
 */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(readonly retryAfterSeconds: number) {
    super(`the work queue is full; retry in ${retryAfterSeconds} s`);
  }
}

export class AbortedError extends Error {
  override readonly name = 'AbortedError';
  constructor() {
    super('the client went away before its turn');
  }
}

export class WorkQueue {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** mean run time of recent jobs (exponential average), for Retry-After */
  private meanMs = 1000;

  constructor(readonly concurrency: number, readonly maxWaiting: number) {
    if (!(concurrency >= 1) || !(maxWaiting >= 0)) throw new RangeError(`concurrency must be >= 1 and maxWaiting >= 0, got ${concurrency}, ${maxWaiting}`);
  }

  get depth(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.active;
  }

  /** Seconds until a place is likely free: the queue ahead drained at the recent pace. */
  retryAfter(): number {
    return Math.max(1, Math.ceil(((this.waiting.length + this.active) * this.meanMs) / this.concurrency / 1000));
  }

  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw new AbortedError();
    if (this.active >= this.concurrency) {
      if (this.waiting.length >= this.maxWaiting) throw new QueueFullError(this.retryAfter());
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new AbortedError());
        };
        const waiter = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.waiting.push(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.active++;
    }
    // the place was handed over (or taken) with `active` already counted
    const t0 = performance.now();
    try {
      return await job();
    } finally {
      this.meanMs = 0.8 * this.meanMs + 0.2 * (performance.now() - t0);
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
