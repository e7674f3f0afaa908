/**
 * Engine set-up for the browser (the page under `web/`): TensorFlow.js with WebGPU when the
 * browser has it, else WASM (SIMD; threads too when the page is cross-origin isolated), the CPU
 * backend as a last resort. `web/build.mjs` bundles this file in place of `engine.ts` (which finds
 * the WASM binaries through Node's module resolver), so every model module, which imports `tf`
 * from `./engine.js`, runs unchanged in the page.
 *
 * Nothing here touches Node: the WASM binaries are fetched from `wasmPath` (a URL prefix), and
 * the WebGPU backend is loaded with a dynamic import, only when it is tried.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { UserError } from '../errors.js';
import { registerMissingKernels } from './kernels.js';

export type BackendName = 'webgpu' | 'wasm' | 'cpu';

export const BACKENDS: readonly BackendName[] = ['webgpu', 'wasm', 'cpu'];

export interface BrowserEngineOptions {
  /** a backend, or 'auto' (the default): WebGPU when `navigator.gpu` exists, else WASM, else CPU */
  readonly backend?: string;
  /** URL prefix (ending in '/') the `tfjs-backend-wasm*.wasm` files are served under */
  readonly wasmPath?: string;
}

export interface EngineInfo {
  readonly backend: BackendName;
  /** backends tried before it that failed, with why */
  readonly failed: ReadonlyArray<{ backend: BackendName; reason: string }>;
  /** for WASM: whether the SIMD and multi-threaded builds are in use */
  readonly wasmSimd?: boolean;
  readonly wasmThreads?: boolean;
}

let ready: Promise<EngineInfo> | undefined;

export function resolveBackend(requested?: string): BackendName | 'auto' {
  const name = requested ?? 'auto';
  if (name === 'auto') return 'auto';
  if (!(BACKENDS as readonly string[]).includes(name)) {
    throw new UserError(`unknown backend "${name}" (expected auto or one of: ${BACKENDS.join(', ')})`);
  }
  return name as BackendName;
}

function hasWebGpu(): boolean {
  return typeof navigator !== 'undefined' && 'gpu' in navigator && (navigator as { gpu?: unknown }).gpu !== undefined;
}

async function tryBackend(backend: BackendName, wasmPath: string | undefined): Promise<void> {
  if (backend === 'webgpu') {
    if (!hasWebGpu()) throw new Error('this browser has no navigator.gpu');
    await import('@tensorflow/tfjs-backend-webgpu'); // registers the backend
    const adapter = await (navigator as unknown as { gpu: { requestAdapter(): Promise<unknown> } }).gpu.requestAdapter();
    if (!adapter) throw new Error('no WebGPU adapter');
  }
  if (backend === 'wasm' && wasmPath !== undefined) setWasmPaths(wasmPath);
  let ok: boolean;
  try {
    ok = await tf.setBackend(backend);
  } catch (e) {
    throw new Error((e as Error).message ?? String(e));
  }
  if (!ok) throw new Error(`TensorFlow.js backend "${backend}" failed to initialise`);
  await tf.ready();
  if (backend === 'webgpu') checkSyncReadback();
}

/**
 * The selection's adaptive max pool reads a tensor synchronously (`dataSync`), which TensorFlow.js
 * does on WebGPU through a canvas; in some browsers (Chromium 156 with tfjs-backend-webgpu 4.22)
 * that read returns zeros and the device is lost. Refuse WebGPU there, so WASM is used instead.
 */
function checkSyncReadback(): void {
  const n = 4096; // above the size WebGPU hands to the CPU
  const values = tf.tidy(() => tf.add(tf.fill([n], 2), tf.scalar(1)).dataSync());
  if (values.length !== n || values.some((v) => v !== 3)) {
    tf.removeBackend('webgpu');
    throw new Error('synchronous read-back is broken in this browser (TensorFlow.js WebGPU reads through a canvas), which the selection needs');
  }
}

/** Initialise the engine once per page; later calls return what the first chose. */
export function initEngine(options: BrowserEngineOptions = {}): Promise<EngineInfo> {
  if (!ready) {
    const requested = resolveBackend(options.backend);
    const order: BackendName[] = requested === 'auto' ? (hasWebGpu() ? ['webgpu', 'wasm', 'cpu'] : ['wasm', 'cpu']) : [requested];
    ready = (async () => {
      const failed: Array<{ backend: BackendName; reason: string }> = [];
      for (const backend of order) {
        try {
          await tryBackend(backend, options.wasmPath);
        } catch (e) {
          failed.push({ backend, reason: e instanceof Error ? e.message : String(e) });
          continue;
        }
        if (backend !== 'webgpu') registerMissingKernels(backend);
        if (backend === 'wasm') {
          return { backend, failed, wasmSimd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT') as boolean, wasmThreads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') as boolean };
        }
        return { backend, failed };
      }
      throw new Error(`no TensorFlow.js backend could start: ${failed.map((f) => `${f.backend}: ${f.reason}`).join('; ')}`);
    })();
  }
  return ready;
}

export { tf };
