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

/**
 * Depthwise 7 x 7 conv, padding 3: x [B, h, w, C], weight [C, 1, 7, 7] (PyTorch's layout) ->
 * [B, h, w, C]. The WASM backend's gradients for it are ours (tensor/kernels.ts).
 */
function depthwise7x7(x: tf.Tensor4D, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => {
    const C = x.shape[3];
    const filter = tf.reshape(tf.transpose(tf.reshape(weight, [C, 7, 7]), [1, 2, 0]), [7, 7, C, 1]) as tf.Tensor4D;
    return tf.add(tf.depthwiseConv2d(x, filter, 1, 3), bias);
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
      let y: tf.Tensor = depthwise7x7(x as tf.Tensor4D, w.get(`${b}.conv_dw.weight`), w.get(`${b}.conv_dw.bias`));
      y = layerNorm(w, `${b}.norm`, y, 1e-6);
      y = linear(w, `${b}.mlp.fc2`, gelu(linear(w, `${b}.mlp.fc1`, y)));
      x = tf.add(tf.mul(y, w.get(`${b}.weight`)), x);
    }
    const outDim = w.shapeOf(`${M}.out_proj.weight`)[0]!;
    return tf.reshape(tf.add(tf.matMul(tf.reshape(x, [-1, hidden]), w.transposed(`${M}.out_proj.weight`, outDim)), w.get(`${M}.out_proj.bias`)), [batch, grid, grid, outDim]);
  });
}
