/**
 * src/model/weights.ts: frozen weights the model multiplies by are held transposed only (the
 * stored layout is not kept beside it), yet stay readable as stored; rows of a checkpoint's
 * weight are read from its file alone (src/io/safetensors.ts `readRows`), equal to the stored rows.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/model/load.js';
import { randomWeights } from '../../src/model/weights.js';
import { initEngine, tf } from '../../src/tensor/engine.js';

// Compiled to dist/test/model/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');

before(async () => {
  await initEngine();
});

const table = new Map<string, readonly number[]>([
  ['a.weight', [3, 5]],
  ['b.weight', [4, 2, 3]],
]);

test('a frozen weight not made yet is transposed from its source and only the transposed tensor is kept; get still makes it as stored', () => {
  const w = randomWeights(table, 7, { logitScale: 1, logitBias: 0 });
  const tensors = tf.memory().numTensors;
  const t = w.transposed('a.weight');
  assert.equal(tf.memory().numTensors, tensors + 1, 'the transposed tensor only');
  assert.deepEqual(t.shape, [5, 3]);
  assert.ok(w.hasTransposed('a.weight'));
  assert.ok(!w.hasTransposed('b.weight'));
  assert.equal(w.transposed('a.weight'), t, 'cached');
  const stored = w.get('a.weight');
  assert.deepEqual(tf.tidy(() => tf.transpose(stored).arraySync()), t.arraySync());
  // a conv kernel as a matrix: [4, 6] transposed
  const k = w.transposed('b.weight', 4);
  assert.deepEqual(k.shape, [6, 4]);
  assert.ok(w.hasTransposed('b.weight'));
  assert.deepEqual(k.arraySync(), tf.tidy(() => tf.transpose(tf.reshape(w.get('b.weight'), [4, 6])).arraySync()));
  w.dispose();
  assert.equal(tf.memory().numTensors, tensors);
});

test('a weight already made is transposed from it and kept as it is', () => {
  const w = randomWeights(table, 7, { logitScale: 1, logitBias: 0 });
  const stored = w.get('a.weight');
  const tensors = tf.memory().numTensors;
  w.transposed('a.weight');
  assert.equal(tf.memory().numTensors, tensors + 1);
  assert.equal(w.get('a.weight'), stored);
  assert.ok(!stored.isDisposed);
  w.dispose();
});

test('readRows: any rows of a float tensor seen as [-1, last dim], in runs or alone, as stored (F32 and F16); a row past the end is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-rows-'));
  try {
    const values = Float32Array.from({ length: 2 * 5 * 3 }, (_, i) => (i - 7) / 4); // exact in half precision
    const tensors = new Map([['t', { shape: [2, 5, 3], data: values }], ['u', { shape: [4], data: Float32Array.of(1, 2, 3, 4) }]]);
    for (const floats of ['F32', 'F16'] as const) {
      const file = path.join(dir, `${floats}.safetensors`);
      writeSafetensors(file, tensors, undefined, floats);
      const f = openSafetensors(file);
      const rows = Int32Array.of(0, 1, 2, 7, 9, 4, 4);
      const want = Array.from(rows).flatMap((r) => Array.from(values.subarray(r * 3, r * 3 + 3)));
      assert.deepEqual(Array.from(f.readRows('t', rows)), want, floats);
      assert.deepEqual(Array.from(f.readRows('u', Int32Array.of(0))), [1, 2, 3, 4], 'a 1-d tensor is one row');
      assert.equal(f.readRows('t', new Int32Array(0)).length, 0);
      assert.throws(() => f.readRows('t', Int32Array.of(8, 9, 10)), /has 10 rows, asked for row 10/);
      assert.throws(() => f.readRows('t', Int32Array.of(-1)), /asked for row -1/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint weight read by rows is never made a tensor, and its rows equal the stored ones', () => {
  const w = loadModel(fixtures, 'vision').weights;
  const key = 'vision_model.pos_emb_residual.2';
  const ids = Int32Array.of(5, 6, 7, 100, 1599, 0);
  assert.ok(w.readsRows(key));
  const tensors = tf.memory().numTensors;
  const got = w.rows(key, ids);
  assert.equal(tf.memory().numTensors, tensors + 1, 'the rows only');
  assert.deepEqual(got.shape, [ids.length, 32]);
  assert.ok(w.readsRows(key), 'still not made');
  const want = tf.tidy(() => tf.gather(tf.reshape(w.get(key), [-1, 32]), tf.tensor1d(ids, 'int32')));
  assert.ok(!w.readsRows(key), 'made by get: gathered from the tensor from now on');
  assert.deepEqual(got.arraySync(), want.arraySync());
  const again = w.rows(key, ids);
  assert.deepEqual(again.arraySync(), want.arraySync());
  tf.dispose([got, want, again]);
  w.dispose();
});
