/**
 * Differentiable tensor versions of the PyTorch resampling PS3 needs, built from the exact
 * per-axis weights in `resample.ts`: a separable resize is two matmuls with constant matrices,
 * so autograd gives exact gradients without extra kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { adaptiveMaxPoolIndex, resampleMatrix, tapsFor, type ResampleMode } from './resample.js';

/** A shape split around the two axes at `rowAxis`: their sizes, the axes before and after, and their products. */
function aroundAxes(shape: readonly number[], rowAxis: number): { h: number; w: number; before: number[]; after: number[]; pre: number; post: number } {
  const before = shape.slice(0, rowAxis);
  const after = shape.slice(rowAxis + 2);
  return { h: shape[rowAxis]!, w: shape[rowAxis + 1]!, before, after, pre: before.reduce((a, c) => a * c, 1), post: after.reduce((a, c) => a * c, 1) };
}

/**
 * Resize the two axes `rowAxis`, `rowAxis + 1` of `x` from [h, w] to [outH, outW]; the output may be
 * cropped to its first `cropH` rows and `cropW` columns (PS3 resamples to a square, then crops).
 */
export function resize2d(
  x: tf.Tensor,
  rowAxis: number,
  outH: number,
  outW: number,
  mode: ResampleMode,
  cropH = outH,
  cropW = outW,
): tf.Tensor {
  return tf.tidy(() => {
    const { h, w, before, after, pre, post } = aroundAxes(x.shape, rowAxis);
    const rows = tf.tensor2d(resampleMatrix(tapsFor(mode, h, outH), cropH), [cropH, h]);
    const cols = tf.tensor2d(resampleMatrix(tapsFor(mode, w, outW), cropW), [cropW, w]);
    // Each pass is one 2-d matmul with the resized axis moved to the front: TensorFlow.js's WASM
    // backend runs batched matmuls far slower than 2-d ones.
    // rows: [h, pre * w * post] -> [cropH, pre * w * post]
    let y = tf.reshape(tf.transpose(tf.reshape(x, [pre, h, w * post]), [1, 0, 2]), [h, pre * w * post]);
    y = tf.transpose(tf.reshape(tf.matMul(rows, y), [cropH, pre, w, post]), [2, 1, 0, 3]); // [w, pre, cropH, post]
    // cols: [w, pre * cropH * post] -> [cropW, pre * cropH * post]
    y = tf.matMul(cols, tf.reshape(y, [w, pre * cropH * post]));
    y = tf.transpose(tf.reshape(y, [cropW, pre, cropH, post]), [1, 2, 0, 3]); // [pre, cropH, cropW, post]
    return tf.reshape(y, [...before, cropH, cropW, ...after]);
  });
}

/**
 * `F.adaptive_max_pool2d` over axes `rowAxis`, `rowAxis + 1`, as a gather of the elements PyTorch
 * picks. Which element wins is data-dependent, so it is found on the host (`dataSync`, cheap on the
 * cpu and wasm backends); gathering then makes the gradient PyTorch's: each window's gradient goes
 * to one element, the first maximum in row-major order. (A pool built from `tf.max` sends it to
 * every tied maximum instead, which torch never does; ties are common after nearest upsampling.)
 */
export function adaptiveMaxPool2d(x: tf.Tensor, rowAxis: number, outH: number, outW: number): tf.Tensor {
  return tf.tidy(() => {
    const { h, w, before, after, pre, post } = aroundAxes(x.shape, rowAxis);
    const index = adaptiveMaxPoolIndex(x.dataSync(), pre, h, w, post, outH, outW);
    const picked = tf.gather(tf.reshape(x, [-1]), tf.tensor1d(index, 'int32'));
    return tf.reshape(picked, [...before, outH, outW, ...after]);
  });
}

/**
 * `tf.grads(f)(xs, dy)` callable from inside a custom gradient (gradient checkpointing
 * recomputes a block there). TensorFlow.js's engine keeps a single active tape: a gradient
 * computed during another's backward pass replaces it and, when done, clears it, and the outer
 * pass then fails on its own clean-up. So the outer tape is set aside and put back.
 */
export function nestedGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    state.activeTape = outer;
  }
}
