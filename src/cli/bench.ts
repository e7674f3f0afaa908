/**
 * `ps3 bench`: the encoder benchmark of a ViT-B/14-sized PS3 with random weights — one look at
 * 1512, all looks at 1512, one look at 3780 — as a table and as JSON.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine, tf } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { randomModel } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import type { LookCount } from '../model/selection.js';
import { benchEncode, matmulGflops, type EncodeBench } from '../eval/bench.js';
import { releaseTrunk, resolveTrunkEngine, trunkRunner, useTrunkEngine } from '../engine/trunkEngine.js';
import { SAMPLE_IMAGE } from './demo.js';
import { inputImage, outputFile } from './inputs.js';

export interface BenchOptions {
  backend?: string;
  trunk?: string;
  image?: string;
  out: string;
  runs?: string;
}

const DEFAULT_RUNS = 'b14-1.5k:1,b14-1.5k:all,b14-4k:1';

function parseRuns(spec: string): Array<{ preset: string; looks: LookCount }> {
  return spec.split(',').map((part) => {
    const [preset, looks] = part.split(':');
    if (!preset || looks === undefined) throw new UserError(`--runs: "${part}" is not PRESET:LOOKS`);
    const n = looks === 'all' ? 'all' : Number(looks);
    if (n !== 'all' && (!Number.isInteger(n) || n < 1)) throw new UserError(`--runs: looks "${looks}" must be a positive integer or "all"`);
    return { preset, looks: n };
  });
}

function row(cells: Array<string | number>): string {
  return cells.map((c, i) => (typeof c === 'number' ? c.toFixed(c >= 100 ? 0 : 1) : c).padStart(i === 0 ? 10 : 9)).join(' ');
}

export async function benchCommand(options: BenchOptions): Promise<number> {
  // everything checked before the first benchmark: the report is written after all of them
  const runs = parseRuns(options.runs ?? DEFAULT_RUNS);
  for (const run of runs) presetConfig(run.preset);
  outputFile('--out', options.out);
  const image = await inputImage('--image', options.image ?? SAMPLE_IMAGE);
  const engine = resolveTrunkEngine(options.trunk);
  const backend = await initEngine(options);
  useTrunkEngine(engine); // the selector's convnet and any pass that names no engine follow --trunk
  process.stdout.write(`backend ${backend}; trunk ${engine}; image ${image}; random weights\n`);
  const baseline = await matmulGflops();
  process.stdout.write(`baseline: plain ${backend} matmul 2560x768x3072 runs at ${baseline.toFixed(1)} GFLOP/s\n\n`);
  process.stdout.write(`${row(['preset', 'res', 'looks', 'tokens', 'decode ms', 'lowres ms', 'select ms', 'highres ms', 'total ms', 'GFLOP/s', 'vs mm', 'rss MB'])}\n`);
  const results: EncodeBench[] = [];
  for (const run of runs) {
    const model = randomModel(presetConfig(run.preset), 0);
    const trunk = await trunkRunner(engine, model.weights, model.config.vision.trunk);
    if (trunk) {
      // an engine's one-off set-up (building ONNX sessions) happens on an untimed one-token run
      const one = tf.zeros([1, 1, model.config.vision.trunk.width]);
      tf.dispose([one, ...(await trunk(one, {})).hiddenStates]);
    }
    const r = await benchEncode(model, run.preset, image, run.looks, trunk);
    await releaseTrunk(engine, model.weights);
    model.weights.dispose();
    results.push(r);
    process.stdout.write(`${row([r.preset, r.resolution, String(r.looks), r.tokens, r.ms_decode, r.ms_lowres, r.ms_select, r.ms_highres, r.ms_total, r.gflops.total, r.gflops.total / baseline, r.rss_peak_mb])}\n`);
  }
  const report = { backend, trunk: engine, image, baseline_matmul_gflops: baseline, runs: results };
  fs.mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
  fs.writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nper-look ms: ${results.map((r) => `${r.preset}@${r.looks}: ${r.ms_looks.map((m) => m.toFixed(0)).join(', ')}`).join('; ')}\n`);
  process.stdout.write(`wrote ${options.out}\n`);
  return 0;
}
