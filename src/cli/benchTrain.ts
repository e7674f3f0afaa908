/**
 * `ps3 bench train`: time N pre-training steps of a preset at its top scale, phase by phase
 * (see src/eval/benchTrain.ts), on `--data DIR` (shard sets from `ps3 data synth`) or on a few
 * synthetic scenes drawn for the run into a temporary folder; `--phases` for the step's profile,
 * `--loss-weights` as the train command takes them. One JSON line with `--json`.
 */
import { hugePagesRequested } from '../eval/bench.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { randomModel } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { writeSynthDataset } from '../data/synth.js';
import { synthVocabulary, writeWordTokenizer } from '../data/wordTokenizer.js';
import { benchTrain, type TrainBench } from '../eval/benchTrain.js';
import { intOption, positiveInt } from './inputs.js';
import { lossWeights } from './zodArgs.js';

export interface BenchTrainOptions {
  backend?: string;
  preset: string;
  data?: string;
  steps: string;
  batch: string;
  seed: string;
  lossWeights: string;
  phases?: boolean;
  threads: string;
  json?: boolean;
}

export async function benchTrainCommand(o: BenchTrainOptions): Promise<number> {
  const backend = await initEngine(o);
  const config = presetConfig(o.preset);
  const steps = positiveInt('steps', o.steps) ?? 0;
  const batch = positiveInt('batch', o.batch) ?? 0;
  const seed = positiveInt('seed', o.seed) ?? 0;
  if (steps < 1) throw new UserError('--steps must be at least 1');
  if (batch < 1) throw new UserError('--batch must be at least 1');
  const weights = lossWeights().safeParse(o.lossWeights);
  if (!weights.success) throw new UserError(weights.error.issues[0]!.message);
  const threadCounts = o.threads.split(',').map((t) => intOption('threads', t.trim(), { min: 1 })!);
  if (o.phases && threadCounts.some((t) => t > 1)) throw new UserError('--phases times each phase in one thread: drop --threads');
  if (o.data && !fs.existsSync(path.join(o.data, 'images'))) throw new UserError(`${o.data}: expected a data folder with images/ and annotations/ shard sets (e.g. from "ps3 data synth")`);
  const S = config.vision.scales[config.vision.scales.length - 1]!;
  const tmp = o.data ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-bench-train-'));
  try {
    let dir = o.data ?? tmp!;
    if (tmp) {
      // as many scenes as one batch: the stream loops over them, each sample re-cropped
      await writeSynthDataset({ out: tmp, count: batch, width: S, height: S, seed, perShard: batch, format: 'png' });
      await writeWordTokenizer(path.join(tmp, 'tokenizer'), synthVocabulary(), { contextLength: config.text.contextLength });
      dir = tmp;
    }
    const tokenizerDir = fs.existsSync(path.join(dir, 'tokenizer', 'tokenizer.json')) ? path.join(dir, 'tokenizer') : null;
    if (!tokenizerDir) throw new UserError(`${dir}: no tokenizer/tokenizer.json`);
    const tokenizer = await loadTokenizer(tokenizerDir, { contextLength: config.text.contextLength, clean: config.text.tokenizerClean, padId: config.text.padId });
    const runs: TrainBench[] = [];
    for (const threads of threadCounts) {
      // each count starts from the same weights and the same samples
      const model = randomModel(config, seed);
      if (!o.json && threadCounts.length > 1) process.stderr.write(`${threads} thread(s):\n`);
      runs.push(
        await benchTrain(model, { images: path.join(dir, 'images'), annotations: path.join(dir, 'annotations') }, tokenizer, {
          steps,
          batch,
          seed,
          threads,
          phases: o.phases ?? false,
          lossWeights: weights.data,
          onStep: (done) => {
            if (!o.json) process.stderr.write(`step ${done}${done === 0 ? ' (warm-up)' : ''} done\n`);
          },
        }),
      );
      model.weights.dispose();
    }
    // samples/s of each count against the first's, measured in this process one after the other
    const speedup = runs.map((r) => ({ threads: r.threads, samples_per_s: r.samples_per_s, speedup: r.samples_per_s / runs[0]!.samples_per_s }));
    const r = runs[0]!;
    const report = { preset: o.preset, backend, data: o.data ?? 'synthetic (made for this run)', huge_pages: hugePagesRequested(), ...r, ...(runs.length > 1 ? { by_threads: runs, speedup } : {}) };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    for (const run of runs) print(o.preset, run);
    if (runs.length > 1) process.stdout.write(`samples/s against ${r.threads} thread(s): ${speedup.map((x) => `${x.threads}: x${x.speedup.toFixed(2)}`).join(', ')}\n`);
    return 0;
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function print(preset: string, r: TrainBench): void {
  const p = r.ms_per_step;
  const f = (x: number): string => x.toFixed(0);
  const w = r.loss_weights;
  const how = r.mode === 'phases' ? 'phase by phase in one thread' : r.threads > 1 ? `data in the trainer's worker thread, the batch on ${r.threads} threads` : "data in the trainer's worker thread";
  const split =
    r.mode === 'phases'
      ? `data ${f(p.data)}, resizes ${f(p.resizes)}, forward ${f(p.forward)}, backward ${f(p.backward)}, optimizer ${f(p.optimizer)}`
      : `waiting for data ${f(p.data)}, gradient step ${f(p.backward)}, optimizer ${f(p.optimizer)}`;
  process.stdout.write(
    `${preset} at ${r.resolution}px, batch ${r.batch}, ${r.steps} timed step(s), loss weights ${w.contrastive},${w.priorBox},${w.posteriorBox}, ${how}: ${r.samples_per_s.toFixed(3)} samples/s (${r.samples_per_s_model_only.toFixed(3)} for the model's work alone), ${r.gflops.toFixed(1)} GFLOP/s, CPU ${f(r.cpu_ms_per_sample)} ms a sample\n` +
      `per step, ms: ${split}; peak RSS ${f(r.rss_peak_mb)} MB\n` +
      `CPU per step, ms: ${Object.entries(r.cpu_ms_per_step).map(([k, ms]) => `${k} ${f(ms)}`).join(', ')}\n`,
  );
}
