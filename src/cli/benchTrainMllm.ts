/**
 * `ps3 bench train-mllm`: samples/s of VILA-HD training steps with 1, 2, ... threads (and each
 * choice weight and number of tuned PS3 blocks asked for) in one process (src/eval/benchTrainMllm.ts), on the shipped PS3 by
 * default. One JSON line with `--json`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { ENCODE_METHODS, type EncodeMethod } from '../model/baselines.js';
import { benchTrainMllm } from '../eval/benchTrainMllm.js';
import { SHIPPED_MODEL } from './demo.js';
import { intOption } from './inputs.js';

export interface BenchTrainMllmOptions {
  backend?: string;
  ps3?: string;
  method: string;
  preset: string;
  threads: string;
  choiceWeights: string;
  tuneTrunk: string;
  steps: string;
  batch: string;
  images: string;
  repeats: string;
  json?: boolean;
}

export async function benchTrainMllmCommand(o: BenchTrainMllmOptions): Promise<number> {
  if (!(ENCODE_METHODS as readonly string[]).includes(o.method)) throw new UserError(`--method must be one of ${ENCODE_METHODS.join(', ')}, got "${o.method}"`);
  const ps3 = o.ps3 ?? SHIPPED_MODEL;
  if (!fs.existsSync(path.join(ps3, 'config.json'))) throw new UserError(`--ps3 ${ps3}: not a PS3 model folder (no config.json)`);
  const threads = o.threads.split(',').map((t) => intOption('threads', t.trim(), { min: 1 })!);
  const choiceWeights = o.choiceWeights.split(',').map((x) => {
    const v = Number(x.trim());
    if (x.trim() === '' || !Number.isFinite(v) || v < 0) throw new UserError(`--choice-weights takes non-negative numbers, got "${x}"`);
    return v;
  });
  const tuneTrunks = o.tuneTrunk.split(',').map((x) => intOption('tune-trunk', x.trim(), { min: 0 })!);
  if (o.method !== 'ps3' && o.method !== 'lowres' && tuneTrunks.some((k) => k > 0)) throw new UserError(`--tune-trunk tunes PS3's last blocks for --method ps3 or lowres (got --method ${o.method})`);
  const steps = intOption('steps', o.steps, { min: 1 })!;
  const batch = intOption('batch', o.batch, { min: 1 })!;
  const images = intOption('images', o.images, { min: 1 })!;
  const repeats = intOption('repeats', o.repeats, { min: 1 })!;
  const backend = await initEngine(o);
  const r = await benchTrainMllm({
    ps3, method: o.method as EncodeMethod, preset: o.preset, threads, choiceWeights, tuneTrunks, steps, batch, images, repeats,
    onRun: (done, total) => {
      if (!o.json) process.stderr.write(`run ${done}/${total} done\n`);
    },
  });
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ backend, ps3, ...r })}\n`);
    return 0;
  }
  process.stdout.write(`VILA-HD ${r.method} (${r.preset} LM), batch ${r.batch}, ${r.steps} timed step(s) a run, ${r.repeats} run(s) per count, ${r.cores} core(s):\n`);
  for (const row of r.rows) {
    process.stdout.write(`  ${row.threads} thread(s), choice weight ${row.choice_weight}, ${row.tune_trunk} tuned block(s): ${row.samples_per_s.toFixed(2)} samples/s (x${row.speedup.toFixed(2)}), CPU ${row.cpu_ms_per_sample.toFixed(0)} ms a sample\n`);
  }
  return 0;
}
