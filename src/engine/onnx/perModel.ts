/**
 * One set of ONNX Runtime sessions per model (trunk, selector convnet, selector projection): each
 * made on first use (building a big trunk's sessions takes seconds) and shared by every later
 * call with the same weights until released.
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

/**
 * One engine object per model's weights: made on first use and shared by every later call with
 * the same weights; a failed build is not kept (the next call tries again); released with the
 * weights. Trainable weights change under a built session, so they are refused.
 */
class PerWeights<T extends { release(): Promise<void> }> {
  private readonly built = new WeakMap<Weights, Promise<T>>();

  constructor(private readonly what: string) {}

  of(w: Weights, make: () => Promise<T>): Promise<T> {
    if (w.trainable) throw new UserError(`the ONNX ${this.what} needs frozen weights (these are trainable variables); use TensorFlow.js`);
    let made = this.built.get(w);
    if (!made) {
      made = make().catch((e: unknown) => {
        this.built.delete(w);
        throw e;
      });
      this.built.set(w, made);
      w.onDispose(() => void this.release(w).catch(() => undefined));
    }
    return made;
  }

  async release(w: Weights): Promise<void> {
    const made = this.built.get(w);
    if (!made) return;
    this.built.delete(w);
    await (await made).release();
  }
}

const trunks = new PerWeights<OnnxTrunk>('trunk');
const convnets = new PerWeights<OnnxConvnet>('convnet');
const projections = new PerWeights<OnnxSelection>('selection projection');

/** The model's ONNX trunk, made once. */
export function onnxTrunkOf(w: Weights, cfg: TrunkConfig, options: OnnxTrunkOptions = {}): Promise<OnnxTrunk> {
  return trunks.of(w, () => OnnxTrunk.create(w, cfg, options));
}

/** A `TrunkRunner` for `EncodeOptions.trunk`: the model's ONNX trunk, made on its first run. */
export function onnxTrunkRunner(w: Weights, cfg: TrunkConfig, options: OnnxTrunkOptions = {}): TrunkRunner {
  return async (tokens, o) => (await onnxTrunkOf(w, cfg, options)).run(tokens, o);
}

/** Release the model's sessions (native memory): trunk, convnet and selection projection. */
export async function releaseOnnxTrunk(w: Weights): Promise<void> {
  await convnets.release(w);
  await projections.release(w);
  await trunks.release(w);
}

/** The model's ONNX convnet, made on first use and released with the weights. */
export function onnxConvnetRunner(w: Weights, cfg: VisionConfig): ConvnetRunner {
  return async (image, batch) => (await convnets.of(w, () => OnnxConvnet.create(w, cfg))).run(image, batch);
}

/** The model's selection feature projection on ONNX Runtime, made on first use and released with the weights. */
export function onnxProjectionRunner(w: Weights, cfg: VisionConfig): ProjectionRunner {
  return async (features) => (await projections.of(w, () => OnnxSelection.create(w, cfg))).run(features);
}

/** Make the selector's sessions (convnet, feature projection) now rather than in the first encode. */
export async function prepareOnnxSelector(w: Weights, cfg: VisionConfig): Promise<void> {
  await projections.of(w, () => OnnxSelection.create(w, cfg));
  if (cfg.highresSelectionFeature) await convnets.of(w, () => OnnxConvnet.create(w, cfg));
}
