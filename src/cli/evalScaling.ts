/**
 * `ps3 eval scaling BENCH --model VILA_DIR [--looks 1,2,4] [--tokens N] [--tops 1512,3780] --out DIR`:
 * VILA-HD's two scaling curves with the ps3 LM — test-time scaling (accuracy against looks at the
 * top scale) and resolution for free (accuracy against the top scale looked at, at a fixed token
 * budget) — as `DIR/scaling.json`, `DIR/test_time.png` and `DIR/resolution.png`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { loadBenchmark } from '../eval/qa/format.js';
import { baseBudgets } from '../model/selection.js';
import type { LookCount } from '../model/selection.js';
import { plotScaling, scalingCurves } from '../eval/qa/vila.js';
import { disposeVilaHd, loadVilaHd } from '../mllm/model.js';
import { isVilaFolder } from '../mllm/config.js';
import { benchmarkFile, positiveInt, warnOldGenerator } from './inputs.js';
import { progressBar } from './progress.js';

export interface EvalScalingCliOptions {
  backend?: string;
  model?: string;
  looks?: string;
  tokens?: string;
  tops?: string;
  limit?: string;
  out?: string;
}

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export async function evalScalingCommand(benchArg: string, o: EvalScalingCliOptions): Promise<number> {
  const bench = benchmarkFile(benchArg);
  if (!o.model) throw new UserError('--model DIR is required (a VILA-HD folder)');
  if (!isVilaFolder(o.model)) throw new UserError(`${o.model}: not a VILA-HD folder (config.json model_type is not "vila-hd")`);
  if (!o.out) throw new UserError('--out DIR is required');
  let items = loadBenchmark(bench);
  warnOldGenerator(bench);
  const limit = positiveInt('limit', o.limit);
  if (limit !== undefined && limit > 0) items = items.slice(0, limit);
  const looks: LookCount[] = list(o.looks ?? '1,2,3').map((l) => (l === 'all' ? 'all' : positiveInt('looks', l)!));
  await initEngine(o);
  const model = loadVilaHd(o.model, { methods: ['ps3'] });
  const scales = model.ps3.config.vision.scales;
  const tops = o.tops === undefined ? scales.slice(2) : list(o.tops).map((t) => positiveInt('tops', t)!);
  for (const t of tops) if (scales.indexOf(t) < 1) throw new UserError(`--tops: ${t} is not a high-res scale of the PS3 model (${scales.slice(1).join(', ')})`);
  const budget = positiveInt('tokens', o.tokens) ?? baseBudgets(model.ps3.config.vision).reduce((a, c) => a + c, 0);
  const runs = looks.length + tops.length;
  const bar = progressBar(runs * items.length, 'scaling', '{run}');
  const done = new Array<number>(runs).fill(0);
  let curves;
  try {
    curves = await scalingCurves(model, items, { looks, budget, tops }, {
      onProgress: (run, answered, _total, correct) => {
        done[run] = answered;
        const label = run < looks.length ? `${looks[run]} look(s)` : `top ${tops[run - looks.length]}`;
        bar.update(done.reduce((a, c) => a + c, 0), { run: `${label} acc ${((100 * correct) / answered).toFixed(1)}%` });
      },
    });
  } finally {
    bar.stop();
    disposeVilaHd(model);
  }
  fs.mkdirSync(o.out, { recursive: true });
  const chance = items.reduce((a, i) => a + 1 / i.options.length, 0) / items.length;
  fs.writeFileSync(path.join(o.out, 'scaling.json'), `${JSON.stringify({ benchmark: path.resolve(bench), model: path.resolve(o.model), chance, ...curves }, (_, v: unknown) => (v === Infinity ? 'all' : v), 2)}\n`);
  await plotScaling(curves, chance, { testTime: path.join(o.out, 'test_time.png'), resolution: path.join(o.out, 'resolution.png') });
  for (const p of curves.test_time) process.stdout.write(`looks ${p.x === Infinity ? 'all' : p.x}: accuracy ${p.accuracy === null ? '-' : (100 * p.accuracy).toFixed(1)}%, ${p.tokens} tokens\n`);
  for (const p of curves.resolution) process.stdout.write(`top scale ${p.x}: accuracy ${p.accuracy === null ? '-' : (100 * p.accuracy).toFixed(1)}%, ${p.tokens} tokens\n`);
  process.stderr.write(`wrote ${path.join(o.out, 'scaling.json')}, test_time.png, resolution.png\n`);
  return 0;
}
