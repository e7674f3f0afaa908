/**
 * Stable top-k: the indices of the k largest values, largest first, ties broken by the lower
 * index (what `torch.sort(-v, stable=True).indices[:k]` gives; PS3's fixtures use this rule).
 * NaN ranks below every number, -Infinity included (torch sorts NaN last, and -NaN is NaN).
 *
 * A look takes a few hundred of the tens of thousands of patches of a grid, so rather than
 * sorting them all, the k-th largest value is found first (quickselect, linear time), the indices
 * above it and the first tied ones in index order are kept, and only those k are sorted.
 */
export function stableTopK(values: ArrayLike<number>, k: number): Int32Array {
  const n = values.length;
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`stableTopK: k must be a non-negative integer, got ${k}`);
  const m = Math.min(k, n);
  if (m === 0) return new Int32Array(0);
  // the numbers, NaN left out, for the quickselect
  const numbers = new Float64Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(values[i]!)) numbers[count++] = values[i]!;
  const chosen = new Int32Array(m);
  let filled = 0;
  if (m <= count) {
    const threshold = kthLargest(numbers.subarray(0, count), m);
    for (let i = 0; i < n; i++) if (values[i]! > threshold) chosen[filled++] = i;
    for (let i = 0; i < n && filled < m; i++) if (values[i] === threshold) chosen[filled++] = i;
  } else {
    // every number, then NaNs by index
    for (let i = 0; i < n; i++) if (!Number.isNaN(values[i]!)) chosen[filled++] = i;
    for (let i = 0; i < n && filled < m; i++) if (Number.isNaN(values[i]!)) chosen[filled++] = i;
  }
  return chosen.sort((a, b) => {
    const va = values[a]!;
    const vb = values[b]!;
    const nanA = Number.isNaN(va);
    const nanB = Number.isNaN(vb);
    // comparisons rather than vb - va: Infinity - Infinity is NaN, which sort() reads as "equal"
    // only by accident
    if (nanA !== nanB) return nanA ? 1 : -1;
    if (!nanA && va !== vb) return va > vb ? -1 : 1;
    return a - b;
  });
}

/** The m-th largest of `a` (1-based; no NaN), by quickselect; `a` is reordered. */
function kthLargest(a: Float64Array, m: number): number {
  // the (n - m)-th smallest, 0-based
  const target = a.length - m;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    // three-way partition: [lo, lt) < pivot, [lt, gt] == pivot, (gt, hi] > pivot
    let lt = lo;
    let gt = hi;
    let i = lo;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) {
        a[i] = a[lt]!;
        a[lt++] = v;
        i++;
      } else if (v > pivot) {
        a[i] = a[gt]!;
        a[gt--] = v;
      } else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return pivot;
  }
  return a[lo]!;
}
