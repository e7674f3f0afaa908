/**
 * Whether an encode fits TensorFlow.js's WASM heap, judged from the config alone, before any
 * weight is allocated: the heap is one 4 GiB linear memory, and running past it aborts inside a
 * kernel (`XNN status ... Aborted()`), which leaves the process unusable. A model whose trunk
 * does not fit is refused up front with what it needs; the ONNX Runtime trunk has no such limit
 * (its memory is native), so the check only concerns what stays in TensorFlow.js.
 */
import type { PS3Config, TrunkConfig } from '../io/config.js';
import { UserError } from '../errors.js';
import { visionParams, type ParamTable } from '../model/params.js';
import { baseBudgets } from '../model/selection.js';
import type { TrunkEngine } from './trunkEngine.js';

/** The WASM backend's linear memory: 32-bit addresses. */
export const WASM_HEAP_BYTES = 4 * 1024 ** 3;

const TRUNK_BLOCK = /^vision_model\.trunk\.blocks\./;

export interface HeapNeed {
  /** the weights TensorFlow.js holds, with the transposed copy of every matrix it caches */
  readonly weights: number;
  /** the largest trunk pass (a look over the low-res KV cache), 0 when the trunk runs elsewhere */
  readonly pass: number;
  readonly total: number;
}

/**
 * Peak bytes of one TensorFlow.js trunk pass over n tokens attending to m keys (batch 1): every
 * block's kept hidden state and the low-res cache, plus one block's transients (qkv, keys and
 * values with the cache, each head's scores three times over: product, scaled, softmax; the MLP).
 */
export function tfjsPassBytes(t: TrunkConfig, n: number, m: number): number {
  const D = t.width;
  const kept = t.depth * n * D + 2 * t.depth * (m - n) * D;
  const block = n * 3 * D + 2 * m * D + 3 * t.heads * n * m + 2 * n * t.mlpHidden + 6 * n * D;
  return 4 * (kept + block);
}

function weightBytes(table: ParamTable, keep: (key: string) => boolean): number {
  let n = 0;
  for (const [key, shape] of table) {
    if (!keep(key)) continue;
    const size = shape.reduce((a, c) => a * c, 1);
    // matrices are multiplied by a cached transposed copy (WASM's transposed matmul is slow)
    n += size * (shape.length >= 2 && shape[0]! > 1 ? 2 : 1);
  }
  return 4 * n;
}

/** What an encode with the trunk on `engine` asks of the WASM heap (vision tower only). */
export function heapNeed(config: PS3Config, engine: TrunkEngine): HeapNeed {
  const v = config.vision;
  const table = visionParams(config);
  const onTfjs = engine === 'tfjs';
  const weights = weightBytes(table, (k) => onTfjs || !TRUNK_BLOCK.test(k));
  const n0 = (v.scales[0]! / v.trunk.patchSize) ** 2;
  const look = baseBudgets(v).reduce((a, c) => a + c, 0);
  const pass = onTfjs ? Math.max(tfjsPassBytes(v.trunk, n0, n0), tfjsPassBytes(v.trunk, look, n0 + look)) : 0;
  return { weights, pass, total: weights + pass };
}

const gib = (bytes: number): string => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/**
 * Refuse (UserError, exit 2) an encode whose TensorFlow.js part cannot fit the WASM heap, naming
 * what it needs; `name` says which model. Only the WASM backend has the limit.
 */
export function checkHeapFits(config: PS3Config, engine: TrunkEngine, backend: string, name: string): void {
  if (backend !== 'wasm') return;
  const need = heapNeed(config, engine);
  if (need.total <= WASM_HEAP_BYTES) return;
  const hint = engine === 'tfjs' ? '; run the trunk on ONNX Runtime (--trunk onnx, the default)' : '';
  throw new UserError(
    `${name} does not fit TensorFlow.js's ${gib(WASM_HEAP_BYTES)} WASM heap with the trunk on ${engine}: it needs about ${gib(need.total)} ` +
      `(weights with transposed copies ${gib(need.weights)}${need.pass ? `, a ${config.vision.trunk.depth}-block look ${gib(need.pass)}` : ''})${hint}`,
  );
}
