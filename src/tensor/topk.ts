/**
 * Stable top-k: the indices of the k largest values, largest first, ties broken by the lower
 * index (what `torch.sort(-v, stable=True).indices[:k]` gives; PS3's fixtures use this rule).
 * NaN ranks below every number, -Infinity included (torch sorts NaN last, and -NaN is NaN).
 */
export function stableTopK(values: ArrayLike<number>, k: number): Int32Array {
  const n = values.length;
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`stableTopK: k must be a non-negative integer, got ${k}`);
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => {
    const va = values[a]!;
    const vb = values[b]!;
    const nanA = Number.isNaN(va);
    const nanB = Number.isNaN(vb);
    // Comparisons rather than vb - va: Infinity - Infinity is NaN, which sort() reads as "equal"
    // only by accident.
    if (nanA !== nanB) return nanA ? 1 : -1;
    if (!nanA && va !== vb) return va > vb ? -1 : 1;
    return a - b;
  });
  return Int32Array.from(order.slice(0, Math.min(k, n)));
}
