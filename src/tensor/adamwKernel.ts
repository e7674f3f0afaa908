/**
 * One AdamW step for one tensor as a single kernel: new weights, first and second moments in one
 * pass over the four arrays. As a dozen TensorFlow.js ops the step made a dozen full-size
 * temporaries per tensor, and a 4K model's position residuals are most of its weights (the 3780
 * scale's alone is 9.3 M floats, every step, though a look touches a few thousand rows).
 *
 * Float32 in and out, as PyTorch's: each moment is rounded to float32 before the update reads
 * it, and the update is computed in double and rounded once.
 */
import * as tf from '@tensorflow/tfjs';

export const ADAMW_STEP = 'PS3AdamWStep';

export interface AdamWStepAttrs {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  /** bias corrections 1 - beta^step */
  readonly correction1: number;
  readonly correction2: number;
  readonly eps: number;
  /** the weights' factor before the step: 1 - lr * weight decay, or 1 where there is no decay */
  readonly decay: number;
}

/**
 * p <- p * decay - lr * (m / c1) / (sqrt(v / c2) + eps), with m <- b1 m + (1 - b1) g and
 * v <- b2 v + (1 - b2) g^2, into `outP`, `outM`, `outV` (which may be the inputs themselves).
 */
export function adamwStepValues(
  p: ArrayLike<number>,
  g: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  a: AdamWStepAttrs,
  outP: Float32Array,
  outM: Float32Array,
  outV: Float32Array,
): void {
  const { lr, beta1, beta2, correction1, correction2, eps, decay } = a;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    const mi = Math.fround(beta1 * m[i]! + (1 - beta1) * gi);
    const vi = Math.fround(beta2 * v[i]! + (1 - beta2) * gi * gi);
    outM[i] = mi;
    outV[i] = vi;
    outP[i] = p[i]! * decay - (lr * (mi / correction1)) / (Math.sqrt(vi / correction2) + eps);
  }
}

interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}

interface CpuStore {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

/** The kernel on the backends the trainer runs on: wasm reads and writes its heap in place, cpu its arrays. */
export function registerAdamWKernel(backend: 'wasm' | 'cpu'): void {
  if (tf.getKernel(ADAMW_STEP, backend)) return;
  tf.registerKernel({
    kernelName: ADAMW_STEP,
    backendName: backend,
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const [p, g, m, v] = (['p', 'g', 'm', 'v'] as const).map((k) => inputs[k] as tf.TensorInfo) as [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo];
      const a = attrs as unknown as AdamWStepAttrs;
      const n = p.shape.reduce((x, d) => x * d, 1);
      for (const t of [g, m, v]) {
        if (t.shape.reduce((x, d) => x * d, 1) !== n) throw new Error(`AdamW step: [${t.shape}] does not match the weights' [${p.shape}]`);
      }
      if (backend === 'wasm') {
        const heap = b as unknown as WasmHeap;
        // the outputs first: allocating may grow the heap, which would leave older views stale
        const outs = [0, 1, 2].map(() => heap.makeOutput([...p.shape], 'float32'));
        const [oP, oM, oV] = outs.map((o) => heap.typedArrayFromHeap(o)) as [Float32Array, Float32Array, Float32Array];
        const [vp, vg, vm, vv] = [p, g, m, v].map((t) => heap.typedArrayFromHeap(t));
        adamwStepValues(vp!, vg!, vm!, vv!, a, oP, oM, oV);
        return outs;
      }
      const store = b as unknown as CpuStore;
      const [vp, vg, vm, vv] = [p, g, m, v].map((t) => store.data.get(t.dataId).values);
      const out = [new Float32Array(n), new Float32Array(n), new Float32Array(n)] as const;
      adamwStepValues(vp!, vg!, vm!, vv!, a, ...out);
      return out.map((values) => store.makeTensorInfo([...p.shape], 'float32', values));
    },
  });
}
