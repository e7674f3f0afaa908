/**
 * Closed-form ridge regression for linear probes, in float64, by hand: W solves
 * (XᵀX + λI) W = XᵀY, by Cholesky. With fewer rows n than columns d the same W comes from the
 * n x n system instead, (XXᵀ + λI) A = Y and W = XᵀA (since (XᵀX + λI)⁻¹Xᵀ = Xᵀ(XXᵀ + λI)⁻¹),
 * so a system is never larger than min(n, d). The Gram matrix is made once for every λ.
 *
 * The classifier on top is one-vs-rest: Y one-hot over the classes the fit rows show, features
 * standardised on the fit rows, and the scores' intercept the fit rows' class frequencies (with
 * centred features the intercept decouples from W, so W is exactly the system above); the
 * predicted class is the best score's.
 */

/** A dense row-major matrix. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** Rows of equal length as a matrix. */
export function fromRows(rows: readonly ArrayLike<number>[], cols: number): Matrix {
  const data = new Float64Array(rows.length * cols);
  rows.forEach((r, i) => {
    if (r.length !== cols) throw new RangeError(`fromRows: row ${i} has ${r.length} values, expected ${cols}`);
    for (let j = 0; j < cols; j++) data[i * cols + j] = r[j]!;
  });
  return { rows: rows.length, cols, data };
}

/**
 * L (n x n, lower triangular) with L Lᵀ = A, for A symmetric positive definite (n x n, only its
 * lower triangle is read). Throws when A is not positive definite.
 */
export function cholesky(a: Float64Array, n: number): Float64Array {
  if (a.length !== n * n) throw new RangeError(`cholesky: ${a.length} values do not make ${n} x ${n}`);
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let s = a[rj + j]!;
    for (let k = 0; k < j; k++) s -= l[rj + k]! * l[rj + k]!;
    if (!(s > 0)) throw new RangeError(`cholesky: the matrix is not positive definite (pivot ${j} is ${s})`);
    const d = Math.sqrt(s);
    l[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = a[ri + j]!;
      // both rows' first j entries, contiguous
      for (let k = 0; k < j; k++) t -= l[ri + k]! * l[rj + k]!;
      l[ri + j] = t / d;
    }
  }
  return l;
}

/** X (n x k) with L Lᵀ X = B, for `l` from `cholesky` and B n x k: a forward then a backward substitution. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array, k: number): Float64Array {
  if (b.length !== n * k) throw new RangeError(`choleskySolve: ${b.length} values do not make ${n} x ${k}`);
  const x = Float64Array.from(b);
  // L Y = B
  for (let i = 0; i < n; i++) {
    const xi = i * k;
    for (let m = 0; m < i; m++) {
      const lim = l[i * n + m]!;
      if (lim === 0) continue;
      for (let c = 0; c < k; c++) x[xi + c]! -= lim * x[m * k + c]!;
    }
    const d = l[i * n + i]!;
    for (let c = 0; c < k; c++) x[xi + c]! /= d;
  }
  // Lᵀ X = Y
  for (let i = n - 1; i >= 0; i--) {
    const xi = i * k;
    for (let m = i + 1; m < n; m++) {
      const lmi = l[m * n + i]!;
      if (lmi === 0) continue;
      for (let c = 0; c < k; c++) x[xi + c]! -= lmi * x[m * k + c]!;
    }
    const d = l[i * n + i]!;
    for (let c = 0; c < k; c++) x[xi + c]! /= d;
  }
  return x;
}

/** A B, (n x m)(m x k). */
export function matMul(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new RangeError(`matMul: ${a.rows} x ${a.cols} by ${b.rows} x ${b.cols}`);
  const { rows: n, cols: m } = a;
  const k = b.cols;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const aij = a.data[i * m + j]!;
      if (aij === 0) continue;
      for (let c = 0; c < k; c++) out[i * k + c]! += aij * b.data[j * k + c]!;
    }
  }
  return { rows: n, cols: k, data: out };
}

/** Aᵀ B, (m x n)ᵀ(m x k). */
function transposeMul(a: Matrix, b: Matrix): Matrix {
  if (a.rows !== b.rows) throw new RangeError(`transposeMul: (${a.rows} x ${a.cols})ᵀ by ${b.rows} x ${b.cols}`);
  const { rows: m, cols: n } = a;
  const k = b.cols;
  const out = new Float64Array(n * k);
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < n; i++) {
      const ari = a.data[r * n + i]!;
      if (ari === 0) continue;
      for (let c = 0; c < k; c++) out[i * k + c]! += ari * b.data[r * k + c]!;
    }
  }
  return { rows: n, cols: k, data: out };
}

/** The lower triangle of XᵀX (d x d) when n >= d, else of XXᵀ (n x n): the Gram matrix of the smaller system. */
function gram(x: Matrix): { size: number; primal: boolean; data: Float64Array } {
  const { rows: n, cols: d } = x;
  if (n >= d) {
    const g = new Float64Array(d * d);
    for (let r = 0; r < n; r++) {
      const row = x.data.subarray(r * d, (r + 1) * d);
      for (let i = 0; i < d; i++) {
        const xi = row[i]!;
        if (xi === 0) continue;
        for (let j = 0; j <= i; j++) g[i * d + j]! += xi * row[j]!;
      }
    }
    return { size: d, primal: true, data: g };
  }
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = x.data.subarray(i * d, (i + 1) * d);
    for (let j = 0; j <= i; j++) {
      const rj = x.data.subarray(j * d, (j + 1) * d);
      let s = 0;
      for (let c = 0; c < d; c++) s += ri[c]! * rj[c]!;
      g[i * n + j] = s;
    }
  }
  return { size: n, primal: false, data: g };
}

/** W (d x k) solving (XᵀX + λI) W = XᵀY, for each λ (> 0) in turn. */
export function ridgeWeights(x: Matrix, y: Matrix, lambdas: readonly number[]): Matrix[] {
  if (x.rows !== y.rows) throw new RangeError(`ridgeWeights: ${x.rows} rows of X, ${y.rows} of Y`);
  for (const l of lambdas) if (!(l > 0)) throw new RangeError(`ridgeWeights: λ must be positive, got ${l}`);
  const g = gram(x);
  const m = g.size;
  const k = y.cols;
  // the right-hand side: XᵀY in the primal system, Y in the dual one
  const rhs = g.primal ? transposeMul(x, y).data : y.data;
  return lambdas.map((lambda) => {
    const a = Float64Array.from(g.data);
    for (let i = 0; i < m; i++) a[i * m + i]! += lambda;
    const solved: Matrix = { rows: m, cols: k, data: choleskySolve(cholesky(a, m), m, rhs, k) };
    return g.primal ? solved : transposeMul(x, solved);
  });
}

/** Per column: the mean and standard deviation of the fit rows (a zero deviation taken as 1: a constant column becomes 0). */
export interface Standardiser {
  readonly mean: Float64Array;
  readonly scale: Float64Array;
}

export function fitStandardiser(x: Matrix): Standardiser {
  const { rows: n, cols: d } = x;
  const mean = new Float64Array(d);
  const scale = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j]! += x.data[r * d + j]! / n;
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) {
      const v = x.data[r * d + j]! - mean[j]!;
      scale[j]! += (v * v) / n;
    }
  }
  for (let j = 0; j < d; j++) scale[j] = scale[j]! > 0 ? Math.sqrt(scale[j]!) : 1;
  return { mean, scale };
}

export function standardise(x: Matrix, s: Standardiser): Matrix {
  const d = x.cols;
  const data = new Float64Array(x.data.length);
  for (let i = 0; i < data.length; i++) data[i] = (x.data[i]! - s.mean[i % d]!) / s.scale[i % d]!;
  return { rows: x.rows, cols: d, data };
}

/** A one-vs-rest ridge classifier fitted once for several λ. */
export interface RidgeClassifier {
  /** the fit rows' classes, sorted: the score columns */
  readonly classes: readonly string[];
  readonly lambdas: readonly number[];
  readonly standardiser: Standardiser;
  /** the fit rows' class frequencies: each score's intercept */
  readonly intercept: Float64Array;
  /** per λ, W [d, classes] */
  readonly weights: readonly Matrix[];
}

export function fitRidgeClassifier(x: Matrix, labels: readonly string[], lambdas: readonly number[]): RidgeClassifier {
  if (labels.length !== x.rows) throw new RangeError(`fitRidgeClassifier: ${labels.length} labels for ${x.rows} rows`);
  if (x.rows === 0) throw new RangeError('fitRidgeClassifier: no fit rows');
  const classes = [...new Set(labels)].sort();
  const index = new Map(classes.map((c, i) => [c, i]));
  const k = classes.length;
  const y = new Float64Array(x.rows * k);
  labels.forEach((l, r) => (y[r * k + index.get(l)!] = 1));
  const intercept = new Float64Array(k);
  labels.forEach((l) => (intercept[index.get(l)!]! += 1 / labels.length));
  const standardiser = fitStandardiser(x);
  const weights = ridgeWeights(standardise(x, standardiser), { rows: x.rows, cols: k, data: y }, lambdas);
  return { classes, lambdas, standardiser, intercept, weights };
}

/** The predicted class of each row of `x` with the classifier's `l`-th λ. */
export function predictRidge(c: RidgeClassifier, x: Matrix, l: number): string[] {
  const scores = matMul(standardise(x, c.standardiser), c.weights[l]!);
  const k = c.classes.length;
  return Array.from({ length: x.rows }, (_, r) => {
    let best = 0;
    let bestScore = -Infinity;
    for (let j = 0; j < k; j++) {
      const s = scores.data[r * k + j]! + c.intercept[j]!;
      if (s > bestScore) {
        bestScore = s;
        best = j;
      }
    }
    return c.classes[best]!;
  });
}
