/**
 * Kernels the WASM backend lacks and PS3 needs. `UnsortedSegmentSum` is the gradient of `gather`
 * (token and position embeddings, selected patches); it is computed in plain JS on the backend's
 * heap, which is exact and cheap at the sizes involved. The two gradients of the depthwise conv
 * (the selection ConvNeXt's) likewise (depthwise.ts). `Slice` is replaced: the backend's own
 * copies the whole input out of the heap into a fresh array on every call (a head's slice of the
 * attention's queries copied all of them, per head and image), this one reads the heap in place;
 * `SplitV` (the attention's q, k, v) called that copying slice once per part, and is replaced by
 * the same in-place cut. `GatherV2` is replaced: the backend's checked every index with a fresh
 * closure and gathered element by element (~0.3 s for a depthwise conv's windows), this one copies
 * whole rows. `Identity` is replaced too: the engine clones every tensor a recorded op saves for
 * its gradient, and the backend's clone copied the data, where sharing it (as the cpu backend and
 * the backend's own reshape do; tensors are immutable) costs nothing. On both backends, the
 * optimizer's step is one kernel (adamwKernel.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendName } from './engine.js';
import { depthwiseFilterGradient, depthwiseInputGradient, type DepthwiseGeometry } from './depthwise.js';
import { registerAdamWKernel } from './adamwKernel.js';

interface HeapBackend {
  incRef(dataId: object): void;
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/**
 * out[s, ...] = sum of x[i, ...] over rows i with segmentIds[i] = s (ids outside [0, n) dropped),
 * into `out` when given (zeroed first: a heap output holds whatever was there).
 */
export function unsortedSegmentSumValues(
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  rows: number,
  rowSize: number,
  numSegments: number,
  out: Float32Array | Int32Array = new Float32Array(numSegments * rowSize),
): Float32Array | Int32Array {
  out.fill(0);
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

type KernelArgs = Parameters<tf.KernelFunc>[0];
type KernelResult = tf.TensorInfo | tf.TensorInfo[];

/**
 * Replace a WASM kernel for numeric inputs with `numeric`, keeping the original for strings (and
 * for whatever `numeric` hands back to it); once per process (re-registering would wrap the
 * replacement in itself).
 */
function overrideWasmKernel(kernelName: string, numeric: (x: tf.TensorInfo, args: KernelArgs, original: tf.KernelFunc) => KernelResult): void {
  const original = tf.getKernel(kernelName, 'wasm');
  if (!original || overridden.has(kernelName)) return;
  overridden.add(kernelName);
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs['x'] as tf.TensorInfo;
      return x.dtype === 'string' ? original.kernelFunc(args) : numeric(x, args, original.kernelFunc);
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

/** SplitV cuts every part out of the heap in place (the backend's calls its copying slice per part). */
function registerHeapSplitV(): void {
  overrideWasmKernel('SplitV', (x, args) => {
    const heap = args.backend as unknown as HeapBackend;
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const a = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, a);
    // every output first: allocating may grow the heap, which would leave older views stale
    const outs = sizes.map((s) => heap.makeOutput(x.shape.map((d, i) => (i === a ? s : d)), x.dtype));
    const from = heap.typedArrayFromHeap(x);
    const begin = x.shape.map(() => 0);
    outs.forEach((out, i) => {
      sliceInto(from, x.shape, begin, out.shape, heap.typedArrayFromHeap(out));
      begin[a]! += sizes[i]!;
    });
    return outs;
  });
}

/**
 * rows[outer, i, :] = x[outer, indices[i], :] for x seen as [outer, dim, inner]: each row one
 * contiguous copy (or a plain loop when rows are short, where a subarray per row costs more).
 */
export function gatherRowsInto(
  x: Float32Array | Int32Array | Uint8Array,
  outer: number,
  dim: number,
  inner: number,
  indices: ArrayLike<number>,
  out: Float32Array | Int32Array | Uint8Array,
): void {
  const n = indices.length;
  for (let i = 0; i < n; i++) {
    const j = indices[i]!;
    if (!(j >= 0 && j < dim)) throw new RangeError(`gather: index ${j} is not in [0, ${dim - 1}]`);
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      const from = (o * dim + indices[i]!) * inner;
      const to = (o * n + i) * inner;
      if (inner >= 64) out.set(x.subarray(from, from + inner), to);
      else for (let k = 0; k < inner; k++) out[to + k] = x[from + k]!;
    }
  }
}

/** GatherV2 (without batch dims) copies whole rows on the heap. */
function registerHeapGather(): void {
  overrideWasmKernel('GatherV2', (x, args, original) => {
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    if (batchDims !== 0) return original(args);
    const heap = args.backend as unknown as HeapBackend;
    const indices = args.inputs['indices'] as tf.TensorInfo;
    const a = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
    const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
    const ids = heap.readSync(indices.dataId);
    const out = heap.makeOutput([...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)], x.dtype);
    gatherRowsInto(heap.typedArrayFromHeap(x), outer, x.shape[a]!, inner, ids, heap.typedArrayFromHeap(out));
    return out;
  });
}

interface DepthwiseGradAttrs {
  strides: number | [number, number];
  dilations: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function depthwiseGeometry(xShape: readonly number[], filterShape: readonly number[], attrs: DepthwiseGradAttrs): DepthwiseGeometry {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) throw new Error('depthwise conv gradient: dilations other than 1 are not supported');
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    multiplier: info.outChannels / info.inChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

/** A gradient kernel's two inputs' values and shapes -> its output's shape and values. */
type HeapGradient = (attrs: DepthwiseGradAttrs, u: { info: tf.TensorInfo; values: ArrayLike<number> }, v: { info: tf.TensorInfo; values: ArrayLike<number> }) => { shape: number[]; values: Float32Array };

/** The depthwise conv's input and filter gradients in plain JS on the heap (depthwise.ts). */
function registerDepthwiseGradients(have: ReadonlySet<string>): void {
  const gradients: ReadonlyArray<readonly [string, string, string, HeapGradient]> = [
    [
      'DepthwiseConv2dNativeBackpropInput',
      'dy',
      'filter',
      (a, dy, filter) => {
        const shape = (a as DepthwiseGradAttrs & { inputShape: number[] }).inputShape;
        return { shape, values: depthwiseInputGradient(dy.values, filter.values, depthwiseGeometry(shape, filter.info.shape, a)) };
      },
    ],
    [
      'DepthwiseConv2dNativeBackpropFilter',
      'x',
      'dy',
      (a, x, dy) => {
        const shape = (a as DepthwiseGradAttrs & { filterShape: number[] }).filterShape;
        return { shape, values: depthwiseFilterGradient(x.values, dy.values, depthwiseGeometry(x.info.shape, shape, a)) };
      },
    ],
  ];
  for (const [kernelName, first, second, gradient] of gradients) {
    if (have.has(kernelName)) continue;
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend: b, attrs }) => {
        const heap = b as unknown as HeapBackend;
        const [u, v] = [first, second].map((name) => {
          const info = inputs[name] as tf.TensorInfo;
          return { info, values: heap.readSync(info.dataId) };
        }) as [{ info: tf.TensorInfo; values: ArrayLike<number> }, { info: tf.TensorInfo; values: ArrayLike<number> }];
        const { shape, values } = gradient(attrs as unknown as DepthwiseGradAttrs, u, v);
        const out = heap.makeOutput(shape, 'float32');
        heap.typedArrayFromHeap(out).set(values);
        return out;
      },
    });
  }
}

export function registerMissingKernels(backend: BackendName): void {
  registerMatMulGradient();
  registerReductionGradients();
  registerAdamWKernel(backend);
  if (backend !== 'wasm') return;
  registerHeapSlice();
  registerHeapSplitV();
  registerHeapGather();
  registerSharedIdentity();
  const have = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  registerDepthwiseGradients(have);
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
        // the output first: allocating may grow the heap, which would leave older views stale;
        // summed straight into it (at 4K, the top scale's position residual is 37 MB)
        const out = heap.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype);
        const segments = heap.readSync(ids.dataId);
        unsortedSegmentSumValues(heap.typedArrayFromHeap(x), segments, rows, rowSize, numSegments, heap.typedArrayFromHeap(out) as Float32Array | Int32Array);
        return out;
      },
    });
  }
}

/**
 * dy [reduced shape] -> [x's shape]: `dy` spread back over the summed axes, as a product with ones
 * the backend fills (its broadcast, Tile, is several times slower than this product).
 */
function spread(dy: tf.Tensor, x: tf.Tensor, axis: number | number[]): tf.Tensor {
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return tf.mul(tf.reshape(dy, kept), tf.fill(x.shape, 1));
}

/**
 * The gradients of Sum and Mean with their ones made by the backend: TensorFlow.js's own make a
 * ones tensor of the input's shape element by element in JS and copy it to the backend on every
 * backward pass (a loss over a 4K box map's 14 M values).
 */
export function registerReductionGradients(): void {
  tf.registerGradient({
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      return { x: () => spread(dy as tf.Tensor, x, (attrs as unknown as { axis: number | number[] }).axis) };
    },
  });
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const axis = (attrs as unknown as { axis: number | number[] }).axis;
      const count = tf.util.parseAxisParam(axis, x.shape).reduce((n, a) => n * x.shape[a]!, 1);
      return { x: () => tf.div(spread(dy as tf.Tensor, x, axis), count) };
    },
  });
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
