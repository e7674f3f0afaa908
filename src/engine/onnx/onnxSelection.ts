/**
 * The selector's feature projection on ONNX Runtime: one session per model, the chosen low-res
 * layers in, the projected features out as a TensorFlow.js tensor for the cosine with the prompt.
 * Session options as the trunk's (see onnxTrunk.ts).
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { VisionConfig } from '../../io/config.js';
import type { ProjectionRunner } from '../../model/selection.js';
import type { Weights } from '../../model/weights.js';
import { tf } from '../../tensor/engine.js';
import { selectionIo, selectionModel } from './selectionGraph.js';
import { cpuSessionOptions } from './sessionOptions.js';

export class OnnxSelection {
  private constructor(private readonly session: InferenceSession) {}

  static async create(w: Weights, cfg: VisionConfig): Promise<OnnxSelection> {
    const session = await InferenceSession.create(selectionModel(w, cfg), cpuSessionOptions());
    return new OnnxSelection(session);
  }

  /** features [B, N0, L] -> projected [B, N0, D] */
  readonly run: ProjectionRunner = async (features) => {
    const input = new Tensor('float32', (await features.data()) as Float32Array, features.shape);
    const out = (await this.session.run({ [selectionIo.features]: input }, [selectionIo.projected])) as Record<string, Tensor>;
    const p = out[selectionIo.projected]!;
    return tf.tensor(p.data as Float32Array, [...p.dims]);
  };

  async release(): Promise<void> {
    await this.session.release();
  }
}
