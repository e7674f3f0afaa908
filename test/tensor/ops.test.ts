/**
 * Differentiable tensor ops against PyTorch 1.13: forward values, and gradients of
 * loss = sum(op(x) * R) (R a fixed pseudo-random weighting) from torch autograd
 * (test/data/make_numerics.py). Every case runs on both backends; each test selects its backend
 * itself, so results do not depend on test order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf, BACKENDS } from '../../src/tensor/engine.js';
import { registerMissingKernels } from '../../src/tensor/kernels.js';
import { adaptiveMaxPool2d, resize2d } from '../../src/tensor/ops.js';
import { assertClose, f32, hashInput, loadNumerics, quantize, type OpCase } from './numerics-fixture.js';

const data = loadNumerics();
// float32 matmuls here and float32 accumulation in PyTorch: observed errors are <= 2e-6 (the
// largest on antialiased gradients, sums of up to ~40 products), so 1e-5 leaves margin.
const TOL = 1e-5;

await initEngine();
// initEngine prepares only the backend it picks; these tests switch between both, so give wasm the
// kernels initEngine would (idempotent), e.g. UnsortedSegmentSum for gather's gradient.
registerMissingKernels('wasm');

function run(c: OpCase, x: tf.Tensor): tf.Tensor {
  if (c.kind === 'resize2d') return resize2d(x, c.rowAxis, c.outH, c.outW, c.mode!, c.cropH, c.cropW);
  return adaptiveMaxPool2d(x, c.rowAxis, c.outH, c.outW);
}

function input(c: OpCase): tf.Tensor {
  let xv = hashInput(c.shape.reduce((a, d) => a * d, 1), c.salt);
  if (c.quantum !== undefined) xv = quantize(xv, c.quantum);
  for (const i of c.nanAt ?? []) xv[i] = NaN;
  return tf.tensor(xv, c.shape);
}

function describeCase(c: OpCase): string {
  const crop = c.cropH !== undefined ? ` cropped to ${c.cropH}x${c.cropW}` : '';
  const extra = c.quantum !== undefined ? ' with ties' : c.nanAt ? ' with NaN' : '';
  return `${c.kind}${c.mode ? ` ${c.mode}` : ''} [${c.shape.join(',')}] axis ${c.rowAxis} -> ${c.outH}x${c.outW}${crop}${extra}`;
}

/** The ops must not leave intermediates behind (they tidy). */
function assertNoLeak(before: number): void {
  const now = tf.memory().numTensors;
  if (now !== before) throw new Error(`leaked ${now - before} tensors`);
}

for (const backend of BACKENDS) {
  for (const c of data.ops) {
    test(`${describeCase(c)} on ${backend}: value matches PyTorch`, async (t) => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const x = input(c);
      const y = run(c, x);
      const err = assertClose(await y.data(), f32(c.out), TOL, 'value');
      t.diagnostic(`max |diff| ${err.toExponential(2)}`);
      tf.dispose([x, y]);
      assertNoLeak(before);
    });

    test(`${describeCase(c)} on ${backend}: gradient matches torch autograd`, async (t) => {
      await tf.setBackend(backend);
      // tfjs-core's Node bundle registers no gradients on its own; say so plainly rather than
      // failing deep inside the tape.
      if (!tf.getGradient(tf.Sum)) {
        throw new Error('no gradients are registered with tfjs-core (initEngine must register them), so tf.grad cannot run');
      }
      const before = tf.memory().numTensors;
      const x = input(c);
      const r = tf.tensor(hashInput(c.out.length, c.rSalt));
      const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.reshape(run(c, v), [-1]), r)))(x);
      const err = assertClose(await grad.data(), f32(c.grad), TOL, 'gradient');
      t.diagnostic(`max |diff| ${err.toExponential(2)}`);
      tf.dispose([x, r, grad]);
      assertNoLeak(before);
    });
  }
}

test('wasm Slice (read in place on the heap) cuts what the cpu backend cuts, any rank, float and int', async () => {
  const cases: Array<{ shape: number[]; begin: number[]; size: number[] }> = [
    { shape: [7], begin: [2], size: [4] },
    { shape: [5, 6], begin: [1, 2], size: [3, 3] },
    { shape: [5, 6], begin: [2, 0], size: [2, -1] },
    { shape: [2, 5, 8], begin: [1, 0, 4], size: [1, 5, 4] },
    { shape: [3, 4, 5, 6], begin: [1, 1, 0, 2], size: [2, 2, 5, 3] },
    { shape: [2, 3, 2, 2, 3], begin: [0, 1, 1, 0, 1], size: [2, 2, 1, 2, 2] },
    { shape: [4, 3], begin: [1, 1], size: [0, 2] },
  ];
  for (const dtype of ['float32', 'int32'] as const) {
    for (const c of cases) {
      const n = c.shape.reduce((a, d) => a * d, 1);
      const values = Array.from({ length: n }, (_, i) => i * 3 + 1);
      const results: number[][] = [];
      for (const backend of ['cpu', 'wasm'] as const) {
        await tf.setBackend(backend);
        const x = tf.tensor(values, c.shape, dtype);
        const y = tf.slice(x, c.begin, c.size);
        results.push([...y.shape, -1, ...(await y.data())]);
        tf.dispose([x, y]);
      }
      assert.deepEqual(results[1], results[0], `${dtype} ${JSON.stringify(c)}`);
    }
  }
});
