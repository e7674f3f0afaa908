/**
 * The selector's feature projection (`selection_feature_proj`, timm's Mlp with a norm) as an ONNX
 * graph, from the same named weights as `mlp` in src/model/layers.ts, op for op:
 *
 *   features [B, N0, L] (the chosen low-res layers side by side)
 *   -> MatMul(fc1^T) + b -> GELU_erf -> LayerNormalization(norm, eps 1e-5)
 *   -> MatMul(fc2^T, first D columns) + b[:D]: projected [B, N0, D]
 *
 * Only fc2's first D outputs are built: the reference computes D x (scales - 1) and uses the first
 * chunk for every scale.
 */
import type { VisionConfig } from '../../io/config.js';
import type { Weights } from '../../model/weights.js';
import { GraphBuilder } from './graph.js';

const M = 'vision_model.selection_feature_proj';

export const selectionIo = { features: 'features', projected: 'projected' };

/** The first `rows` rows of an [out, in] Linear weight as the [in, rows] matrix MatMul multiplies by. */
function transposedRows(w: Weights, key: string, rows: number): { data: Float32Array; dims: [number, number] } {
  const data = w.values(key);
  const inDim = data.length / w.shapeOf(key)[0]!;
  const t = new Float32Array(inDim * rows);
  for (let o = 0; o < rows; o++) for (let i = 0; i < inDim; i++) t[i * rows + o] = data[o * inDim + i]!;
  return { data: t, dims: [inDim, rows] };
}

/** The projection's ONNX model: input `features` [B, N0, L], output `projected` [B, N0, D]. */
export function selectionModel(w: Weights, cfg: VisionConfig): Uint8Array {
  const D = cfg.trunk.width;
  const L = D * cfg.selectBasedOnLayer.length;
  const g = new GraphBuilder('ps3_selection_feature_proj');
  const linear = (layer: string, x: string, rows: number): string => {
    const t = transposedRows(w, `${M}.${layer}.weight`, rows);
    const bias = w.values(`${M}.${layer}.bias`).slice(0, rows);
    return g.op('Add', [g.op('MatMul', [x, g.floats(`${layer}.weight_t`, t.dims, t.data)]), g.floats(`${layer}.bias`, [rows], bias)]);
  };
  const x = g.input(selectionIo.features, ['batch', 'tokens', L]);
  const h = linear('fc1', x, w.shapeOf(`${M}.fc1.weight`)[0]!);
  const erf = g.op('Erf', [g.op('Mul', [h, g.scalar(Math.SQRT1_2)])]);
  const act = g.op('Mul', [g.op('Mul', [h, g.scalar(0.5)]), g.op('Add', [erf, g.scalar(1)])]);
  const normed = g.op('LayerNormalization', [act, g.floats('norm.weight', [L], w.values(`${M}.norm.weight`)), g.floats('norm.bias', [L], w.values(`${M}.norm.bias`))], [
    { name: 'axis', int: -1 },
    { name: 'epsilon', float: 1e-5 },
  ]);
  g.op('Identity', [linear('fc2', normed, D)], [], selectionIo.projected);
  g.output(selectionIo.projected, ['batch', 'tokens', D]);
  return g.toBytes();
}
