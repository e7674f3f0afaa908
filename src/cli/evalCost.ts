/**
 * `ps3 eval cost (--model DIR | --preset NAME) [--resolutions 756,1512,3780,7560] [--looks N]
 * [--methods ps3,lowres,anyres,s2,pretrain] [--repeats N] [--out DIR]`: encode time, tokens and
 * analytic GFLOPs against resolution for PS3, low-res, AnyRes and S², and one PS3 pre-training
 * step per resolution (src/eval/cost.ts says how); cost.json and three PNG plots in --out.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { readConfigFile } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { configAtResolution, COST_METHODS, costReport, formatCostTable, writeCostPlots, type CostMethod } from '../eval/cost.js';
import { intOption, listOption, outputFolder, resolveModelSpec } from './inputs.js';

export interface EvalCostCliOptions {
  backend?: string;
  model?: string;
  preset?: string;
  resolutions: string;
  looks: string;
  methods: string;
  repeats: string;
  timeout: string;
  out: string;
  inProcess?: boolean;
}

export async function evalCostCommand(o: EvalCostCliOptions): Promise<number> {
  if (o.model && o.preset) throw new UserError('give --model DIR or --preset NAME, not both');
  if (!o.model && !o.preset) throw new UserError('--model DIR or --preset NAME is required');
  // only the shapes matter: a model folder's config.json, weights not read
  const config = o.model ? readConfigFile(path.join((await resolveModelSpec(o.model)).folder, 'config.json')) : presetConfig(o.preset!);
  const resolutions = listOption('resolutions', o.resolutions ?? '756,1512,3780,7560', (r) => intOption('resolutions', r, { min: 1 })!);
  for (const r of resolutions) configAtResolution(config, r);
  const methods = listOption('methods', o.methods ?? COST_METHODS.join(','), (m) => m) as CostMethod[];
  for (const m of methods) if (!(COST_METHODS as readonly string[]).includes(m)) throw new UserError(`--methods must be among ${COST_METHODS.join(', ')}, got "${m}"`);
  const looks = intOption('looks', o.looks, { min: 1 }) ?? 1;
  const repeats = intOption('repeats', o.repeats, { min: 1 }) ?? 1;
  const timeoutS = intOption('timeout', o.timeout, { min: 1 }) ?? 900;
  outputFolder('--out', o.out);
  const name = o.model ? (fs.existsSync(o.model) ? path.basename(path.resolve(o.model)) : o.model) : o.preset!;
  process.stderr.write(`eval cost: ${name}, resolutions ${resolutions.join(', ')}, methods ${methods.join(', ')}; each in a fresh process\n`);
  const report = await costReport({
    config, model: name, resolutions, looks, methods, repeats, isolate: !o.inProcess, timeoutS, ...(o.backend ? { backend: o.backend } : {}),
    onRow: (r, done, total) => process.stderr.write(`[${done}/${total}] ${r.resolution} ${r.method}: ${r.status}${r.ms !== null ? ` ${r.ms.toFixed(0)} ms` : ''}, ${r.tokens} tokens${r.error ? ` (${r.error})` : ''}\n`),
  });
  process.stdout.write(`${formatCostTable(report)}\n`);
  fs.mkdirSync(o.out, { recursive: true });
  const json = path.join(o.out, 'cost.json');
  fs.writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  const plots = await writeCostPlots(report, o.out);
  process.stderr.write(`wrote ${json}, ${plots.map((p) => path.basename(p)).join(', ')}\n`);
  return 0;
}
