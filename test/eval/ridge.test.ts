/**
 * src/eval/ridge.ts: the Cholesky factor and solve on a 2 x 2 system worked by hand, ridge weights
 * against the one-column closed form and against the normal equations with more rows than
 * columns and fewer (the primal and the dual system), standardisation, and a one-vs-rest
 * classifier that gets a linearly separable problem right.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cholesky, choleskySolve, fitRidgeClassifier, fitStandardiser, fromRows, matMul, predictRidge, ridgeWeights, standardise, type Matrix } from '../../src/eval/ridge.js';
import { Rng } from '../../src/rng.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

function randomMatrix(rng: Rng, rows: number, cols: number): Matrix {
  return { rows, cols, data: Float64Array.from({ length: rows * cols }, () => rng.uniform(-1, 1)) };
}

test('cholesky and solve: [[4, 2], [2, 3]] = L Lᵀ with L = [[2, 0], [1, √2]]; A x = (2, 1) gives x = (0.5, 0)', () => {
  const a = Float64Array.from([4, 2, 2, 3]);
  const l = cholesky(a, 2);
  close(l, [2, 0, 1, Math.SQRT2], 1e-15, 'L');
  close(choleskySolve(l, 2, Float64Array.from([2, 1]), 1), [0.5, 0], 1e-15, 'x');
  // two right-hand sides at once: the columns of A itself give the identity
  close(choleskySolve(l, 2, a, 2), [1, 0, 0, 1], 1e-15, 'A⁻¹A');
  assert.throws(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2), /not positive definite/);
});

test('ridge weights, one column: w = Σxy / (Σx² + λ)', () => {
  const x = fromRows([[1], [2], [3]], 1);
  const y = fromRows([[1], [2], [2]], 1);
  const [w1, w10] = ridgeWeights(x, y, [1, 10]);
  close(w1!.data, [11 / 15], 1e-15, 'λ 1');
  close(w10!.data, [11 / 24], 1e-15, 'λ 10');
  assert.throws(() => ridgeWeights(x, y, [0]), /λ must be positive/);
});

test('ridge weights satisfy (XᵀX + λI) W = XᵀY with more rows than columns (primal) and fewer (dual)', () => {
  const rng = new Rng(4);
  for (const [n, d] of [[9, 4], [4, 9]] as const) {
    const x = randomMatrix(rng, n, d);
    const y = randomMatrix(rng, n, 3);
    const xt: Matrix = { rows: d, cols: n, data: Float64Array.from({ length: d * n }, (_, i) => x.data[(i % n) * d + Math.floor(i / n)]!) };
    for (const lambda of [1e-3, 0.5, 100]) {
      const [w] = ridgeWeights(x, y, [lambda]);
      const lhs = matMul(matMul(xt, x), w!);
      for (let i = 0; i < d; i++) for (let c = 0; c < 3; c++) lhs.data[i * 3 + c]! += lambda * w!.data[i * 3 + c]!;
      close(lhs.data, matMul(xt, y).data, 1e-9, `${n} x ${d}, λ ${lambda}`);
    }
  }
});

test('standardisation: zero mean and unit deviation on the fit rows; a constant column becomes 0', () => {
  const x = fromRows([[1, 5, 2], [3, 5, 4], [5, 5, 9]], 3);
  const s = fitStandardiser(x);
  close(s.mean, [3, 5, 5], 1e-15, 'mean');
  close(s.scale, [Math.sqrt(8 / 3), 1, Math.sqrt(26 / 3)], 1e-15, 'scale');
  const z = standardise(x, s);
  close([z.data[1]!, z.data[4]!, z.data[7]!], [0, 0, 0], 0, 'constant column');
  close([z.data[0]!, z.data[3]!, z.data[6]!], [-2 / Math.sqrt(8 / 3), 0, 2 / Math.sqrt(8 / 3)], 1e-15, 'first column');
});

test('a linearly separable problem (three clusters, noise columns) is classified perfectly; classes sorted, intercept = class shares', () => {
  const rng = new Rng(11);
  const centres: Record<string, [number, number]> = { b: [4, 0], a: [-4, 0], c: [0, 4] };
  const draw = (count: number): { rows: number[][]; labels: string[] } => {
    const labels = Array.from({ length: count }, (_, i) => ['a', 'b', 'c', 'c'][i % 4]!);
    return { labels, rows: labels.map((l) => [...centres[l]!.map((v) => v + rng.uniform(-1, 1)), rng.uniform(-3, 3), rng.uniform(-3, 3)]) };
  };
  const fit = draw(40);
  const held = draw(40);
  const lambdas = [0.01, 1, 10];
  const c = fitRidgeClassifier(fromRows(fit.rows, 4), fit.labels, lambdas);
  assert.deepEqual(c.classes, ['a', 'b', 'c']);
  close(c.intercept, [0.25, 0.25, 0.5], 1e-15, 'intercept');
  lambdas.forEach((_, l) => assert.deepEqual(predictRidge(c, fromRows(held.rows, 4), l), held.labels, `λ ${lambdas[l]}`));
});
