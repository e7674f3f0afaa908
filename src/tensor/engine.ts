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
      return backend;
    })();
  }
  return ready;
}

export { tf };
