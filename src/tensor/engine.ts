/**
 * Engine set-up: TensorFlow.js with the WASM backend in Node (the CPU backend as fallback).
 * The backend is chosen by `initEngine({ backend })`, else the PS3_BACKEND environment variable,
 * else WASM.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';
import { UserError } from '../errors.js';
import { registerMissingKernels } from './kernels.js';

export type BackendName = 'wasm' | 'cpu';

export const BACKENDS: readonly BackendName[] = ['wasm', 'cpu'];

let ready: Promise<BackendName> | undefined;

/** The WASM backend's heap limit (its module's maximum memory). */
export const WASM_HEAP_BYTES = 4 * 1024 ** 3;

/**
 * The engine failed to allocate a tensor: the WASM heap cannot grow to hold it. Thrown at the
 * allocation, before anything is written, so the engine stays usable once memory is freed.
 */
export class EngineOutOfMemoryError extends RangeError {
  override readonly name = 'EngineOutOfMemoryError';
  constructor(readonly bytes: number) {
    super(`out of memory: the WASM heap (at most ${WASM_HEAP_BYTES / 1024 ** 3} GiB) cannot allocate ${(bytes / 1024 ** 2).toFixed(0)} MiB more`);
  }
}

/**
 * Without this, a failed allocation returns address 0: the backend then writes the tensor over
 * the start of the heap and the module dies later with an unrelated-looking "memory access out of
 * bounds" or "Aborted()"; a request of 2 GiB or more is refused the same way. The module's \`_malloc\` is a stub that replaces itself on its first
 * call, so it is called once before being wrapped.
 */
function watchAllocations(): void {
  const wasm = (tf.backend() as unknown as { wasm?: { _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array } }).wasm;
  if (!wasm) return;
  wasm._free(wasm._malloc(8));
  const malloc = wasm._malloc.bind(wasm);
  wasm._malloc = (n: number): number => {
    // the module's malloc takes a signed 32-bit size: 2 GiB or more comes back as a bogus address
    if (n >= 2 ** 31) throw new EngineOutOfMemoryError(n);
    const p = malloc(n);
    // when the heap cannot grow, malloc answers 0 or (observed) an address past the heap's end
    if (n > 0 && (p === 0 || (p >>> 0) + n > wasm.HEAPU8.length)) throw new EngineOutOfMemoryError(n);
    return p;
  };
}

function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep;
}

export function resolveBackend(requested?: string): BackendName {
  const name = requested ?? process.env['PS3_BACKEND'] ?? 'wasm';
  if (!(BACKENDS as readonly string[]).includes(name)) {
    throw new UserError(`unknown backend "${name}" (expected one of: ${BACKENDS.join(', ')})`);
  }
  return name as BackendName;
}

/** Initialise the engine once per process; later calls return the backend already chosen. */
export function initEngine(options: { backend?: string } = {}): Promise<BackendName> {
  if (!ready) {
    const backend = resolveBackend(options.backend);
    ready = (async () => {
      if (backend === 'wasm') setWasmPaths(wasmDir());
      const ok = await tf.setBackend(backend);
      if (!ok) throw new Error(`TensorFlow.js backend "${backend}" failed to initialise`);
      await tf.ready();
      // the CPU backend greets Node users with a banner recommending tfjs-node, which cannot be
      // installed here; the choice of backend is deliberate, so silence it
      const b = tf.backend() as unknown as { firstUse?: boolean };
      if (backend === 'cpu' && 'firstUse' in b) b.firstUse = false;
      registerMissingKernels(backend);
      if (backend === 'wasm') watchAllocations();
      return backend;
    })();
  }
  return ready;
}

export { tf };
