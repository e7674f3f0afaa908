/**
 * Which engine runs the trunk's blocks (the low-res pass and every look): TensorFlow.js, the
 * encoder's own path, or ONNX Runtime. Chosen by `--trunk`, else PS3_TRUNK, else tfjs. ONNX
 * Runtime is loaded only when asked for.
 */
import type { TrunkConfig } from '../io/config.js';
import type { TrunkRunner } from '../model/vit.js';
import type { Weights } from '../model/weights.js';
import { UserError } from '../errors.js';

export type TrunkEngine = 'tfjs' | 'onnx';

export const TRUNK_ENGINES: readonly TrunkEngine[] = ['tfjs', 'onnx'];

export function resolveTrunkEngine(requested?: string): TrunkEngine {
  const name = requested ?? process.env['PS3_TRUNK'] ?? 'tfjs';
  if (!(TRUNK_ENGINES as readonly string[]).includes(name)) {
    throw new UserError(`unknown trunk engine "${name}" (expected one of: ${TRUNK_ENGINES.join(', ')})`);
  }
  return name as TrunkEngine;
}

/** `EncodeOptions.trunk` for an engine: undefined for TensorFlow.js (the encoder's default). */
export async function trunkRunner(engine: TrunkEngine, w: Weights, cfg: TrunkConfig): Promise<TrunkRunner | undefined> {
  if (engine === 'tfjs') return undefined;
  const { onnxTrunkRunner } = await import('./onnx/perModel.js');
  return onnxTrunkRunner(w, cfg);
}

/** Free what the engine holds for this model (ONNX Runtime's sessions). */
export async function releaseTrunk(engine: TrunkEngine, w: Weights): Promise<void> {
  if (engine === 'tfjs') return;
  const { releaseOnnxTrunk } = await import('./onnx/perModel.js');
  await releaseOnnxTrunk(w);
}
