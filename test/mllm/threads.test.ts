/**
 * train-mllm --threads: the batch split between this thread and workers gives the losses and
 * weights of the one-thread step (to float rounding), with PS3 frozen or its selection tuned, and a
 * threaded run stopped after a checkpoint resumes on its own curve exactly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { benchTrainMllm } from '../../src/eval/benchTrainMllm.js';
import { writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-threads-'));
const ps3 = path.join(tmp, 'ps3');
const options = (out: string, threads: number, extra: Partial<TrainVilaOptions> = {}): TrainVilaOptions => ({
  ps3, out, method: 'ps3', preset: 'micro', steps: 3, batch: 3, lr: 2e-3, warmup: 1, clip: 1, seed: 5, dataSeed: 29, images: 2,
  looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'), threads, ...extra,
});

function metrics(out: string): Array<{ step: number; loss: number; answer_loss: number; selection_loss: number | null }> {
  return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; loss: number; answer_loss: number; selection_loss: number | null });
}

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(a)), `${what}: ${a} vs ${b}`);
}

function sameRun(one: string, two: string): void {
  const [a, b] = [metrics(one), metrics(two)];
  assert.equal(a.length, b.length);
  a.forEach((m, i) => {
    close(m.loss, b[i]!.loss, `step ${m.step} loss`);
    close(m.answer_loss, b[i]!.answer_loss, `step ${m.step} answer loss`);
    if (m.selection_loss !== null) close(m.selection_loss, b[i]!.selection_loss!, `step ${m.step} selection loss`);
  });
  const [wa, wb] = [readSafetensors(path.join(one, 'checkpoint', 'model.safetensors')), readSafetensors(path.join(two, 'checkpoint', 'model.safetensors'))];
  for (const [k, x] of wa) {
    // the attention's key bias shifts every score of a query alike, which softmax cancels: its
    // gradient is rounding noise, which AdamW scales up to whole steps, so it is not compared
    const keyBias = (i: number): boolean => /\.attn\.qkv\.bias$/.test(k) && i >= x.data.length / 3 && i < (2 * x.data.length) / 3;
    x.data.forEach((v, i) => keyBias(i) || close(v, wb.get(k)!.data[i]!, k));
  }
}

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 4);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('two threads train as one does: ps3 (frozen and with its selection tuned) and lowres', async () => {
  for (const [name, extra] of [['frozen', {}], ['tuned', { tuneSelection: true, selectionLr: 1e-2 }], ['lowres', { method: 'lowres' }]] as const) {
    const one = path.join(tmp, `${name}-1`);
    const two = path.join(tmp, `${name}-2`);
    await trainVilaHd(options(one, 1, extra));
    await trainVilaHd(options(two, 2, extra));
    sameRun(one, two);
    const losses = metrics(two).map((m) => m.loss);
    assert.ok(losses.every(Number.isFinite), name);
  }
});

test('a threaded run stopped after a checkpoint resumes on its own curve', async () => {
  const full = path.join(tmp, 'full');
  await trainVilaHd(options(full, 2));
  const cut = path.join(tmp, 'cut');
  await assert.rejects(trainVilaHd(options(cut, 2), { onSave: (dir) => { if (metrics(path.dirname(dir)).length === 2) throw new Error('stop'); } }), /stop/);
  await trainVilaHd({ ...options(cut, 2), resume: true });
  assert.deepEqual(metrics(cut).map((m) => m.loss), metrics(full).map((m) => m.loss));
});

test('--threads must be a positive integer', async () => {
  for (const threads of [0, 1.5]) {
    await assert.rejects(trainVilaHd(options(path.join(tmp, `bad-${threads}`), threads)), (e: unknown) => isUserError(e) && /--threads must be a positive integer/.test(e.message));
  }
});

test('bench train-mllm times each number of threads and reports the ratios', async () => {
  const r = await benchTrainMllm({ ps3, method: 'ps3', preset: 'micro', threads: [1, 2], steps: 1, batch: 2, images: 2, repeats: 2 });
  assert.deepEqual(r.rows.map((row) => row.threads), [1, 2]);
  assert.equal(r.rows[0]!.speedup, 1);
  for (const row of r.rows) {
    assert.equal(row.runs_samples_per_s.length, 2);
    assert.ok(row.samples_per_s > 0 && row.cpu_ms_per_sample > 0, JSON.stringify(row));
    assert.ok(Math.abs(row.speedup - row.samples_per_s / r.rows[0]!.samples_per_s) < 1e-12);
  }
});

test('bench train-mllm times each choice weight with each number of threads', async () => {
  const r = await benchTrainMllm({ ps3, method: 'lowres', preset: 'micro', threads: [1], choiceWeights: [0, 1], steps: 1, batch: 2, images: 2, repeats: 1 });
  assert.deepEqual(r.rows.map((row) => [row.threads, row.choice_weight]), [[1, 0], [1, 1]]);
  assert.ok(r.rows.every((row) => row.samples_per_s > 0));
  assert.equal(r.rows[0]!.choice_loss, null);
  assert.ok(r.rows[1]!.choice_loss! > 0, 'the choice-weight run computed the term');
});

test('bench train-mllm times a frozen PS3 and one whose last block trains, each with its own cache', async () => {
  const r = await benchTrainMllm({ ps3, method: 'ps3', preset: 'micro', threads: [1], tuneTrunks: [0, 1], steps: 1, batch: 2, images: 2, repeats: 1 });
  assert.deepEqual(r.rows.map((row) => [row.threads, row.tune_trunk]), [[1, 0], [1, 1]]);
  assert.ok(r.rows.every((row) => row.samples_per_s > 0 && row.cpu_ms_per_sample > 0));
});
