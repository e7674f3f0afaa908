/**
 * `ps3 queue add <images|dir|list.txt>... --redis URL --model DIR --out DIR [--looks N]` and
 * `ps3 queue status --redis URL [--json]`: a batch encode spread over any number of
 * `ps3 worker`s on any number of machines, on a Redis-backed job queue.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { readConfigFile } from '../model/load.js';
import { addImages, queueStatus } from '../serve/batchQueue.js';
import { redisConnection } from '../serve/batchJobs.js';
import { listImages, positiveInt } from './inputs.js';
import { progressBar } from './progress.js';

export interface QueueAddOptions {
  redis: string;
  queue: string;
  model: string;
  out: string;
  looks?: string;
  tokens?: string;
}

/** Image files from files, folders (not recursive) and lists (`.txt`, one path a line, relative to the list). */
function expandInputs(inputs: readonly string[]): string[] {
  const files: string[] = [];
  for (const input of inputs) {
    if (input.toLowerCase().endsWith('.txt') && fs.existsSync(input) && fs.statSync(input).isFile()) {
      const base = path.dirname(input);
      const lines = fs.readFileSync(input, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
      if (lines.length === 0) throw new UserError(`${input}: the list names no images`);
      files.push(...lines.map((l) => path.resolve(base, l)));
    } else {
      files.push(...listImages(input));
    }
  }
  return files;
}

export async function queueAddCommand(inputs: string[], o: QueueAddOptions): Promise<number> {
  redisConnection(o.redis, true);
  const looks = positiveInt('looks', o.looks);
  const tokens = positiveInt('tokens', o.tokens);
  if (looks !== undefined && tokens !== undefined) throw new UserError('give --looks N or --tokens N, not both');
  readConfigFile(path.join(o.model, 'config.json'));
  if (!fs.existsSync(path.join(o.model, 'model.safetensors'))) throw new UserError(`${o.model}: no model.safetensors in this folder`);
  const files = expandInputs(inputs);
  fs.mkdirSync(o.out, { recursive: true });
  const bar = files.length > 1 ? progressBar(files.length, 'hash') : undefined;
  const r = await addImages(files, {
    redis: o.redis,
    queue: o.queue,
    model: o.model,
    out: o.out,
    ...(looks !== undefined ? { looks } : {}),
    ...(tokens !== undefined ? { tokens } : {}),
    onProgress: (done) => bar?.update(done),
  });
  bar?.stop();
  for (const u of r.unreadable) process.stderr.write(`ps3: skipped ${u}\n`);
  process.stdout.write(`queued ${r.queued} job(s) on "${o.queue}" for ${files.length} image(s)${r.duplicates ? `; ${r.duplicates} duplicate(s) by content` : ''}${r.unreadable.length ? `; ${r.unreadable.length} unreadable` : ''}\n`);
  return r.unreadable.length ? 2 : 0;
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export async function queueStatusCommand(o: { redis: string; queue: string; json?: boolean }): Promise<number> {
  redisConnection(o.redis, true);
  const s = await queueStatus(o.redis, o.queue);
  if (o.json) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return 0;
  }
  process.stdout.write(`done ${s.done}  failed ${s.failed}  waiting ${s.waiting}  active ${s.active}  delayed ${s.delayed}  workers ${s.workers}\n`);
  process.stdout.write(`rate ${s.rate.toFixed(2)} images/s  ETA ${s.eta === null ? '-' : clock(s.eta)}\n`);
  for (const f of s.failures) process.stdout.write(`failed ${f.image}: ${f.reason}\n`);
  return 0;
}
