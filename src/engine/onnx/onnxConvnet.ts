/**
 * The selector's ConvNeXt on ONNX Runtime: one session per model (its weights are a few MB),
 * the 1512 x 1512 image in, the feature map out as a TensorFlow.js tensor for the selection
 * head. Session options as the trunk's (see onnxTrunk.ts).
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { VisionConfig } from '../../io/config.js';
import { CONVNET_INPUT, type ConvnetRunner } from '../../model/convnet.js';
import type { Weights } from '../../model/weights.js';
import { tf } from '../../tensor/engine.js';
import { convnetIo, convnetModel } from './convnetGraph.js';
import { ortFloats } from './ortFloats.js';
import { cpuSessionOptions } from './sessionOptions.js';

export class OnnxConvnet {
  private constructor(private readonly session: InferenceSession) {}

  static async create(w: Weights, cfg: VisionConfig): Promise<OnnxConvnet> {
    const session = await InferenceSession.create(convnetModel(w, cfg, CONVNET_INPUT), cpuSessionOptions());
    return new OnnxConvnet(session);
  }

  /** image [B, 3, 1512, 1512] -> features [B, g, g, out] */
  readonly run: ConvnetRunner = async (image, batch) => {
    const input = new Tensor('float32', ortFloats(image), [batch, 3, CONVNET_INPUT, CONVNET_INPUT]);
    const out = (await this.session.run({ [convnetIo.image]: input }, [convnetIo.features])) as Record<string, Tensor>;
    const f = out[convnetIo.features]!;
    return tf.tensor(f.data as Float32Array, [...f.dims]);
  };

  async release(): Promise<void> {
    await this.session.release();
  }
}
