/**
 * `ps3 worker --redis URL`: take encode jobs from the queue until SIGTERM or SIGINT, then finish
 * the jobs in hand and exit 0. One line per job on stdout.
 */
import { UserError } from '../errors.js';
import { DEFAULT_QUEUE, redisConnection } from '../serve/batchJobs.js';
import { startBatchWorker } from '../serve/batchWorker.js';
import { positiveInt } from './inputs.js';

export interface WorkerCliOptions {
  backend?: string;
  redis: string;
  queue: string;
  concurrency: string;
  lockMs: string;
  maxPixels: string;
  trunk?: string;
}

export async function workerCommand(o: WorkerCliOptions): Promise<number> {
  redisConnection(o.redis, false);
  const concurrency = positiveInt('concurrency', o.concurrency)!;
  const lockMs = positiveInt('lock-ms', o.lockMs)!;
  const maxPixels = positiveInt('max-pixels', o.maxPixels)!;
  if (concurrency < 1 || lockMs < 1000 || maxPixels < 1) throw new UserError('--concurrency and --max-pixels must be at least 1, --lock-ms at least 1000');
  const log = (line: string): boolean => process.stdout.write(`ps3 worker: ${line}\n`);
  const worker = await startBatchWorker({ redis: o.redis, queue: o.queue ?? DEFAULT_QUEUE, concurrency, lockMs, maxPixels, ...(o.backend ? { backend: o.backend } : {}), ...(o.trunk ? { trunk: o.trunk } : {}), log });
  log(`taking jobs from "${o.queue}" at ${o.redis}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    // kept while the worker finishes its job: a repeated SIGTERM must not cut the job short
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
  log(`${signal}: finishing the job in hand`);
  await worker.close();
  log('stopped');
  return 0;
}
