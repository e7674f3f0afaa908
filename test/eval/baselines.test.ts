/**
 * src/model/baselines.ts and the QA evaluation (src/eval/qa/) on a tiny random model: every method
 * runs, returns a unit feature and the token count its definition gives (lowres = N0,
 * anyres = tiles x N0 + N0, s2 = Σ tiles x N0, ps3 = N0 + chosen), tiles are cut right, no tensor
 * is left behind, and a method that cannot fit the WASM heap is reported, not crashed on.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EngineOutOfMemoryError, initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import type { Pixels } from '../../src/model/encoder.js';
import {
  anyresGrid, cutTiles, encodeWith, ENCODE_METHODS, estimatePeakBytes, isOutOfMemory, methodTokens, OutOfMemoryError, s2Grids, weightBytes,
} from '../../src/model/baselines.js';
import { makeBenchmark } from '../../src/eval/qa/make4k.js';
import { loadBenchmark } from '../../src/eval/qa/format.js';
import { evaluateQa, formatQaTable } from '../../src/eval/qa/evaluate.js';
import { answerText } from '../../src/eval/qa/answer.js';
import { evalTokenizer, type EvalTokenizer } from '../../src/eval/qa/text.js';
import { textFeatures, textPrompts } from '../../src/model/region.js';
import { tinyConfig } from './tinyConfig.js';


let model: PS3Model;
let tok: EvalTokenizer;
let pixels: Pixels;
const N0 = 16;

before(async () => {
  await initEngine();
  model = randomModel(tinyConfig(), 3);
  tok = await evalTokenizer(model);
  const data = new Float32Array(3 * 224 * 224);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.8;
  pixels = { data, batch: 1, height: 224, width: 224 };
  // warm-up: the first call caches transposed weights for the model's lifetime
  for (const m of ENCODE_METHODS) (await encodeWith(model, pixels, m)).feature.dispose();
  const text = textFeatures(model, tok.tokenizer.encode(['a red sign']), 1);
  tf.dispose([text.features, text.prompts]);
});

after(() => model.weights.dispose());

test('token counts: lowres N0, anyres tiles x N0 + N0, s2 Σ tiles x N0, ps3 N0 + chosen; unit features; nothing leaks', async () => {
  const cfg = model.config.vision;
  assert.deepEqual(anyresGrid(cfg, 224, 224, 224), { rows: 4, cols: 4 });
  assert.deepEqual(s2Grids(cfg, 224, 224, 224).map((g) => g.grid.rows * g.grid.cols), [1, 4, 16]);
  const expected = { lowres: N0, anyres: 16 * N0 + N0, s2: (1 + 4 + 16) * N0, ps3: N0 + 32 };
  const before = tf.memory().numTensors;
  for (const m of ENCODE_METHODS) {
    const enc = await encodeWith(model, pixels, m);
    assert.equal(enc.tokens, expected[m], `${m} tokens`);
    assert.equal(methodTokens(cfg, m, pixels), expected[m], `${m} analytic tokens`);
    assert.deepEqual(enc.feature.shape, [1, 32]);
    const norm = Math.hypot(...enc.feature.dataSync());
    assert.ok(Math.abs(norm - 1) < 1e-4, `${m} feature norm ${norm}`);
    assert.equal(enc.tiles, m === 'anyres' ? 16 : m === 's2' ? 21 : 0);
    assert.ok(enc.ms > 0);
    enc.feature.dispose();
  }
  // two looks, a token budget, and AnyRes at a lower resolution
  const two = await encodeWith(model, pixels, 'ps3', { looks: 2 });
  assert.equal(two.tokens, N0 + 64);
  const budget = await encodeWith(model, pixels, 'ps3', { tokens: 40 });
  assert.equal(budget.tokens, N0 + 40);
  const low = await encodeWith(model, pixels, 'anyres', { resolution: 112 });
  assert.equal(low.tokens, 4 * N0 + N0);
  tf.dispose([two.feature, budget.feature, low.feature]);
  assert.equal(tf.memory().numTensors, before, 'tensors left behind');
});

test('tiles: row-major s0 x s0 blocks of the image at the tiling resolution', () => {
  const tiles = cutTiles(pixels, 56, { rows: 4, cols: 4 });
  assert.equal(tiles.length, 16 * 3 * 56 * 56);
  // tile (row 1, col 2), channel 2, pixel (5, 7) is image pixel (56 + 5, 112 + 7)
  const t = 1 * 4 + 2;
  assert.equal(tiles[((t * 3 + 2) * 56 + 5) * 56 + 7], pixels.data[2 * 224 * 224 + (56 + 5) * 224 + 112 + 7]);
});

test('a method that cannot fit the WASM heap is refused before running and reported as out of memory', async () => {
  const cfg = model.config.vision;
  const huge = { resolution: 56 * 1000 };
  assert.ok(estimatePeakBytes(cfg, 'anyres', pixels, huge) > 4 * 1024 ** 3);
  await assert.rejects(encodeWith(model, pixels, 'anyres', huge), (e: unknown) => e instanceof OutOfMemoryError && isOutOfMemory(e));
  const w = weightBytes(model.weights);
  assert.ok(w.matrices > 0 && w.matrices < w.all);
  // a bare abort, an out-of-bounds access or a bad array length is a bug, never out of memory
  assert.ok(!isOutOfMemory(new Error('RuntimeError: Aborted(). Build with -sASSERTIONS for more info.')));
  assert.ok(!isOutOfMemory(new WebAssembly.RuntimeError('memory access out of bounds')));
  assert.ok(!isOutOfMemory(new RangeError('Invalid typed array length: -1')));
  assert.ok(!isOutOfMemory(new Error('something else')));
  assert.ok(isOutOfMemory(new EngineOutOfMemoryError(2 ** 31)));
  assert.ok(isOutOfMemory(new RangeError('Array buffer allocation failed')));
});

test('the engine\'s own allocation failure is named out of memory where it happens, and the engine keeps working', () => {
  assert.equal(tf.getBackend(), 'wasm');
  const wasm = (tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(p: number): void } }).wasm;
  const isEngineOom = (e: unknown): boolean => e instanceof EngineOutOfMemoryError && isOutOfMemory(e) && /out of memory/.test(e.message);
  // three blocks of 1.5 GiB cannot fit the 4 GiB heap: the third fails in the heap's growth
  // (addresses only: no page of them is touched)
  const held = [wasm._malloc(1.5 * 2 ** 30), wasm._malloc(1.5 * 2 ** 30)];
  assert.ok(held.every((p) => p !== 0));
  assert.throws(() => wasm._malloc(1.5 * 2 ** 30), isEngineOom);
  for (const p of held) wasm._free(p);
  // one request of 2 GiB or more, which the module's malloc would answer with a bogus address
  assert.throws(() => wasm._malloc(2 ** 31), isEngineOom);
  const three = tf.add(tf.scalar(1), tf.scalar(2));
  assert.deepEqual(Array.from(three.dataSync()), [3]);
  three.dispose();
});

test('QA: every method answers a generated benchmark; accuracy, chance, per-category results and token counts', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-qa-eval-'));
  // 1512 px scenes (details tiny at 378), squashed to the tiny model's 224 px top scale
  await makeBenchmark({ out, count: 6, size: 1512, seed: 1_000_000 });
  const items = loadBenchmark(path.join(out, 'questions.jsonl'));
  const reports = [];
  const before = tf.memory().numTensors;
  for (const method of ENCODE_METHODS) {
    const r = await evaluateQa(model, tok.tokenizer, items, { method });
    assert.equal(r.status, 'ok');
    assert.equal(r.answered, items.length);
    assert.ok(r.accuracy! >= 0 && r.accuracy! <= 1);
    assert.equal(r.chance, 0.25);
    assert.equal(r.tokens_median, { lowres: N0, anyres: 17 * N0, s2: 21 * N0, ps3: N0 + 32 }[method]);
    const perCategory = Object.values(r.per_category).reduce((a, c) => a + c.questions, 0);
    assert.equal(perCategory, items.length);
    for (const p of r.predictions) {
      assert.equal(p.scores.length, 4);
      assert.ok(p.predicted >= 0 && p.predicted < 4);
      assert.equal(p.correct, p.predicted === p.answer);
    }
    assert.ok(r.ms_per_question_median! > 0);
    reports.push(r);
  }
  assert.equal(tf.memory().numTensors, before, 'tensors left behind');
  const table = formatQaTable(reports);
  for (const m of ['ps3 (1 look)', 'lowres', 'anyres', 's2']) assert.ok(table.includes(m), table);
  // out of memory is a report, not a crash
  const oom = await evaluateQa(model, tok.tokenizer, items.slice(0, 2), { method: 'anyres', resolution: 56 * 1000 });
  assert.equal(oom.status, 'out of memory');
  assert.equal(oom.aborted, false);
  assert.equal(oom.answered, 0);
  assert.equal(oom.accuracy, null);
  fs.rmSync(out, { recursive: true });
});

test('answer text: hints when present, else the question and question + option', () => {
  const item = { question: 'What does the red sign read?', options: ['K3', 'K8'], prompt: 'a red sign', statements: ['a red sign reading K3', 'a red sign reading K8'] };
  assert.deepEqual(answerText(item), { prompt: 'a red sign', statements: item.statements });
  assert.deepEqual(answerText(item, false), { prompt: item.question, statements: ['What does the red sign read? K3', 'What does the red sign read? K8'] });
});

test('textPrompts gives each text the prompt textFeatures gives it, batch by batch', () => {
  const texts = ['a red sign', 'a blue star marked with the letter K', 'a green ring'];
  const batched = textPrompts(model, tok.tokenizer, texts, 2);
  const whole = textFeatures(model, tok.tokenizer.encode(texts), texts.length);
  const D = whole.prompts.shape[1]!;
  const all = whole.prompts.dataSync();
  tf.dispose([whole.features, whole.prompts]);
  assert.equal(batched.length, 3);
  batched.forEach((p, k) => {
    assert.equal(p.length, D);
    p.forEach((x, j) => assert.ok(Math.abs(x - all[k * D + j]!) < 1e-5, `text ${k}, value ${j}: ${x} vs ${all[k * D + j]}`));
  });
});
