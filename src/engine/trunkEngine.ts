/**
 * Which engine runs the trunk's blocks (the low-res pass and every look): ONNX Runtime, the fast
 * path and the default, or TensorFlow.js, the encoder's own path (the reference, and the only
 * one with autograd). Chosen by `--trunk`, else PS3_TRUNK, else onnx. ONNX Runtime is loaded on
 * first use only.
 */
import type { TrunkConfig, VisionConfig } from '../io/config.js';
import { setDefaultConvnet, type ConvnetRunner } from '../model/convnet.js';
import { setDefaultProjection, type ProjectionRunner } from '../model/selection.js';
import { prepareBlockLayouts, prepareFrozenLayouts, setDefaultTrunk, type TrunkRunner } from '../model/vit.js';
import type { Weights } from '../model/weights.js';
import { UserError } from '../errors.js';

export type TrunkEngine = 'tfjs' | 'onnx';

export const TRUNK_ENGINES: readonly TrunkEngine[] = ['tfjs', 'onnx'];

export const DEFAULT_TRUNK_ENGINE: TrunkEngine = 'onnx';

export function resolveTrunkEngine(requested?: string): TrunkEngine {
  const name = requested ?? process.env['PS3_TRUNK'] ?? DEFAULT_TRUNK_ENGINE;
  if (!(TRUNK_ENGINES as readonly string[]).includes(name)) {
    throw new UserError(`unknown trunk engine "${name}" (expected one of: ${TRUNK_ENGINES.join(', ')})`);
  }
  return name as TrunkEngine;
}

/** Weights ONNX Runtime's sessions hold: the trunk's blocks, the selector's convnet and its feature projection. */
const ONNX_HELD = /^vision_model\.(trunk\.blocks|selection_feature_proj|highres_selection_feature_module)\./;

/** Whether `engine` runs `key`'s layer itself, so TensorFlow.js never needs the weight. */
export function engineHolds(engine: TrunkEngine, key: string): boolean {
  return engine === 'onnx' && ONNX_HELD.test(key);
}

/** The model's ONNX trunk as a runner; its sessions are made on the first run and kept until the weights are disposed. */
function onnxRunner(w: Weights, cfg: TrunkConfig): TrunkRunner {
  return async (tokens, options) => (await import('./onnx/perModel.js')).onnxTrunkRunner(w, cfg)(tokens, options);
}

/** The model's selection convnet on ONNX Runtime (its session made on the first run). */
function onnxConvnet(w: Weights, cfg: VisionConfig): ConvnetRunner {
  return async (image, batch) => (await import('./onnx/perModel.js')).onnxConvnetRunner(w, cfg)(image, batch);
}

/** The model's selection feature projection on ONNX Runtime (its session made on the first run). */
function onnxProjection(w: Weights, cfg: VisionConfig): ProjectionRunner {
  return async (features) => (await import('./onnx/perModel.js')).onnxProjectionRunner(w, cfg)(features);
}

/** `EncodeOptions.trunk` for an engine: null for TensorFlow.js's own blocks. */
export async function trunkRunner(engine: TrunkEngine, w: Weights, cfg: TrunkConfig): Promise<TrunkRunner | null> {
  if (engine === 'tfjs') return null;
  const { onnxTrunkRunner } = await import('./onnx/perModel.js');
  return onnxTrunkRunner(w, cfg);
}

/** `EncodeOptions.convnet` for an engine: null for TensorFlow.js's own. */
export function convnetRunner(engine: TrunkEngine, w: Weights, cfg: VisionConfig): ConvnetRunner | null {
  return engine === 'tfjs' ? null : onnxConvnet(w, cfg);
}

/**
 * Make `engine` the one `encodeImage` (and every pass that names no engine) uses for frozen
 * weights, for the trunk and the selector's convnet and feature projection; trainable weights stay on TensorFlow.js. The library entry and the CLI install
 * `resolveTrunkEngine()` at load.
 */
export function useTrunkEngine(engine: TrunkEngine): void {
  setDefaultTrunk(engine === 'onnx' ? onnxRunner : () => null);
  setDefaultConvnet(engine === 'onnx' ? onnxConvnet : () => null);
  setDefaultProjection(engine === 'onnx' ? onnxProjection : () => null);
}

/**
 * Make what the engine needs for this model now rather than in the first encode: TensorFlow.js's
 * layouts of the frozen weights it multiplies by (`prepareFrozenLayouts`, and the blocks' when it
 * runs them), and with ONNX Runtime
 * the sessions for the trunk and the selector's convnet and feature projection (a big trunk's
 * take seconds).
 */
export async function prepareTrunk(engine: TrunkEngine, w: Weights, cfg: VisionConfig): Promise<void> {
  prepareFrozenLayouts(w, cfg.trunk, cfg.scales.slice(1).map((s) => Math.floor(s / cfg.trunk.patchSize)));
  if (engine === 'tfjs') {
    prepareBlockLayouts(w, cfg.trunk);
    return;
  }
  const { onnxTrunkOf, prepareOnnxSelector } = await import('./onnx/perModel.js');
  await onnxTrunkOf(w, cfg.trunk);
  await prepareOnnxSelector(w, cfg);
}

/** Free what the engine holds for this model (ONNX Runtime's sessions). */
export async function releaseTrunk(engine: TrunkEngine, w: Weights): Promise<void> {
  if (engine === 'tfjs') return;
  const { releaseOnnxTrunk } = await import('./onnx/perModel.js');
  await releaseOnnxTrunk(w);
}
