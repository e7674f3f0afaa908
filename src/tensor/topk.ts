/**
 * Stable top-k: the indices of the k largest values, largest first, ties broken by the lower
 * index (what `torch.sort(-v, stable=True).indices[:k]` gives; PS3's fixtures use this rule).
 * NaN ranks below every number.
 */
export function stableTopK(values: ArrayLike<number>, k: number): Int32Array {
  const n = values.length;
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`stableTopK: k must be a non-negative integer, got ${k}`);
  const order = Array.from({ length: n }, (_, i) => i);
  const key = (i: number): number => {
    const v = values[i]!;
    return Number.isNaN(v) ? -Infinity : v;
  };
  order.sort((a, b) => key(b) - key(a) || a - b);
  return Int32Array.from(order.slice(0, Math.min(k, n)));
}
