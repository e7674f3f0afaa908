/**
 * src/eval/stats.ts against the values published in Newcombe (1998), "Two-sided confidence
 * intervals for the single proportion" (Table I, Wilson score method without continuity
 * correction) and "Interval estimation for the difference between independent proportions"
 * (Table II, method 10).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newcombeDifference, wilson } from '../../src/eval/stats.js';

function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 6e-5, `${what}: ${actual} vs ${expected}`);
}

test('Wilson score interval: Newcombe 1998 Table I', () => {
  for (const [k, n, low, high] of [[81, 263, 0.2553, 0.3662], [15, 148, 0.0624, 0.1605], [0, 20, 0, 0.1611], [1, 29, 0.0061, 0.1718]] as const) {
    const w = wilson(k, n);
    near(w.low, low, `${k}/${n} low`);
    near(w.high, high, `${k}/${n} high`);
  }
  assert.equal(wilson(10, 10).high, 1);
  assert.equal(wilson(0, 10).low, 0);
  assert.throws(() => wilson(3, 0), RangeError);
  assert.throws(() => wilson(5, 4), RangeError);
});

test('Newcombe hybrid score interval of a difference: Newcombe 1998 Table II, method 10', () => {
  for (const [k1, n1, k2, n2, low, high] of [[56, 70, 48, 80, 0.0524, 0.3339], [9, 10, 3, 10, 0.1705, 0.809], [5, 56, 0, 29, -0.0381, 0.1926]] as const) {
    const d = newcombeDifference(k1, n1, k2, n2);
    near(d.low, low, `${k1}/${n1} - ${k2}/${n2} low`);
    near(d.high, high, `${k1}/${n1} - ${k2}/${n2} high`);
  }
});
