/**
 * How much an accuracy measured on n questions can be trusted: Wilson's score interval for one
 * proportion, and Newcombe's hybrid score interval for the difference of two (method 10 of
 * Newcombe 1998, "Interval estimation for the difference between independent proportions").
 * Both stay inside [0, 1] (resp. [-1, 1]) and behave at 0 and n, where the normal interval does not.
 */

/** z for a two-sided 95 % interval */
export const Z95 = 1.959963984540054;

export interface Interval {
  readonly low: number;
  readonly high: number;
}

/** Wilson score interval of k successes in n trials (n >= 1). */
export function wilson(k: number, n: number, z = Z95): Interval {
  if (!Number.isInteger(n) || n < 1 || k < 0 || k > n) throw new RangeError(`wilson: need 0 <= k <= n, n >= 1; got k ${k}, n ${n}`);
  const p = k / n;
  const d = 1 + (z * z) / n;
  const centre = p + (z * z) / (2 * n);
  const half = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  // at k = 0 and k = n the bound is exactly 0 (resp. 1); rounding would leave it a hair inside
  return { low: k === 0 ? 0 : Math.max(0, (centre - half) / d), high: k === n ? 1 : Math.min(1, (centre + half) / d) };
}

/** Newcombe's interval for p1 - p2 (k1 of n1 against k2 of n2), from the two Wilson intervals. */
export function newcombeDifference(k1: number, n1: number, k2: number, n2: number, z = Z95): Interval {
  const p1 = k1 / n1;
  const p2 = k2 / n2;
  const a = wilson(k1, n1, z);
  const b = wilson(k2, n2, z);
  const d = p1 - p2;
  return { low: d - Math.hypot(p1 - a.low, b.high - p2), high: d + Math.hypot(a.high - p1, p2 - b.low) };
}
