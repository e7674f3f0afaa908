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
