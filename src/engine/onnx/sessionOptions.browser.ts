/**
 * The options every ONNX Runtime session of the engine opens with, in the browser page:
 * `web/build.mjs` bundles this file in place of `sessionOptions.ts` (which sizes threads with
 * node:os). The provider is the one `initOrt` chose (WebGPU or WASM); threads are set once, on
 * onnxruntime-web's `env`, by `initOrt`. The name stays the Node one's, so the session code is shared.
 */
import type { InferenceSession } from 'onnxruntime-web';
import { ortProvider } from './ortBrowser.js';

export function cpuSessionOptions(): InferenceSession.SessionOptions {
  return {
    executionProviders: [ortProvider()],
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // as in Node: a look's activations go back after the run instead of staying reserved
    enableCpuMemArena: false,
  };
}
