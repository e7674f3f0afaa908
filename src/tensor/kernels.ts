/**
 * Kernels the WASM backend lacks and PS3 needs. `UnsortedSegmentSum` is the gradient of `gather`
 * (token and position embeddings, selected patches); it is computed in plain JS on the backend's
 * heap, which is exact and cheap at the sizes involved. `Slice` is replaced: the backend's own
 * copies the whole input out of the heap into a fresh array on every call (a head's slice of the
 * attention's queries copied all of them, per head and image), this one reads the heap in place.
 * `Identity` is replaced too: the engine clones every tensor a recorded op saves for its gradient,
 * and the backend's clone copied the data, where sharing it (as the cpu backend and the backend's
 * own reshape do; tensors are immutable) costs nothing.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendName } from './engine.js';

interface HeapBackend {
  incRef(dataId: object): void;
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** out[s, ...] = sum of x[i, ...] over rows i with segmentIds[i] = s (ids outside [0, n) dropped). */
export function unsortedSegmentSumValues(
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  rows: number,
  rowSize: number,
  numSegments: number,
): Float32Array {
  const out = new Float32Array(numSegments * rowSize);
  for (let i = 0; i < rows; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    for (let j = 0; j < rowSize; j++) out[s * rowSize + j]! += x[i * rowSize + j]!;
  }
  return out;
}

/**
 * x[begin : begin + size] of a row-major array of `shape` into `out` (row-major, `size`): the
 * innermost run of each index is one contiguous copy.
 */
export function sliceInto(
  x: Float32Array | Int32Array | Uint8Array,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  out: Float32Array | Int32Array | Uint8Array,
): void {
  const rank = shape.length;
  if (rank === 0) {
    out[0] = x[0]!;
    return;
  }
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  const inner = size[rank - 1]!;
  const runs = size.slice(0, -1).reduce((a, c) => a * c, 1);
  if (inner === 0 || runs === 0) return;
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (let r = 0; r < runs; r++) {
    let from = begin[rank - 1]!;
    for (let a = 0; a < rank - 1; a++) from += (begin[a]! + index[a]!) * strides[a]!;
    out.set(x.subarray(from, from + inner), r * inner);
    for (let a = rank - 2; a >= 0; a--) {
      if (++index[a]! < size[a]!) break;
      index[a] = 0;
    }
  }
}

const overridden = new Set<string>();

/**
 * Replace a WASM kernel for numeric inputs with `numeric`, keeping the original for strings;
 * once per process (re-registering would wrap the replacement in itself).
 */
function overrideWasmKernel(kernelName: string, numeric: (x: tf.TensorInfo, args: Parameters<tf.KernelFunc>[0]) => tf.TensorInfo): void {
  const original = tf.getKernel(kernelName, 'wasm');
  if (!original || overridden.has(kernelName)) return;
  overridden.add(kernelName);
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs['x'] as tf.TensorInfo;
      return x.dtype === 'string' ? original.kernelFunc(args) : numeric(x, args);
    },
  });
}

/** Identity shares the input's data instead of copying it (the tape keeps such copies of every saved tensor). */
function registerSharedIdentity(): void {
  overrideWasmKernel('Identity', (x, args) => {
    (args.backend as unknown as HeapBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}

/** Slice reads the input where it lies on the heap instead of copying all of it out per call. */
function registerHeapSlice(): void {
  overrideWasmKernel('Slice', (x, args) => {
    const heap = args.backend as unknown as HeapBackend;
    const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
    const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    // the output first: allocating may grow the heap, which would leave older views stale
    const out = heap.makeOutput(size_, x.dtype);
    sliceInto(heap.typedArrayFromHeap(x), x.shape, begin_, size_, heap.typedArrayFromHeap(out));
    return out;
  });
}

export function registerMissingKernels(backend: BackendName): void {
  registerMatMulGradient();
  if (backend !== 'wasm') return;
  registerHeapSlice();
  registerSharedIdentity();
  const have = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  if (!have.has('UnsortedSegmentSum')) {
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend: b, attrs }) => {
        const heap = b as unknown as HeapBackend;
        const x = inputs['x'] as tf.TensorInfo;
        const ids = inputs['segmentIds'] as tf.TensorInfo;
        const numSegments = (attrs as { numSegments: number }).numSegments;
        const rows = ids.shape.reduce((a, c) => a * c, 1);
        const rowSize = x.shape.slice(ids.shape.length).reduce((a, c) => a * c, 1);
        const values = unsortedSegmentSumValues(heap.readSync(x.dataId), heap.readSync(ids.dataId), rows, rowSize, numSegments);
        const out = heap.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype);
        heap.typedArrayFromHeap(out).set(values);
        return out;
      },
    });
  }
}

/** Transpose the last two axes. */
function swapLast(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  perm[t.rank - 1] = t.rank - 2;
  perm[t.rank - 2] = t.rank - 1;
  return tf.transpose(t, perm);
}

/** Sum `grad` down to `shape` over the batch axes that were broadcast. */
function unbroadcast(grad: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (grad.rank === shape.length && grad.shape.every((d, i) => d === shape[i])) return grad;
  const axes = tf.backend_util.getReductionAxes(shape.slice(0, -2), grad.shape.slice(0, -2));
  return tf.reshape(axes.length ? tf.sum(grad, axes) : grad, [...shape]);
}

/**
 * The gradient of BatchMatMul with every product untransposed: TensorFlow.js's own gradient
 * multiplies by transposed operands, which its WASM matmul runs an order of magnitude slower
 * than an explicit transpose followed by a plain product.
 */
export function registerMatMulGradient(): void {
  tf.registerGradient({
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const g = dy as tf.Tensor;
      const A = transposeA ? swapLast(a) : a; // the operands as multiplied
      const Bm = transposeB ? swapLast(b) : b;
      const dA = tf.matMul(g, swapLast(Bm)); // d(A) for C = A B
      const dB = tf.matMul(swapLast(A), g);
      return {
        a: () => unbroadcast(transposeA ? swapLast(dA) : dA, a.shape),
        b: () => unbroadcast(transposeB ? swapLast(dB) : dB, b.shape),
      };
    },
  });
}
