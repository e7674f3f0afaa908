/**
 * `ps3 bench load --preset NAME [--dtype bf16|f16|f32] [--shards N] [--parts all|vision]
 * [--backend-of-load wasm|cpu] [--dir DIR] [--json]`: writes a random checkpoint of the preset's
 * shapes and loads it in a fresh process; reports the peak RSS against the float32 size.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';
import { PRESETS, presetConfig } from '../model/presets.js';
import { measureLoad, writeRandomCheckpoint, type CheckpointDtype } from '../eval/loadMemory.js';
import { positiveInt } from './inputs.js';

export interface BenchLoadOptions {
  preset?: string;
  dtype: string;
  shards: string;
  parts: string;
  backend?: string;
  dir?: string;
  json?: boolean;
}

export async function benchLoadCommand(o: BenchLoadOptions): Promise<number> {
  if (!o.preset) throw new UserError('bench load: --preset NAME is required');
  const config = presetConfig(o.preset);
  const dtype = o.dtype.toUpperCase();
  if (dtype !== 'BF16' && dtype !== 'F16' && dtype !== 'F32') throw new UserError(`--dtype must be bf16, f16 or f32, got "${o.dtype}"`);
  if (o.parts !== 'all' && o.parts !== 'vision') throw new UserError(`--parts must be all or vision, got "${o.parts}"`);
  const shards = positiveInt('shards', o.shards) ?? 1;
  if (shards < 1) throw new UserError('--shards must be at least 1');
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-bench-load-'));
  try {
    const t0 = performance.now();
    const written = writeRandomCheckpoint(dir, PRESETS[o.preset]!.config, config, { dtype: dtype as CheckpointDtype, shards });
    const writeS = (performance.now() - t0) / 1000;
    const m = await measureLoad(dir, { parts: o.parts, backend: o.backend ?? process.env['PS3_BACKEND'] ?? 'wasm' });
    const result = { preset: o.preset, dtype, shards: written.files.length, file_mb: written.bytes / 2 ** 20, write_s: writeS, ...m, over_float32_mb: m.rss_peak_mb - m.float32_mb };
    if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      process.stdout.write(
        `${o.preset} ${dtype} in ${result.shards} file(s), ${result.file_mb.toFixed(0)} MB on disk; loaded (${m.parts}, ${m.backend}) in ${(m.load_ms / 1000).toFixed(1)} s\n`
          + `float32 size ${m.float32_mb.toFixed(0)} MB; peak RSS ${m.rss_peak_mb.toFixed(0)} MB (engine alone ${m.rss_before_mb.toFixed(0)} MB): ${result.over_float32_mb.toFixed(0)} MB over the float32 size\n`,
      );
    }
  } finally {
    if (!o.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}
