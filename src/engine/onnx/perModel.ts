/**
 * One ONNX trunk per model: made on first use (building its sessions takes seconds for a big
 * trunk) and shared by every later call with the same weights until released.
 */
import type { TrunkConfig, VisionConfig } from '../../io/config.js';
import type { ConvnetRunner } from '../../model/convnet.js';
import type { TrunkRunner } from '../../model/vit.js';
import type { Weights } from '../../model/weights.js';
import { UserError } from '../../errors.js';
import { OnnxTrunk, type OnnxTrunkOptions } from './onnxTrunk.js';
import { OnnxConvnet } from './onnxConvnet.js';
import { OnnxSelection } from './onnxSelection.js';
import type { ProjectionRunner } from '../../model/selection.js';

const trunks = new WeakMap<Weights, Promise<OnnxTrunk>>();

/** The model's ONNX trunk, made once; trainable weights change under it, so they are refused. */
export function onnxTrunkOf(w: Weights, cfg: TrunkConfig, options: OnnxTrunkOptions = {}): Promise<OnnxTrunk> {
  if (w.trainable) throw new UserError('the ONNX trunk needs frozen weights (these are trainable variables); use the TensorFlow.js trunk');
  let trunk = trunks.get(w);
  if (!trunk) {
    // a failed build is not kept: the next call tries again
    trunk = OnnxTrunk.create(w, cfg, options).catch((e: unknown) => {
      trunks.delete(w);
      throw e;
    });
    trunks.set(w, trunk);
    // sessions made by default (no one calls releaseOnnxTrunk) go with the weights
    w.onDispose(() => void releaseOnnxTrunk(w).catch(() => undefined));
  }
  return trunk;
}

/** A `TrunkRunner` for `EncodeOptions.trunk`: the model's ONNX trunk, made on its first run. */
export function onnxTrunkRunner(w: Weights, cfg: TrunkConfig, options: OnnxTrunkOptions = {}): TrunkRunner {
  return async (tokens, o) => (await onnxTrunkOf(w, cfg, options)).run(tokens, o);
}

/** Release the model's sessions (native memory), if it has any. */
export async function releaseOnnxTrunk(w: Weights): Promise<void> {
  await releaseOnnxConvnet(w);
  await releaseOnnxSelection(w);
  const trunk = trunks.get(w);
  if (!trunk) return;
  trunks.delete(w);
  await (await trunk).release();
}

const convnets = new WeakMap<Weights, Promise<OnnxConvnet>>();

function onnxConvnetOf(w: Weights, cfg: VisionConfig): Promise<OnnxConvnet> {
  if (w.trainable) throw new UserError('the ONNX convnet needs frozen weights (these are trainable variables); use TensorFlow.js');
  let convnet = convnets.get(w);
  if (!convnet) {
    convnet = OnnxConvnet.create(w, cfg).catch((e: unknown) => {
      convnets.delete(w);
      throw e;
    });
    convnets.set(w, convnet);
    w.onDispose(() => void releaseOnnxConvnet(w).catch(() => undefined));
  }
  return convnet;
}

/** The model's ONNX convnet, made on first use and released with the weights. */
export function onnxConvnetRunner(w: Weights, cfg: VisionConfig): ConvnetRunner {
  return async (image, batch) => (await onnxConvnetOf(w, cfg)).run(image, batch);
}

async function releaseOnnxConvnet(w: Weights): Promise<void> {
  const convnet = convnets.get(w);
  if (!convnet) return;
  convnets.delete(w);
  await (await convnet).release();
}

const projections = new WeakMap<Weights, Promise<OnnxSelection>>();

function onnxProjectionOf(w: Weights, cfg: VisionConfig): Promise<OnnxSelection> {
  if (w.trainable) throw new UserError('the ONNX selection projection needs frozen weights (these are trainable variables); use TensorFlow.js');
  let projection = projections.get(w);
  if (!projection) {
    projection = OnnxSelection.create(w, cfg).catch((e: unknown) => {
      projections.delete(w);
      throw e;
    });
    projections.set(w, projection);
    w.onDispose(() => void releaseOnnxSelection(w).catch(() => undefined));
  }
  return projection;
}

/** The model's selection feature projection on ONNX Runtime, made on first use and released with the weights. */
export function onnxProjectionRunner(w: Weights, cfg: VisionConfig): ProjectionRunner {
  return async (features) => (await onnxProjectionOf(w, cfg)).run(features);
}

/** Make the selector's sessions (convnet, feature projection) now rather than in the first encode. */
export async function prepareOnnxSelector(w: Weights, cfg: VisionConfig): Promise<void> {
  await onnxProjectionOf(w, cfg);
  if (cfg.highresSelectionFeature) await onnxConvnetOf(w, cfg);
}

async function releaseOnnxSelection(w: Weights): Promise<void> {
  const projection = projections.get(w);
  if (!projection) return;
  projections.delete(w);
  await (await projection).release();
}
