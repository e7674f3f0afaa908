/**
 * The shallow ConvNeXt that gives the selector high-res detail: a k x k stride-k stem on the
 * image resized to 1512 x 1512, LayerNorm2d, ConvNeXt blocks, a 1 x 1 projection. Feature maps
 * stay channels-last [B, h, w, C] so LayerNorms and 1 x 1 convs are plain last-axis ops.
 */
import { tf } from '../tensor/engine.js';
import type { VisionConfig } from '../io/config.js';
import { gelu, layerNorm, linear } from './layers.js';
import { patchify } from './vit.js';
import type { Weights } from './weights.js';

/** The selection ConvNeXt's weights' prefix. */
export const CONVNET_PREFIX = 'vision_model.highres_selection_feature_module.';
const M = CONVNET_PREFIX.slice(0, -1);

/** The convnet's fixed input size, whatever the model's scales (the reference hard-codes it). */
export const CONVNET_INPUT = 1512;

/** The convnet on another engine: image [B, 3, 1512, 1512] (normalised) -> features [B, h, w, out]. */
export type ConvnetRunner = (image: Float32Array, batch: number) => Promise<tf.Tensor>;

/** Picks the runner of a model's convnet; null means TensorFlow.js's `shallowConvNet`. */
export type DefaultConvnet = (w: Weights, cfg: VisionConfig) => ConvnetRunner | null;

// TensorFlow.js until the engine layer installs another (as for the trunk: see vit.ts)
let defaultConvnet: DefaultConvnet = () => null;

export function setDefaultConvnet(pick: DefaultConvnet): void {
  defaultConvnet = pick;
}

/** The convnet's runner for frozen weights, unless TensorFlow.js is asked for; trainable weights stay on TensorFlow.js. */
export function convnetFor(w: Weights, cfg: VisionConfig, tfjsOnly: boolean): ConvnetRunner | null {
  return tfjsOnly || w.trainable ? null : defaultConvnet(w, cfg);
}

/** Row indices into the zero-padded map [B * (h + 6) * (w + 6)] of every 7 x 7 window: [B * h * w * 49]. */
function windowIndex(B: number, h: number, w: number): Int32Array {
  const ph = h + 6;
  const pw = w + 6;
  const idx = new Int32Array(B * h * w * 49);
  let i = 0;
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let dy = 0; dy < 7; dy++) for (let dx = 0; dx < 7; dx++) idx[i++] = (b * ph + y + dy) * pw + x + dx;
      }
    }
  }
  return idx;
}

/**
 * Depthwise 7 x 7 conv, padding 3, as a gather of every window then a weighted sum: exact, and
 * differentiable with kernels WASM has (it lacks the depthwise filter gradient).
 * x [B, h, w, C], weight [C, 1, 7, 7] -> [B, h, w, C].
 */
function depthwise7x7(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [B, h, w, C] = x.shape as [number, number, number, number];
    const padded = tf.reshape(tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]]), [-1, C]);
    const windows = tf.reshape(tf.gather(padded, tf.tensor1d(windowIndex(B, h, w), 'int32')), [B * h * w, 49, C]);
    const taps = tf.transpose(tf.reshape(weight, [C, 49])); // [49, C]
    return tf.add(tf.reshape(tf.sum(tf.mul(windows, taps), 1), [B, h, w, C]), bias);
  });
}

/** image [B, 3, 1512, 1512] (normalised, resized from the input) -> high-res selection features [B, h, w, out], h = w = 1512 / k. */
export function shallowConvNet(w: Weights, cfg: VisionConfig, image: Float32Array, batch: number): tf.Tensor {
  const k = cfg.convnet.kernel;
  const size = CONVNET_INPUT;
  const grid = Math.floor(size / k);
  const patches = patchify(image, { batch, channels: 3, height: size, width: size }, k);
  return tf.tidy(() => {
    const hidden = w.shapeOf(`${M}.stem.0.weight`)[0]!;
    // stem conv (kernel = stride = k) as a matrix product over unfolded patches
    let x = tf.add(tf.matMul(tf.tensor2d(patches.data, [batch * grid * grid, 3 * k * k]), w.transposed(`${M}.stem.0.weight`, hidden)), w.get(`${M}.stem.0.bias`));
    x = layerNorm(w, `${M}.stem.1`, tf.reshape(x, [batch, grid, grid, hidden]), 1e-6);
    for (let i = 0; i < cfg.convnet.depth; i++) {
      const b = `${M}.blocks.${i}`;
      let y = depthwise7x7(x, w.get(`${b}.conv_dw.weight`), w.get(`${b}.conv_dw.bias`));
      y = layerNorm(w, `${b}.norm`, y, 1e-6);
      y = linear(w, `${b}.mlp.fc2`, gelu(linear(w, `${b}.mlp.fc1`, y)));
      x = tf.add(tf.mul(y, w.get(`${b}.weight`)), x);
    }
    const outDim = w.shapeOf(`${M}.out_proj.weight`)[0]!;
    return tf.reshape(tf.add(tf.matMul(tf.reshape(x, [-1, hidden]), w.transposed(`${M}.out_proj.weight`, outDim)), w.get(`${M}.out_proj.bias`)), [batch, grid, grid, outDim]);
  });
}
