/**
 * `ps3 eval make-4k --out DIR --count N [--size 3780] [--seed S] [--per-image K] [--lowres 378]
 * [--force]`: writes a 4KPro-lite benchmark (src/eval/qa/make4k.ts) — PNG scenes, the object
 * list of each scene, questions.jsonl in the 4KPro-style format and manifest.json. Seeds below
 * 1,000,000 (the training range of `ps3 data synth`) are refused unless --force.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { makeBenchmark } from '../eval/qa/make4k.js';
import { progressBar } from './progress.js';
import { outputFolder } from './inputs.js';

export interface Make4kCliOptions {
  out: string;
  count: string;
  size: string;
  seed: string;
  perImage?: string;
  lowres?: string;
  force?: boolean;
}

function integer(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UserError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

export async function make4kCommand(o: Make4kCliOptions): Promise<number> {
  if (!o.out) throw new UserError('--out is required');
  outputFolder('--out', o.out);
  const count = integer('count', o.count, 100, 1, 1_000_000);
  const size = integer('size', o.size, 3780, 64, 16384);
  const seed = integer('seed', o.seed, HELDOUT_SEED_BASE, 0, 0xffffffff);
  const perImage = integer('per-image', o.perImage, 4, 1, 4);
  const lowres = integer('lowres', o.lowres, 378, 14, 16384);
  const file = path.join(o.out, 'questions.jsonl');
  if (fs.existsSync(file)) throw new UserError(`--out: ${file} already exists; choose a new folder or delete it`);
  process.stdout.write(`make-4k: ${count} questions over ${size} x ${size} scenes, seed ${seed}, up to ${perImage} per image -> ${o.out}\n`);
  const bar = progressBar(count, 'make-4k');
  const summary = await makeBenchmark({ out: o.out, count, size, seed, perImage, lowres, force: o.force ?? false }, (done) => bar.update(done));
  bar.stop();
  const cats = Object.entries(summary.perCategory).map(([c, n]) => `${c} ${n}`).join(', ');
  process.stdout.write(`wrote ${summary.questions} questions (${cats}) on ${summary.images} images in ${summary.seconds.toFixed(1)} s: ${summary.file}\n`);
  return 0;
}
