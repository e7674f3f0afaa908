/**
 * Random initialisation: `Rng.fillNormal` (the ziggurat) against the standard normal's moments and
 * CDF values, its tail, determinism and scaling; `randomWeights` draws N(0, 1/fan_in) matrices
 * straight into float32 buffers, one stream per key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/rng.js';
import { randomWeights } from '../../src/model/weights.js';

const N = 2_000_000;

test('fillNormal draws the standard normal: mean, variance, kurtosis, CDF values and both tails', () => {
  const x = new Rng(42).fillNormal(new Float32Array(N));
  let sum = 0;
  let sq = 0;
  let quart = 0;
  let below1 = 0;
  let belowMinus2 = 0;
  let beyond3 = 0;
  let beyondR = 0;
  let positiveTail = 0;
  for (const v of x) {
    sum += v;
    sq += v * v;
    quart += v ** 4;
    if (v < 1) below1++;
    if (v < -2) belowMinus2++;
    if (Math.abs(v) > 3) beyond3++;
    if (Math.abs(v) > 3.442619855899) beyondR++;
    if (v > 3.442619855899) positiveTail++;
  }
  const mean = sum / N;
  const variance = sq / N - mean * mean;
  // standard errors at N = 2e6: mean 7e-4, variance 1e-3, kurtosis 5e-3
  assert.ok(Math.abs(mean) < 0.004, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.005, `variance ${variance}`);
  assert.ok(Math.abs(quart / N - 3) < 0.03, `fourth moment ${quart / N}`);
  // Phi(1) = 0.8413447, Phi(-2) = 0.0227501, P(|x| > 3) = 0.0026998, P(|x| > 3.4426) = 0.000576
  assert.ok(Math.abs(below1 / N - 0.8413447) < 0.0015, `P(x < 1) ${below1 / N}`);
  assert.ok(Math.abs(belowMinus2 / N - 0.0227501) < 0.0005, `P(x < -2) ${belowMinus2 / N}`);
  assert.ok(Math.abs(beyond3 / N - 0.0026998) < 0.0002, `P(|x| > 3) ${beyond3 / N}`);
  assert.ok(Math.abs(beyondR / N - 0.000576) < 0.0001, `P(|x| > R) ${beyondR / N}`);
  assert.ok(positiveTail > 0.4 * beyondR && positiveTail < 0.6 * beyondR, 'the tail is drawn on both sides');
});

test('fillNormal is deterministic per seed, scales by std, and continues the generator\'s stream', () => {
  const a = new Rng(7).fillNormal(new Float32Array(1000), 0.5);
  const b = new Rng(7).fillNormal(new Float32Array(1000), 1);
  for (let i = 0; i < a.length; i++) assert.equal(a[i], Math.fround(b[i]! * 0.5));
  const c = new Rng(8).fillNormal(new Float32Array(1000));
  assert.ok(c.some((v, i) => v !== b[i]));
  const r = new Rng(7);
  const first = r.fillNormal(new Float32Array(500));
  const second = r.fillNormal(new Float32Array(500));
  assert.deepEqual([...first, ...second], [...b]);
});

test('randomWeights: N(0, 1/fan_in) matrices, N(0, 0.02) embeddings, constant norms and biases, a stream per key', () => {
  const table = new Map<string, readonly number[]>([
    ['vision_model.trunk.blocks.0.mlp.fc1.weight', [256, 64]],
    ['vision_model.trunk.blocks.1.mlp.fc1.weight', [256, 64]],
    ['vision_model.trunk.pos_embed', [1, 100, 64]],
    ['vision_model.trunk.blocks.0.norm1.weight', [64]],
    ['vision_model.trunk.blocks.0.mlp.fc1.bias', [256]],
  ]);
  const w = randomWeights(table, 3, { logitScale: 0, logitBias: 0 });
  const std = (a: Float32Array): number => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  const fc1 = w.values('vision_model.trunk.blocks.0.mlp.fc1.weight');
  assert.ok(Math.abs(std(fc1) - 1 / 8) < 0.005, `fc1 std ${std(fc1)}`);
  assert.ok(Math.abs(std(w.values('vision_model.trunk.pos_embed')) - 0.02) < 0.001);
  assert.ok(w.values('vision_model.trunk.blocks.0.norm1.weight').every((v) => v === 1));
  assert.ok(w.values('vision_model.trunk.blocks.0.mlp.fc1.bias').every((v) => v === 0));
  assert.ok(w.values('vision_model.trunk.blocks.1.mlp.fc1.weight').some((v, i) => v !== fc1[i]));
  assert.deepEqual(w.values('vision_model.trunk.blocks.0.mlp.fc1.weight'), fc1, 'a weight read twice is drawn the same');
  w.dispose();
});
