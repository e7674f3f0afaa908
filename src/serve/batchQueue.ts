/**
 * The producer's side of a batch encode: queue images (one job per distinct content) and read
 * the queue's state (done, failed and why, waiting, active, rate, ETA).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { UserError } from '../errors.js';
import { EncodeJob, JOB_OPTIONS, jobId, redisConnection, sha256 } from './batchJobs.js';

export interface AddOptions {
  readonly redis: string;
  readonly queue: string;
  readonly model: string;
  readonly out: string;
  readonly looks?: number;
  readonly tokens?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface AddResult {
  readonly queued: number;
  /** images with the same bytes as an earlier one in the list */
  readonly duplicates: number;
  /** files that could not be read, with the reason */
  readonly unreadable: string[];
}

function queueOf(redis: string, name: string, failFast: boolean): Queue {
  return new Queue(name, { connection: redisConnection(redis, failFast), defaultJobOptions: JOB_OPTIONS });
}

/** Run `fn` on the queue, turning "Redis is not there" into one line. */
async function withQueue<T>(redis: string, name: string, fn: (q: Queue) => Promise<T>): Promise<T> {
  const q = queueOf(redis, name, true);
  q.on('error', () => undefined);
  try {
    await q.waitUntilReady();
    return await fn(q);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || /Connection is closed|connect/i.test((e as Error).message)) {
      throw new UserError(`cannot reach Redis at ${redis} (${code ?? (e as Error).message})`);
    }
    throw e;
  } finally {
    await q.close().catch(() => undefined);
  }
}

export async function addImages(files: readonly string[], o: AddOptions): Promise<AddResult> {
  const seen = new Set<string>();
  const jobs: Array<{ name: string; data: EncodeJob; opts: { jobId: string } }> = [];
  const unreadable: string[] = [];
  let duplicates = 0;
  for (const [i, file] of files.entries()) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      unreadable.push(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      continue;
    }
    const data: EncodeJob = {
      image: path.resolve(file),
      hash: sha256(bytes),
      model: path.resolve(o.model),
      out: path.resolve(o.out),
      ...(o.looks !== undefined ? { looks: o.looks } : {}),
      ...(o.tokens !== undefined ? { tokens: o.tokens } : {}),
    };
    const id = jobId(data);
    if (seen.has(id)) duplicates++;
    else {
      seen.add(id);
      jobs.push({ name: 'encode', data, opts: { jobId: id } });
    }
    o.onProgress?.(i + 1, files.length);
  }
  await withQueue(o.redis, o.queue, async (q) => {
    for (let i = 0; i < jobs.length; i += 500) await q.addBulk(jobs.slice(i, i + 500));
  });
  return { queued: jobs.length, duplicates, unreadable };
}

export interface QueueStatus {
  readonly done: number;
  readonly failed: number;
  readonly waiting: number;
  readonly active: number;
  /** waiting out a back-off before a retry */
  readonly delayed: number;
  /** workers connected now */
  readonly workers: number;
  /** images per second over the recent completions (up to the last 200, within 10 minutes) */
  readonly rate: number;
  /** seconds until the queue is empty at that rate; null when nothing is left or the rate is unknown */
  readonly eta: number | null;
  /** the most recent failures: image and reason */
  readonly failures: Array<{ image: string; reason: string; attempts: number }>;
}

export async function queueStatus(redis: string, name: string): Promise<QueueStatus> {
  return withQueue(redis, name, async (q) => {
    const c = await q.getJobCounts('completed', 'failed', 'waiting', 'prioritized', 'active', 'delayed');
    const workers = (await q.getWorkers()).length;
    const now = Date.now();
    const recent = (await q.getJobs(['completed'], 0, 199))
      .map((j) => j.finishedOn ?? 0)
      .filter((t) => t > now - 600_000)
      .sort((a, b) => a - b);
    const rate = recent.length >= 2 ? (recent.length - 1) / Math.max(1e-3, (recent[recent.length - 1]! - recent[0]!) / 1000) : 0;
    const left = (c['waiting'] ?? 0) + (c['prioritized'] ?? 0) + (c['active'] ?? 0) + (c['delayed'] ?? 0);
    const failures = (await q.getJobs(['failed'], 0, 19)).map((j) => ({ image: String((j.data as Partial<EncodeJob>).image ?? j.id), reason: j.failedReason, attempts: j.attemptsMade }));
    return {
      done: c['completed'] ?? 0,
      failed: c['failed'] ?? 0,
      waiting: (c['waiting'] ?? 0) + (c['prioritized'] ?? 0),
      active: c['active'] ?? 0,
      delayed: c['delayed'] ?? 0,
      workers,
      rate,
      eta: left > 0 && rate > 0 ? left / rate : null,
      failures,
    };
  });
}

/** Remove a queue and all its jobs (for benchmarks' throw-away queues). */
export async function removeQueue(redis: string, name: string): Promise<void> {
  await withQueue(redis, name, (q) => q.obliterate({ force: true }));
}
