/**
 * VILA-HD training benchmark: the same short `train-mllm` run (a fresh LM on the token cache of a
 * few scenes) with each number of threads, each choice weight and each number of tuned PS3 blocks
 * in turn, repeated, in one process; per combination the median samples/s over the timed steps
 * (the first step of each run warms up and is not counted) and its ratio to the first one's.
 * The caches (one per number of tuned blocks) are made before any run, and not timed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EncodeMethod } from '../model/baselines.js';
import { trainVilaHd } from '../mllm/train.js';
import { median } from './qa/evaluate.js';

export interface TrainMllmBenchOptions {
  readonly ps3: string;
  readonly method: EncodeMethod;
  readonly preset: string;
  readonly threads: readonly number[];
  /** `--choice-weight` of each run (default [0]) */
  readonly choiceWeights?: readonly number[];
  /** `--tune-trunk` of each run, 0 for a frozen PS3 (default [0]); ps3 and lowres */
  readonly tuneTrunks?: readonly number[];
  readonly steps: number;
  readonly batch: number;
  readonly images: number;
  readonly repeats: number;
  /** after each run: which one, of how many */
  readonly onRun?: (done: number, total: number) => void;
}

export interface TrainMllmBenchRow {
  readonly threads: number;
  readonly choice_weight: number;
  /** PS3's last blocks trained with the LM (0: PS3 frozen) */
  readonly tune_trunk: number;
  /** median over the repeats of each run's samples/s (its timed steps' samples over their seconds) */
  readonly samples_per_s: number;
  readonly runs_samples_per_s: number[];
  /** process CPU time (every thread) per sample, median over the repeats */
  readonly cpu_ms_per_sample: number;
  /** the first run's timed steps' mean choice loss (null at choice weight 0): the term was computed */
  readonly choice_loss: number | null;
  /** samples/s over the first row's */
  readonly speedup: number;
}

export interface TrainMllmBench {
  readonly method: EncodeMethod;
  readonly preset: string;
  readonly batch: number;
  readonly steps: number;
  readonly images: number;
  readonly repeats: number;
  readonly cores: number;
  readonly rows: TrainMllmBenchRow[];
}

/** One timed run: its samples/s, CPU time a sample, and mean choice loss (null without the term). */
interface RunResult {
  readonly samplesPerS: number;
  readonly cpuMsPerSample: number;
  readonly choiceLoss: number | null;
}

/** repeats >= 1, so never empty */
const middle = (xs: readonly number[]): number => median(xs)!;

export async function benchTrainMllm(o: TrainMllmBenchOptions): Promise<TrainMllmBench> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-bench-train-mllm-'));
  try {
    const run = async (threads: number, choiceWeight: number, tuneTrunk: number, steps: number, name: string): Promise<RunResult> => {
      const seconds: number[] = [];
      const choice: number[] = [];
      let cpu = process.cpuUsage();
      await trainVilaHd(
        {
          ps3: o.ps3, out: path.join(tmp, name), method: o.method, preset: o.preset, steps, batch: o.batch, lr: 1e-3, warmup: 1, clip: 1, seed: 0, dataSeed: 0,
          images: o.images, looks: 1, selectionWeight: 1, saveEvery: steps, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'), threads, choiceWeight,
          ...(tuneTrunk > 0 ? { tuneTrunk } : {}),
        },
        {
          onStep: (m) => {
            // the warm-up step's CPU time is left out with it
            if (m.step === 1) cpu = process.cpuUsage();
            else {
              seconds.push(m.seconds);
              if (m.choice_loss !== null) choice.push(m.choice_loss);
            }
          },
        },
      );
      const used = process.cpuUsage(cpu);
      const timed = seconds.reduce((a, s) => a + s, 0);
      const samples = seconds.length * o.batch;
      return { samplesPerS: samples / timed, cpuMsPerSample: (used.user + used.system) / 1000 / samples, choiceLoss: choice.length ? choice.reduce((a, x) => a + x, 0) / choice.length : null };
    };
    const tuned = o.tuneTrunks ?? [0];
    // each cache of the scenes, made once before the timed runs
    for (const k of new Set(tuned)) await run(1, 0, k, 1, `cache-${k}`);
    const pairs = o.threads.flatMap((threads) => (o.choiceWeights ?? [0]).flatMap((choiceWeight) => tuned.map((tuneTrunk) => ({ threads, choiceWeight, tuneTrunk, runs: [] as RunResult[] }))));
    let done = 0;
    for (let r = 0; r < o.repeats; r++) {
      for (const p of pairs) {
        p.runs.push(await run(p.threads, p.choiceWeight, p.tuneTrunk, o.steps + 1, `run-${r}-${p.threads}-${p.choiceWeight}-${p.tuneTrunk}`));
        o.onRun?.(++done, o.repeats * pairs.length);
      }
    }
    const rows = pairs.map((p) => ({
      threads: p.threads,
      choice_weight: p.choiceWeight,
      tune_trunk: p.tuneTrunk,
      samples_per_s: middle(p.runs.map((x) => x.samplesPerS)),
      runs_samples_per_s: p.runs.map((x) => x.samplesPerS),
      cpu_ms_per_sample: middle(p.runs.map((x) => x.cpuMsPerSample)),
      choice_loss: p.runs[0]!.choiceLoss,
    }));
    return {
      method: o.method, preset: o.preset, batch: o.batch, steps: o.steps, images: o.images, repeats: o.repeats, cores: os.availableParallelism(),
      rows: rows.map((row) => ({ ...row, speedup: row.samples_per_s / rows[0]!.samples_per_s })),
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
