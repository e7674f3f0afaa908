/**
 * `ps3 bench queue --redis URL --preset NAME [--workers 1,2,3] [--images N]`: images per second of
 * a batch encode with 1, 2, 3 ... `ps3 worker` processes on this machine. Each run gets a fresh
 * queue and output folder; N distinct images (the sample with a marker moved about) are queued
 * once the workers are up, and the clock stops when the last job is done.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { UserError } from '../errors.js';
import { initEngine } from '../tensor/engine.js';
import { writeSafetensors, type NamedArray } from '../io/safetensors.js';
import { randomModel } from '../model/load.js';
import { PRESETS, presetConfig } from '../model/presets.js';
import { addImages, queueStatus, removeQueue } from '../serve/batchQueue.js';
import { redisConnection } from '../serve/batchJobs.js';
import { positiveInt } from './inputs.js';
import { parseCounts } from './benchServe.js';

export interface BenchQueueOptions {
  backend?: string;
  redis: string;
  preset?: string;
  model?: string;
  image?: string;
  workers: string;
  images: string;
  trunk?: string;
  json?: boolean;
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../assets/sample-4k.jpg', import.meta.url));

/** `count` distinct JPEGs: the image with a small square at a different place in each. */
async function distinctImages(image: string, count: number, dir: string): Promise<string[]> {
  const meta = await sharp(image).metadata();
  const w = meta.width ?? 64;
  const h = meta.height ?? 64;
  const mark = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 255, g: 0, b: 255 } } }).png().toBuffer();
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const f = path.join(dir, `img${i}.jpg`);
    await sharp(image).composite([{ input: mark, left: (i * 97) % Math.max(1, w - 16), top: (i * 61) % Math.max(1, h - 16) }]).jpeg({ quality: 90 }).toFile(f);
    files.push(f);
  }
  return files;
}

async function writeRandomModel(preset: string, dir: string): Promise<void> {
  await initEngine();
  const model = randomModel(presetConfig(preset), 0);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) arrays.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  writeSafetensors(path.join(dir, 'model.safetensors'), arrays);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(PRESETS[preset]!.config));
  model.weights.dispose();
}

export async function benchQueueCommand(o: BenchQueueOptions): Promise<number> {
  redisConnection(o.redis, true);
  if (!o.preset === !o.model) throw new UserError('give --preset NAME (random weights) or --model DIR');
  const levels = parseCounts('workers', o.workers);
  const count = positiveInt('images', o.images)!;
  if (count < 1) throw new UserError('--images must be at least 1');
  const image = o.image ?? SAMPLE;
  if (!fs.existsSync(image)) throw new UserError(`${image}: no such file`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-bench-queue-'));
  try {
    let modelDir = o.model;
    if (!modelDir) {
      modelDir = path.join(tmp, 'model');
      fs.mkdirSync(modelDir);
      presetConfig(o.preset!);
      await writeRandomModel(o.preset!, modelDir);
    }
    const imagesDir = path.join(tmp, 'images');
    fs.mkdirSync(imagesDir);
    const files = await distinctImages(image, count, imagesDir);
    const results: Array<{ workers: number; images: number; seconds: number; imagesPerSecond: number }> = [];
    for (const n of levels) {
      const queue = `ps3-bench-${process.pid}-${n}`;
      const out = path.join(tmp, `out-${n}`);
      const workers: ChildProcess[] = [];
      try {
        for (let i = 0; i < n; i++) {
          const args = [MAIN, ...(o.backend ? ['--backend', o.backend] : []), 'worker', '--redis', o.redis, '--queue', queue, ...(o.trunk ? ['--trunk', o.trunk] : [])];
          workers.push(spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] }));
        }
        const ready = Date.now() + 120_000;
        while ((await queueStatus(o.redis, queue)).workers < n) {
          if (Date.now() > ready) throw new UserError(`the ${n} worker(s) did not connect to ${o.redis}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        const t0 = performance.now();
        await addImages(files, { redis: o.redis, queue, model: modelDir, out });
        for (;;) {
          const s = await queueStatus(o.redis, queue);
          if (s.failed > 0) throw new UserError(`bench queue: ${s.failures[0]?.image}: ${s.failures[0]?.reason}`);
          if (s.done === count) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const seconds = (performance.now() - t0) / 1000;
        results.push({ workers: n, images: count, seconds, imagesPerSecond: count / seconds });
        process.stdout.write(`workers ${n}  ${(count / seconds).toFixed(3)} images/s  (${count} images in ${seconds.toFixed(1)} s)\n`);
      } finally {
        for (const w of workers) w.kill('SIGTERM');
        await Promise.all(workers.map((w) => (w.exitCode !== null ? undefined : new Promise((r) => w.once('exit', r)))));
        await removeQueue(o.redis, queue);
      }
    }
    if (o.json) process.stdout.write(`${JSON.stringify({ preset: o.preset ?? null, model: o.model ?? null, image, trunk: o.trunk ?? 'tfjs', results })}\n`);
    return 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
