/**
 * `ps3 bench train` end to end on the micro preset: as the trainer runs (data in its worker) and
 * phase by phase (`--phases`: every phase of a step timed, shares that add up to the whole step),
 * throughput, CPU time and a finite loss per step; `--loss-weights` as train takes them; bad
 * options are one-line user errors (exit 2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = path.join('dist', 'src', 'cli', 'main.js');

function ps3(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cli, 'bench', 'train', ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
}

test('bench train --phases times every phase of a step on synthetic data made for the run', () => {
  const r = ps3(['--preset', 'micro', '--steps', '1', '--batch', '2', '--phases', '--json']);
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout.trim()) as {
    preset: string; batch: number; steps: number; resolution: number; samples_per_s: number; samples_per_s_model_only: number; gflops: number; losses: number[];
    ms_per_step: Record<string, number>; share: Record<string, number>; mode: string; cpu_ms_per_step: Record<string, number>; cpu_ms_per_sample: number;
  };
  assert.equal(report.preset, 'micro');
  assert.equal(report.mode, 'phases');
  assert.deepEqual(Object.keys(report.cpu_ms_per_step).sort(), ['backward', 'data', 'forward', 'optimizer', 'resizes']);
  assert.ok(report.cpu_ms_per_sample > 0);
  assert.equal(report.batch, 2);
  assert.equal(report.steps, 1);
  assert.deepEqual(Object.keys(report.ms_per_step).sort(), ['backward', 'data', 'forward', 'optimizer', 'resizes']);
  for (const [phase, ms] of Object.entries(report.ms_per_step)) assert.ok(Number.isFinite(ms) && ms >= 0, `${phase}: ${ms}`);
  assert.ok(report.ms_per_step['forward']! > 0 && report.ms_per_step['data']! > 0);
  const shares = Object.values(report.share).reduce((a, c) => a + c, 0);
  assert.ok(Math.abs(shares - 1) < 1e-9, `shares add up to ${shares}`);
  const stepMs = Object.values(report.ms_per_step).reduce((a, c) => a + c, 0);
  assert.ok(Math.abs(report.samples_per_s - 2 / (stepMs / 1000)) < 1e-6 * report.samples_per_s);
  assert.ok(report.samples_per_s_model_only >= report.samples_per_s);
  assert.ok(report.gflops > 0);
  assert.equal(report.losses.length, 2); // the warm-up step and the timed one
  assert.ok(report.losses.every(Number.isFinite));
});

test('bench train runs as the trainer does by default (data in its worker), with the loss weights asked for', () => {
  const r = ps3(['--preset', 'micro', '--steps', '2', '--batch', '2', '--loss-weights', '0,1,2', '--json']);
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout.trim()) as {
    mode: string; loss_weights: Record<string, number>; samples_per_s: number; samples_per_s_model_only: number; cpu_ms_per_sample: number; losses: number[]; ms_per_step: Record<string, number>;
  };
  assert.equal(report.mode, 'pipelined');
  assert.deepEqual(report.loss_weights, { contrastive: 0, priorBox: 1, posteriorBox: 2 });
  // no separate forward pass and no resizes here: the worker makes them
  assert.equal(report.ms_per_step['forward'], 0);
  assert.equal(report.ms_per_step['resizes'], 0);
  assert.ok(report.ms_per_step['backward']! > 0);
  assert.ok(report.samples_per_s > 0 && report.samples_per_s <= report.samples_per_s_model_only);
  assert.ok(report.cpu_ms_per_sample > 0);
  assert.equal(report.losses.length, 3);
  assert.ok(report.losses.every(Number.isFinite));
});

test('bench train --threads 1,2 times each number of threads in turn and gives the speedup against the first', () => {
  const r = ps3(['--preset', 'micro', '--steps', '1', '--batch', '2', '--threads', '1,2', '--json']);
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout.trim()) as {
    threads: number; by_threads: Array<{ threads: number; samples_per_s: number; losses: number[] }>; speedup: Array<{ threads: number; samples_per_s: number; speedup: number }>;
  };
  assert.equal(report.threads, 1);
  assert.deepEqual(report.by_threads.map((b) => b.threads), [1, 2]);
  assert.deepEqual(report.speedup.map((x) => x.threads), [1, 2]);
  assert.equal(report.speedup[0]!.speedup, 1);
  const one = report.by_threads[0]!;
  const two = report.by_threads[1]!;
  assert.ok(Math.abs(report.speedup[1]!.speedup - two.samples_per_s / one.samples_per_s) < 1e-9);
  // the same weights and samples: the same first loss on either number of threads
  assert.ok(Math.abs(one.losses[0]! - two.losses[0]!) < 1e-3 * Math.abs(one.losses[0]!), `${one.losses[0]} vs ${two.losses[0]}`);
});

for (const [args, message] of [
  [['--preset', 'micro', '--loss-weights', '1,1'], /--loss-weights must be three non-negative numbers/],
  [['--preset', 'micro', '--steps', '0'], /--steps must be at least 1/],
  [['--preset', 'nope'], /nope/],
  [['--preset', 'micro', '--data', '/no/such/folder'], /\/no\/such\/folder: expected a data folder/],
  [['--preset', 'micro', '--threads', '1,0'], /--threads/],
  [['--preset', 'micro', '--threads', '2', '--phases'], /--phases times each phase in one thread: drop --threads/],
] as const) {
  test(`bench train ${args.join(' ')}: exit 2, one line`, () => {
    const r = ps3([...args]);
    assert.equal(r.status, 2, `exit ${r.status}\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, message);
  });
}
