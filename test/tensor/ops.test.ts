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

/** The same values through a function on the cpu backend and on wasm: [shape..., -1, values...] each. */
async function onBothBackends(f: () => tf.Tensor | tf.Tensor[]): Promise<number[][][]> {
  const results: number[][][] = [];
  for (const backend of ['cpu', 'wasm'] as const) {
    await tf.setBackend(backend);
    const ys = tf.tidy(() => [f()].flat());
    results.push(await Promise.all(ys.map(async (y) => [...y.shape, -1, ...(await y.data())])));
    tf.dispose(ys);
  }
  return results;
}

test('wasm SplitV (cut in place on the heap) splits as the cpu backend does, any axis, float and int', async () => {
  const cases: Array<{ shape: number[]; sizes: number[] | number; axis: number }> = [
    { shape: [2, 5, 9], sizes: 3, axis: -1 },
    { shape: [2, 5, 9], sizes: [1, 4], axis: 1 },
    { shape: [6, 4], sizes: [2, -1, 1], axis: 0 },
    { shape: [3, 2, 4, 6], sizes: [2, 4], axis: 3 },
  ];
  for (const dtype of ['float32', 'int32'] as const) {
    for (const c of cases) {
      const n = c.shape.reduce((a, d) => a * d, 1);
      const [cpu, wasm] = await onBothBackends(() => tf.split(tf.tensor(Array.from({ length: n }, (_, i) => i * 7 - 5), c.shape, dtype), c.sizes, c.axis));
      assert.deepEqual(wasm, cpu, `${dtype} ${JSON.stringify(c)}`);
    }
  }
});

test('wasm GatherV2 (whole rows on the heap) gathers as the cpu backend does, on any axis, repeats included; a bad index is refused', async () => {
  const cases: Array<{ shape: number[]; indices: number[]; indexShape: number[]; axis: number }> = [
    { shape: [7, 3], indices: [6, 0, 0, 2], indexShape: [4], axis: 0 },
    { shape: [5, 70], indices: [1, 4, 1], indexShape: [3], axis: 0 },
    { shape: [2, 6, 4], indices: [5, 0, 3, 3], indexShape: [2, 2], axis: 1 },
    { shape: [3, 4, 5], indices: [4, 0], indexShape: [2], axis: 2 },
    { shape: [4, 2], indices: [], indexShape: [0], axis: 0 },
  ];
  for (const dtype of ['float32', 'int32'] as const) {
    for (const c of cases) {
      const n = c.shape.reduce((a, d) => a * d, 1);
      const [cpu, wasm] = await onBothBackends(() => tf.gather(tf.tensor(Array.from({ length: n }, (_, i) => i * 3 + 1), c.shape, dtype), tf.tensor(c.indices, c.indexShape, 'int32'), c.axis));
      assert.deepEqual(wasm, cpu, `${dtype} ${JSON.stringify(c)}`);
    }
  }
  await tf.setBackend('wasm');
  assert.throws(() => tf.gather(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor1d([0, 2], 'int32')), /index 2 is not in \[0, 1\]/);
});

test('wasm depthwise conv gradients (ours) equal the cpu backend\'s: strides, channel multipliers, same / valid / explicit padding', async () => {
  const cases: Array<{ x: [number, number, number, number]; f: [number, number, number, number]; stride: number | [number, number]; pad: 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]] }> = [
    { x: [2, 9, 8, 4], f: [7, 7, 4, 1], stride: 1, pad: 3 },
    { x: [1, 9, 8, 3], f: [3, 3, 3, 2], stride: 2, pad: 'same' },
    { x: [2, 7, 6, 4], f: [3, 2, 4, 1], stride: 1, pad: 'valid' },
    { x: [1, 10, 10, 2], f: [5, 5, 2, 3], stride: [2, 1], pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  ];
  for (const c of cases) {
    const size = (s: number[]): number => s.reduce((a, d) => a * d, 1);
    const [cpu, wasm] = await onBothBackends(() => {
      const x = tf.tensor4d(hashInput(size(c.x), 11), c.x);
      const filter = tf.tensor4d(hashInput(size(c.f), 12), c.f);
      const conv = (a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D => tf.depthwiseConv2d(a, b, c.stride, c.pad);
      const r = tf.tensor(hashInput(size(conv(x, filter).shape), 13), conv(x, filter).shape);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), r)))([x, filter]);
    });
    cpu!.forEach((g, i) => assertClose(Float32Array.from(wasm![i]!), Float32Array.from(g), 1e-5, `${JSON.stringify(c)} gradient ${i}`));
  }
});

test('Sum and Mean gradients (a broadcast of dy) spread each output\'s weight over the values it reduced, any axes, kept dims or not', async () => {
  await tf.setBackend('wasm');
  const shape = [2, 3, 4];
  const x = tf.tensor(hashInput(24, 21), shape);
  const cases: Array<{ axis: number | number[] | undefined; keepDims: boolean }> = [
    { axis: 1, keepDims: false },
    { axis: -1, keepDims: true },
    { axis: [0, 2], keepDims: false },
    { axis: undefined, keepDims: false },
  ];
  for (const { axis, keepDims } of cases) {
    for (const op of ['sum', 'mean'] as const) {
      const reduce = (v: tf.Tensor): tf.Tensor => (op === 'sum' ? tf.sum(v, axis, keepDims) : tf.mean(v, axis, keepDims));
      const outShape = reduce(x).shape;
      const r = tf.tensor(hashInput(outShape.reduce((a, d) => a * d, 1), 22), outShape);
      const grad = await tf.grad((v: tf.Tensor) => tf.sum(tf.mul(reduce(v), r)))(x).data();
      // expected: each value gets the weight of the output it went into (divided by the count for a mean)
      const axes = axis === undefined ? [0, 1, 2] : [axis].flat().map((a) => (a < 0 ? a + 3 : a));
      const count = axes.reduce((n, a) => n * shape[a]!, 1);
      const rv = await r.data();
      const outDims = shape.map((d, i) => (axes.includes(i) ? 1 : d));
      for (let i = 0; i < 24; i++) {
        const at = [Math.floor(i / 12), Math.floor(i / 4) % 3, i % 4].map((c, k) => (axes.includes(k) ? 0 : c));
        const o = (at[0]! * outDims[1]! + at[1]!) * outDims[2]! + at[2]!;
        const want = rv[o]! / (op === 'mean' ? count : 1);
        assert.ok(Math.abs(grad[i]! - want) < 1e-6, `${op} axis ${JSON.stringify(axis)} keepDims ${keepDims}: grad[${i}] ${grad[i]} vs ${want}`);
      }
      r.dispose();
    }
  }
  x.dispose();
});
