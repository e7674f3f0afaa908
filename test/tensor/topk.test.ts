/** `stableTopK` against `torch.sort(-v, stable=True).indices[:k]` (test/data/make_numerics.py). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stableTopK } from '../../src/tensor/topk.js';
import { loadNumerics } from './numerics-fixture.js';

const data = loadNumerics();

/** Non-finite values are stored as strings because JSON cannot hold them. */
function decode(values: Array<number | string>): Float32Array {
  return Float32Array.from(values, (v) => (typeof v === 'number' ? v : Number(v)));
}

for (const c of data.topk) {
  test(`stableTopK: ${c.note} (n=${c.values.length}, k=${c.k}) matches torch's stable sort`, () => {
    const got = stableTopK(decode(c.values), c.k);
    assert.ok(got instanceof Int32Array);
    assert.deepEqual(Array.from(got), c.indices);
  });
}

test('stableTopK accepts plain arrays as well as typed arrays', () => {
  assert.deepEqual(Array.from(stableTopK([1, 3, 3, 2], 3)), [1, 2, 3]);
});

test('stableTopK rejects a negative or fractional k', () => {
  assert.throws(() => stableTopK([1, 2], -1), RangeError);
  assert.throws(() => stableTopK([1, 2], 1.5), RangeError);
});

/** The rule itself, by sorting every index. */
function sortedTopK(values: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: values.length }, (_, i) => i);
  order.sort((a, b) => {
    const [va, vb] = [values[a]!, values[b]!];
    if (Number.isNaN(va) !== Number.isNaN(vb)) return Number.isNaN(va) ? 1 : -1;
    if (!Number.isNaN(va) && va !== vb) return va > vb ? -1 : 1;
    return a - b;
  });
  return order.slice(0, k);
}

test('stableTopK equals sorting every index, on random values with many ties, zeros of both signs, infinities and NaN', () => {
  let state = 12345;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  const specials = [0, -0, Infinity, -Infinity, NaN, 0.5];
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(next() * 400);
    // few distinct levels in some trials, so ties cross the k-th place
    const levels = trial % 3 === 0 ? 4 : 1000;
    const values = Float32Array.from({ length: n }, () => (next() < 0.1 ? specials[Math.floor(next() * specials.length)]! : Math.floor(next() * levels) / levels));
    const k = [0, 1, Math.floor(next() * n), n, n + 3][trial % 5]!;
    assert.deepEqual(Array.from(stableTopK(values, k)), sortedTopK(values, k), `trial ${trial}, n ${n}, k ${k}`);
  }
});
