/**
 * src/model/weights.ts: frozen weights the model multiplies by are held transposed only (the
 * stored layout is not kept beside it), yet stay readable as stored.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomWeights } from '../../src/model/weights.js';
import { initEngine, tf } from '../../src/tensor/engine.js';

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
