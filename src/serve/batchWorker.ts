/**
 * The worker's side of a batch encode: take jobs from the queue, encode each image with the
 * job's model (loaded once per worker), write `OUT/<sha256>.safetensors` atomically. A bad image
 * fails its job at once with the decoder's reason; anything else (a file system or Redis hiccup)
 * is retried with back-off. A worker killed mid-job holds its job's lock no longer: after the
 * lock expires another worker's stalled-job check puts the job back in the queue.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { isUserError } from '../errors.js';
import { EncodeJob, outputPath, redisConnection, sha256, writeAtomic, type EncodeJobResult } from './batchJobs.js';
import { Encoder } from './encoder.js';

export interface BatchWorkerOptions {
  readonly redis: string;
  readonly queue: string;
  /** jobs at once in this process */
  readonly concurrency: number;
  /** a job's lock lasts this long unless renewed; a dead worker's job is taken again after about this */
  readonly lockMs: number;
  readonly maxPixels: number;
  readonly backend?: string;
  readonly trunk?: string;
  readonly log: (line: string) => void;
}

export interface BatchWorker {
  /** finish the jobs in hand, take no more, release the models */
  close(): Promise<void>;
}

export async function startBatchWorker(o: BatchWorkerOptions): Promise<BatchWorker> {
  const encoders = new Map<string, Promise<Encoder>>();
  const encoderFor = (model: string): Promise<Encoder> => {
    let e = encoders.get(model);
    if (!e) {
      e = Encoder.load({ model }, { maxPixels: o.maxPixels, ...(o.backend ? { backend: o.backend } : {}), ...(o.trunk ? { trunk: o.trunk } : {}) });
      e.catch(() => encoders.delete(model));
      encoders.set(model, e);
    }
    return e;
  };

  const encodeJob = async (job: Job): Promise<EncodeJobResult> => {
    const parsed = EncodeJob.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job ${job.id}: bad job data (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    const d = parsed.data;
    const output = outputPath(d);
    // done before (by a worker presumed dead, or an earlier run): the rename made it whole
    if (fs.existsSync(output)) return { output, encoded: false, ms: 0 };
    let bytes: Buffer;
    try {
      bytes = await fs.promises.readFile(d.image);
    } catch (e) {
      throw new Error(`${d.image}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    if (sha256(bytes) !== d.hash) throw new UnrecoverableError(`${d.image}: changed since it was queued (its content hash differs)`);
    let encoder: Encoder;
    try {
      encoder = await encoderFor(d.model);
    } catch (e) {
      // a model folder this machine cannot read yet (a mount, a sync) may appear: retried
      throw new Error(`model ${d.model}: ${(e as Error).message}`);
    }
    try {
      const r = await encoder.encode(bytes, { ...(d.looks !== undefined ? { looks: d.looks } : {}), ...(d.tokens !== undefined ? { tokens: d.tokens } : {}), want: 'features', source: path.basename(d.image) });
      writeAtomic(output, r.features!);
      return { output, encoded: true, ms: r.ms };
    } catch (e) {
      if (isUserError(e)) throw new UnrecoverableError(e.message.split('\n')[0]!);
      throw e;
    }
  };

  const worker = new Worker(o.queue, encodeJob, {
    connection: redisConnection(o.redis, false),
    concurrency: o.concurrency,
    lockDuration: o.lockMs,
    stalledInterval: o.lockMs,
    // a job that stalls a third time (an image that kills its worker) fails instead of killing them all
    maxStalledCount: 2,
  });
  let lastError = 0;
  worker.on('error', (e) => {
    if (Date.now() - lastError < 5000) return;
    lastError = Date.now();
    o.log(`redis: ${e.message.split('\n')[0]} (retrying)`);
  });
  worker.on('active', (job) => o.log(`started ${(job.data as EncodeJob).image}`));
  worker.on('completed', (job, r: EncodeJobResult) => o.log(`done ${(job.data as EncodeJob).image} -> ${r.output}${r.encoded ? ` in ${Math.round(r.ms)} ms` : ' (there already)'}`));
  worker.on('failed', (job, e) => {
    if (!job) return;
    const image = (job.data as EncodeJob).image;
    const reason = e.message.split('\n')[0];
    if (e instanceof UnrecoverableError || e.name === 'UnrecoverableError') o.log(`failed ${image}: ${reason} (not retried)`);
    else if (job.attemptsMade >= (job.opts.attempts ?? 1)) o.log(`failed ${image}: ${reason} (after ${job.attemptsMade} attempts)`);
    else o.log(`will retry ${image}: ${reason} (attempt ${job.attemptsMade} of ${job.opts.attempts ?? 1})`);
  });
  worker.on('stalled', (jobId) => o.log(`job ${jobId} stalled (its worker stopped renewing its lock); it goes back to the queue`));
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      for (const e of encoders.values()) await (await e.catch(() => undefined))?.close();
    },
  };
}
