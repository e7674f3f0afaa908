/**
 * A batch encode on a Redis-backed job queue (BullMQ): what a job is, how it is named, where its
 * output goes. One job per distinct image (by content hash); the output is
 * `OUT/<sha256>.safetensors`, written to a temp file and renamed, so a job done twice (a worker
 * presumed dead that was only slow) leaves one complete, correct file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ConnectionOptions, JobsOptions } from 'bullmq';
import { UserError } from '../errors.js';

export const DEFAULT_QUEUE = 'ps3-encode';

/** A job's data, checked where a worker takes it (it may come from another version). */
export const EncodeJob = z.object({
  /** absolute path, the same on every machine (a shared or synced folder) */
  image: z.string().min(1),
  /** sha256 of the image's bytes when it was queued */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  model: z.string().min(1),
  out: z.string().min(1),
  looks: z.number().int().min(0).optional(),
  tokens: z.number().int().min(0).optional(),
});
export type EncodeJob = z.infer<typeof EncodeJob>;

export interface EncodeJobResult {
  readonly output: string;
  /** false when the output was there already (a job done twice) */
  readonly encoded: boolean;
  readonly ms: number;
}

/** Transient errors (a network file system hiccup, Redis away) are retried with exponential back-off. */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: false,
  removeOnFail: false,
};

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/** One id per (image content, settings): queueing the same image again adds nothing. */
export function jobId(job: EncodeJob): string {
  const settings = crypto.createHash('sha256').update(JSON.stringify([job.model, job.out, job.looks ?? null, job.tokens ?? null])).digest('hex');
  return `${job.hash}-${settings.slice(0, 16)}`;
}

export function outputPath(job: Pick<EncodeJob, 'out' | 'hash'>): string {
  return path.join(job.out, `${job.hash}.safetensors`);
}

/** Write `bytes` to `file` through a temp file in the same folder and a rename (atomic on POSIX). */
export function writeAtomic(file: string, bytes: Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(temp, bytes);
    fs.renameSync(temp, file);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw e;
  }
}

/**
 * ioredis options from a `redis://[user:password@]host[:port][/db]` (or `rediss://`) URL.
 * `failFast`: for one-shot commands, give up after a few tries instead of waiting for Redis.
 */
export function redisConnection(url: string, failFast: boolean): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(`--redis: not a URL: "${url}" (expected redis://host:port)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UserError(`--redis: expected a redis:// or rediss:// URL, got "${url}"`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new UserError(`--redis: bad database number in "${url}"`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // workers wait out a Redis restart; one-shot commands report it
    maxRetriesPerRequest: failFast ? 1 : null,
    ...(failFast ? { connectTimeout: 5000, retryStrategy: (times: number) => (times > 3 ? null : 200 * times), enableOfflineQueue: true } : {}),
  };
}
