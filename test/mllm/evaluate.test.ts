/**
 * src/eval/qa/vila.ts: several runs answered image by image give each run exactly the answers it
 * gives alone, a run's `limit` answers the first questions only, the scaling curves are the
 * points of their runs, and `ps3 eval scaling` writes its JSON and both plots.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { initEngine } from '../../src/tensor/engine.js';
import { loadBenchmark, type BenchItem } from '../../src/eval/qa/format.js';
import { makeBenchmark } from '../../src/eval/qa/make4k.js';
import { curvesFrom, evaluateVilaQa, evaluateVilaRuns, scalingCurves, scalingRuns, type ScalingPlan } from '../../src/eval/qa/vila.js';
import { disposeVilaHd, loadVilaHd, type VilaHd } from '../../src/mllm/model.js';
import { writeMicroPs3, writeMicroVila } from './helpers.js';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-eval-'));
let model: VilaHd;
let items: BenchItem[];

before(async () => {
  await initEngine({});
  const ps3 = await writeMicroPs3(path.join(tmp, 'ps3'), 3);
  await writeMicroVila(path.join(tmp, 'vila'), ps3, ['ps3', 'lowres'], 7);
  const summary = await makeBenchmark({ out: path.join(tmp, 'bench'), count: 7, size: 224, lowres: 56, seed: 1_000_003 });
  items = loadBenchmark(summary.file);
  assert.ok(new Set(items.map((i) => i.imagePath)).size >= 2, 'questions on several images');
  model = loadVilaHd(path.join(tmp, 'vila'));
});
after(() => {
  disposeVilaHd(model);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const answers = (r: { predictions: ReadonlyArray<{ id: string; predicted: number; tokens: number; scores: number[] }> }) => r.predictions.map((p) => [p.id, p.predicted, p.tokens, p.scores]);

test('runs answered image by image give each run the answers it gives alone; limit answers the first questions', async () => {
  const [ps3, lowres, two] = await evaluateVilaRuns(model, items, [{ method: 'ps3', looks: 1 }, { method: 'lowres', limit: 3 }, { method: 'ps3', looks: 2, limit: 5 }]);
  const alone = await evaluateVilaQa(model, items, { method: 'ps3', looks: 1 });
  assert.deepEqual(answers(ps3!), answers(alone));
  assert.equal(ps3!.accuracy, alone.accuracy);
  assert.equal(ps3!.evidence_recall_mean, alone.evidence_recall_mean);
  assert.equal(lowres!.questions, 3);
  assert.equal(lowres!.answered, 3);
  assert.deepEqual(lowres!.predictions.map((p) => p.id), items.slice(0, 3).map((i) => i.id));
  assert.deepEqual(answers(lowres!), answers(await evaluateVilaQa(model, items.slice(0, 3), { method: 'lowres' })));
  assert.equal(two!.answered, 5);
  assert.deepEqual(two!.settings.looks, 2);
  assert.ok(two!.tokens_median! > ps3!.tokens_median!, 'a second look adds tokens');
});

test('the scaling curves are the points of their runs, on the first questions', async () => {
  const scales = model.ps3.config.vision.scales;
  const plan: ScalingPlan = { looks: [1, 2], budget: 20, tops: scales.slice(1), limit: 4 };
  const curves = await scalingCurves(model, items, plan);
  assert.deepEqual(curves.test_time.map((p) => p.x), [1, 2]);
  assert.deepEqual(curves.resolution.map((p) => p.x), scales.slice(1));
  assert.equal(curves.questions, 4);
  const runs = scalingRuns(model, plan);
  assert.deepEqual(runs[2], { method: 'ps3', tokens: 20, onlySelectFirstNScale: 1, limit: 4 });
  assert.deepEqual(runs[3], { method: 'ps3', tokens: 20, limit: 4 });
  const reports = await Promise.all(runs.map((r) => evaluateVilaQa(model, items.slice(0, 4), r)));
  assert.deepEqual(curvesFrom(plan, reports.map((r) => r.predictions), 4), curves);
  for (const [i, p] of [...curves.test_time, ...curves.resolution].entries()) {
    assert.equal(p.accuracy, reports[i]!.accuracy);
    assert.equal(p.tokens, reports[i]!.tokens_median);
    assert.equal(p.questions, 4);
  }
  assert.throws(() => curvesFrom(plan, [], 4), /0 runs/);
});

test('ps3 eval scaling writes scaling.json and both plots', async () => {
  const out = path.join(tmp, 'scaling');
  const r = spawnSync(process.execPath, [CLI, 'eval', 'scaling', path.join(tmp, 'bench', 'questions.jsonl'), '--model', path.join(tmp, 'vila'), '--looks', '1,2', '--limit', '3', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'scaling.json'), 'utf8')) as { test_time: Array<{ x: number; accuracy: number; tokens: number; questions: number }>; resolution: unknown[] };
  assert.deepEqual(json.test_time.map((p) => p.x), [1, 2]);
  assert.ok(json.test_time.every((p) => p.accuracy >= 0 && p.accuracy <= 1 && p.tokens > 0 && p.questions === 3));
  assert.equal(json.resolution.length, model.ps3.config.vision.scales.length - 2);
  for (const f of ['test_time.png', 'resolution.png']) assert.equal((await sharp(path.join(out, f)).metadata()).format, 'png');
  assert.match(r.stdout, /^looks 1: accuracy /m);
});
