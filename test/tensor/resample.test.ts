/**
 * The plain-array resampling helpers against PyTorch 1.13 (`F.interpolate`, `F.adaptive_*_pool`),
 * using reference values from test/data/make_numerics.py.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  adaptiveBins,
  adaptiveMaxPool,
  nearestIndex,
  resampleMatrix,
  resize,
  tapsFor,
} from '../../src/tensor/resample.js';
import { assertClose, denseMatrix, f32, hashInput, loadNumerics, quantize } from './numerics-fixture.js';

const data = loadNumerics();

// Weights are single float32 numbers that PyTorch computes in float32 and we in float64 (rounded
// once), so they agree to a few float32 ulps of values <= ~1.1.
const WEIGHT_TOL = 1e-6;
// Resized values are sums of up to ~40 products in float32 on PyTorch's side.
const VALUE_TOL = 1e-5;

for (const c of data.matrices) {
  test(`resampleMatrix ${c.mode} ${c.in} -> ${c.out} matches PyTorch's weights`, (t) => {
    const got = resampleMatrix(tapsFor(c.mode, c.in, c.out));
    const err = assertClose(got, denseMatrix(c), WEIGHT_TOL, `${c.mode} ${c.in}->${c.out}`);
    t.diagnostic(`max |diff| ${err.toExponential(2)}`);
  });
}

test('resampleMatrix crops to the first rows', () => {
  const taps = tapsFor('bicubic-antialias', 27, 54);
  const full = resampleMatrix(taps);
  const top = resampleMatrix(taps, 20);
  assert.deepEqual(Array.from(top), Array.from(full.subarray(0, 20 * 27)));
});

for (const c of data.matrices.filter((m) => m.mode === 'nearest')) {
  test(`nearestIndex ${c.in} -> ${c.out} is PyTorch's source index`, () => {
    const expected = c.rows.map((row) => {
      // One weight of exactly 1 per row.
      assert.deepEqual(row.slice(1), [1]);
      return row[0]!;
    });
    assert.deepEqual(Array.from(nearestIndex(c.in, c.out)), expected);
  });
}

for (const c of data.bins) {
  test(`adaptiveBins ${c.in} -> ${c.out} are PyTorch's pooling windows`, () => {
    const bins = adaptiveBins(c.in, c.out);
    assert.equal(bins.length, c.out);
    if (c.start && c.end) {
      assert.deepEqual(bins.map((b) => b[0]), c.start);
      assert.deepEqual(bins.map((b) => b[1]), c.end);
    }
    // Large sizes store only the bins where float32 index arithmetic would be off by one.
    for (const [a, [s, e]] of Object.entries(c.at ?? {})) assert.deepEqual(bins[Number(a)], [s, e], `bin ${a}`);
    assert.equal(bins.reduce((acc, b) => acc + b[0], 0), c.startSum);
    assert.equal(bins.reduce((acc, b) => acc + b[1], 0), c.endSum);
  });
}

for (const c of data.resize) {
  test(`resize ${c.mode} ${c.count}x${c.h}x${c.w} -> ${c.outH}x${c.outW} matches F.interpolate`, (t) => {
    const x = hashInput(c.count * c.h * c.w, c.salt);
    const got = resize(x, c.count, c.h, c.w, c.outH, c.outW, c.mode);
    const err = assertClose(got, f32(c.out), VALUE_TOL, `${c.mode} ${c.h}x${c.w}->${c.outH}x${c.outW}`);
    t.diagnostic(`max |diff| ${err.toExponential(2)}`);
  });
}

for (const c of data.maxPool) {
  const what = c.nanAt.length > 0 ? ' (NaN propagates)' : c.quantum !== undefined ? ' (ties)' : '';
  test(`adaptiveMaxPool ${c.count}x${c.h}x${c.w} -> ${c.outH}x${c.outW}${what} matches F.adaptive_max_pool2d`, () => {
    let x = hashInput(c.count * c.h * c.w, c.salt);
    if (c.quantum !== undefined) x = quantize(x, c.quantum);
    for (const i of c.nanAt) x[i] = NaN;
    const got = adaptiveMaxPool(x, c.count, c.h, c.w, c.outH, c.outW);
    // A max selects one input, so the result is exact.
    assertClose(got, f32(c.out), 0, 'adaptiveMaxPool');
  });
}

test('resample rejects sizes that are not positive integers', () => {
  assert.throws(() => tapsFor('bicubic', 0, 3), RangeError);
  assert.throws(() => tapsFor('area', 4, 2.5), RangeError);
});
