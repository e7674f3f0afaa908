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
  resizePlanes,
  tapsFor,
  type Taps,
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

/** The separable sum written plainly: every tap of a row into a float64 row, then every tap of a column. */
function plainResize(x: Float32Array, count: number, h: number, w: number, rows: Taps, cols: Taps): Float32Array {
  const out = new Float32Array(count * rows.outSize * cols.outSize);
  for (let p = 0; p < count; p++) {
    for (let oy = 0; oy < rows.outSize; oy++) {
      const row = new Float64Array(w);
      for (let k = 0; k < rows.width; k++) {
        const wt = rows.weight[oy * rows.width + k]!;
        if (wt === 0) continue;
        for (let c = 0; c < w; c++) row[c]! += wt * x[(p * h + rows.index[oy * rows.width + k]!) * w + c]!;
      }
      for (let ox = 0; ox < cols.outSize; ox++) {
        let acc = 0;
        for (let k = 0; k < cols.width; k++) acc += cols.weight[ox * cols.width + k]! * row[cols.index[ox * cols.width + k]!]!;
        out[(p * rows.outSize + oy) * cols.outSize + ox] = acc;
      }
    }
  }
  return out;
}

// The four-tap paths (plain bicubic) reorder nothing: the same bits as the plain sum, for down-
// and upscales, a size kept (taps 0, 1, 0, 0: fewer nonzero rows) and wider antialiased taps.
for (const [mode, h, w, outH, outW] of [
  ['bicubic', 37, 41, 15, 16],
  ['bicubic', 9, 11, 20, 23],
  ['bicubic', 12, 13, 12, 5],
  ['bicubic-antialias', 30, 31, 7, 9],
  ['area', 20, 21, 6, 7],
] as const) {
  test(`resize ${mode} ${h}x${w} -> ${outH}x${outW} is the plain separable sum, bit for bit`, () => {
    const x = hashInput(2 * h * w, 7);
    const rows = tapsFor(mode, h, outH);
    const cols = tapsFor(mode, w, outW);
    const got = resizePlanes(x, 2, h, w, rows, cols);
    assert.deepEqual(Array.from(got), Array.from(plainResize(x, 2, h, w, rows, cols)));
  });
}

test('resample rejects sizes that are not positive integers', () => {
  assert.throws(() => tapsFor('bicubic', 0, 3), RangeError);
  assert.throws(() => tapsFor('area', 4, 2.5), RangeError);
});
