/**
 * The selector's shallow ConvNeXt as an ONNX graph, from the same named weights as
 * `shallowConvNet` in src/model/convnet.ts, op for op:
 *
 *   image [B, 3, 1512, 1512] -> Conv(stem.0, kernel = stride = k) [B, C, g, g] -> NHWC
 *   -> LayerNormalization(stem.1) over channels
 *   per block: x -> NCHW -> depthwise Conv 7 x 7, padding 3 (group = C) -> NHWC -> LayerNorm
 *              -> MatMul(fc1^T) + b -> GELU_erf -> MatMul(fc2^T) + b -> * gamma -> + x
 *   -> MatMul(out_proj as [C, out]) + b: features [B, g, g, out]
 *
 * Stored conv kernels are OIHW, as Conv takes them; Linear weights are pre-transposed once.
 */
import type { VisionConfig } from '../../io/config.js';
import type { Weights } from '../../model/weights.js';
import { GraphBuilder } from './graph.js';

const M = 'vision_model.highres_selection_feature_module';

export const convnetIo = { image: 'image', features: 'features' };

class ConvnetGraph {
  constructor(
    private readonly g: GraphBuilder,
    private readonly w: Weights,
  ) {}

  private weight(key: string): string {
    return this.g.floats(key, this.w.shapeOf(key), this.w.values(key));
  }

  /** A [out, in, ...] weight as the [in, out] matrix MatMul multiplies by. */
  private matrix(key: string): string {
    const shape = this.w.shapeOf(key);
    const outDim = shape[0]!;
    const data = this.w.values(key);
    const inDim = data.length / outDim;
    const t = new Float32Array(data.length);
    for (let o = 0; o < outDim; o++) for (let i = 0; i < inDim; i++) t[i * outDim + o] = data[o * inDim + i]!;
    return this.g.floats(`${key}_t`, [inDim, outDim], t);
  }

  private linear(prefix: string, x: string): string {
    return this.g.op('Add', [this.g.op('MatMul', [x, this.matrix(`${prefix}.weight`)]), this.weight(`${prefix}.bias`)]);
  }

  layerNorm(prefix: string, x: string): string {
    return this.g.op('LayerNormalization', [x, this.weight(`${prefix}.weight`), this.weight(`${prefix}.bias`)], [{ name: 'axis', int: -1 }, { name: 'epsilon', float: 1e-6 }]);
  }

  private gelu(x: string): string {
    const erf = this.g.op('Erf', [this.g.op('Mul', [x, this.g.scalar(Math.SQRT1_2)])]);
    return this.g.op('Mul', [this.g.op('Mul', [x, this.g.scalar(0.5)]), this.g.op('Add', [erf, this.g.scalar(1)])]);
  }

  private nhwc(x: string): string {
    return this.g.op('Transpose', [x], [{ name: 'perm', ints: [0, 2, 3, 1] }]);
  }

  private nchw(x: string): string {
    return this.g.op('Transpose', [x], [{ name: 'perm', ints: [0, 3, 1, 2] }]);
  }

  stem(image: string, k: number): string {
    const conv = this.g.op('Conv', [image, this.weight(`${M}.stem.0.weight`), this.weight(`${M}.stem.0.bias`)], [
      { name: 'kernel_shape', ints: [k, k] },
      { name: 'strides', ints: [k, k] },
    ]);
    return this.layerNorm(`${M}.stem.1`, this.nhwc(conv));
  }

  block(i: number, x: string, channels: number): string {
    const b = `${M}.blocks.${i}`;
    const dw = this.g.op('Conv', [this.nchw(x), this.weight(`${b}.conv_dw.weight`), this.weight(`${b}.conv_dw.bias`)], [
      { name: 'kernel_shape', ints: [7, 7] },
      { name: 'pads', ints: [3, 3, 3, 3] },
      { name: 'group', int: channels },
    ]);
    const y = this.linear(`${b}.mlp.fc2`, this.gelu(this.linear(`${b}.mlp.fc1`, this.layerNorm(`${b}.norm`, this.nhwc(dw)))));
    return this.g.op('Add', [this.g.op('Mul', [y, this.weight(`${b}.weight`)]), x]);
  }

  outProj(x: string): string {
    return this.linear(`${M}.out_proj`, x);
  }
}

/** The convnet's ONNX model: input `image` [B, 3, 1512, 1512], output `features` [B, g, g, out]. */
export function convnetModel(w: Weights, cfg: VisionConfig, size: number): Uint8Array {
  const { kernel: k, hidden, depth, out } = cfg.convnet;
  const g = new GraphBuilder('ps3_selection_convnet');
  const graph = new ConvnetGraph(g, w);
  let x = graph.stem(g.input(convnetIo.image, ['batch', 3, size, size]), k);
  for (let i = 0; i < depth; i++) x = graph.block(i, x, hidden);
  g.op('Identity', [graph.outProj(x)], [], convnetIo.features);
  const grid = Math.floor(size / k);
  g.output(convnetIo.features, ['batch', grid, grid, out]);
  return g.toBytes();
}
