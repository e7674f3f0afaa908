/**
 * src/eval/retrieval.ts: tasks hold the true caption among N distinct candidates (distractors from other images, or the same image's
 * captions first); every method runs on a tiny random model, from synthetic scenes in memory and
 * from shards, with accuracy in [0, 1] against chance 1/N; training-range seeds are refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { isUserError } from '../../src/errors.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import { writeSynthDataset } from '../../src/data/synth.js';
import { evalTokenizer, type EvalTokenizer } from '../../src/eval/qa/text.js';
import {
  evaluateRetrieval, formatRetrievalTable, retrievalTasks, RETRIEVAL_METHODS, shardRetrievalImages, synthRetrievalImages, type RetrievalImage,
} from '../../src/eval/retrieval.js';
import { tinyConfig } from './tinyConfig.js';


let model: PS3Model;
let tok: EvalTokenizer;
let images: RetrievalImage[];

before(async () => {
  await initEngine();
  model = randomModel(tinyConfig(), 5);
  tok = await evalTokenizer(model);
  images = synthRetrievalImages(1_000_000, 3, 448, 224);
});

after(() => model.weights.dispose());

test('tasks: the true caption once among N distinct candidates; distractors from other images by default, same-image ones on request; deterministic', () => {
  for (const distractors of ['other', 'same'] as const) {
    const tasks = retrievalTasks(images, { count: 5, candidates: 4, perImage: 2, seed: 1, distractors });
    assert.equal(tasks.length, 5);
    for (const t of tasks) {
      assert.equal(t.candidates.length, 4);
      assert.equal(new Set(t.candidates).size, 4);
      const truth = images[t.image]!.regions[t.region]!.caption;
      assert.equal(t.candidates[t.truth], truth);
      const own = new Set(images[t.image]!.regions.map((r) => r.caption));
      const wrong = t.candidates.filter((_, i) => i !== t.truth);
      // "other": no distractor is true of the image; "same": with 4 regions the image fills all 3 itself
      if (distractors === 'other') assert.ok(wrong.every((c) => !own.has(c)));
      else if (own.size >= 4) assert.ok(wrong.every((c) => own.has(c)));
    }
    assert.ok(tasks.filter((t) => t.image === 0).length <= 2);
    assert.deepEqual(retrievalTasks(images, { count: 5, candidates: 4, perImage: 2, seed: 1, distractors }), tasks);
  }
  assert.deepEqual(retrievalTasks(images, { count: 5, candidates: 4, seed: 1 }), retrievalTasks(images, { count: 5, candidates: 4, seed: 1, distractors: 'other' }));
  assert.throws(() => retrievalTasks(images, { count: 1, candidates: 1000 }), (e: unknown) => isUserError(e));
  assert.throws(() => synthRetrievalImages(12, 1, 224, 224), (e: unknown) => isUserError(e) && /training range/.test((e as Error).message));
});

test('every method: accuracy in [0, 1], chance 1/N, ranks and token counts; nothing leaks', async () => {
  const tasks = retrievalTasks(images, { count: 3, candidates: 4, perImage: 1 });
  // warm up the cached transposed weights
  await evaluateRetrieval(model, tok.tokenizer, images, tasks.slice(0, 1), { method: 'ps3' });
  await evaluateRetrieval(model, tok.tokenizer, images, tasks.slice(0, 1), { method: 'ps3-box' });
  const before = tf.memory().numTensors;
  const reports = [];
  for (const method of RETRIEVAL_METHODS) {
    const r = await evaluateRetrieval(model, tok.tokenizer, images, tasks, { method });
    assert.equal(r.status, 'ok');
    assert.equal(r.answered, 3);
    assert.ok(r.accuracy! >= 0 && r.accuracy! <= 1);
    assert.equal(r.chance, 1 / 4);
    assert.ok(r.mean_rank! >= 1 && r.mean_rank! <= 4);
    for (const p of r.predictions) {
      assert.equal(p.correct, p.predicted === p.truth);
      assert.equal(p.correct, p.rank === 1);
    }
    // ps3 looks once per candidate (16 low-res + 32 high-res tokens each)
    const tokens = { ps3: 4 * (16 + 32), 'ps3-box': 16 + 32, lowres: 16, anyres: 17 * 16, s2: 21 * 16 }[method];
    assert.equal(r.tokens_median, tokens, method);
    assert.equal(r.encodes_per_triple, method === 'ps3' ? 4 : 1);
    reports.push(r);
  }
  assert.equal(tf.memory().numTensors, before, 'tensors left behind');
  assert.ok(formatRetrievalTable(reports).includes('ps3-box'));
});

test('shards in the reference format: boxes scaled to the top scale, triples evaluated', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-retrieval-'));
  await writeSynthDataset({ out: dir, count: 2, width: 448, height: 448, seed: 1_000_003, perShard: 10, format: 'png' });
  const { images: fromShards } = await shardRetrievalImages(dir, 2, 224);
  assert.equal(fromShards.length, 2);
  const px = await fromShards[0]!.load();
  assert.deepEqual([px.height, px.width, px.data.length], [224, 224, 3 * 224 * 224]);
  for (const r of fromShards[0]!.regions) assert.ok(r.box[2] <= 224 + 1e-9 && r.box[3] <= 224 + 1e-9);
  const tasks = retrievalTasks(fromShards, { count: 2, candidates: 3 });
  const r = await evaluateRetrieval(model, tok.tokenizer, fromShards, tasks, { method: 'lowres' });
  assert.equal(r.answered, 2);
  assert.equal(r.chance, 1 / 3);
  fs.rmSync(dir, { recursive: true });
});
