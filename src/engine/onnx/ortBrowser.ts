/**
 * ONNX Runtime in the browser (onnxruntime-web): the page's fast path for the stages Node runs on
 * onnxruntime-node (the trunk, the selector's convnet and feature projection), from the same
 * graphs. `web/build.mjs` bundles onnxruntime-web's WebGPU build (it carries the WASM CPU provider
 * too) in place of onnxruntime-node and serves its `.mjs`/`.wasm` under the page's `ort/` folder.
 *
 * The provider is chosen once per page: WebGPU when the browser has a hardware adapter and a check
 * graph computes right on it, else WASM (SIMD; threads when the page is cross-origin isolated).
 * A software adapter (SwiftShader, what headless Chromium offers without a GPU) is only used when
 * asked for by name: WASM is faster there. `sessionOptions.browser.ts` reads the choice.
 */
import * as ort from 'onnxruntime-web';
import { UserError } from '../../errors.js';
import { GraphBuilder } from './graph.js';

export type OrtProvider = 'webgpu' | 'wasm';

export const ORT_PROVIDERS: readonly OrtProvider[] = ['webgpu', 'wasm'];

export interface OrtInfo {
  readonly provider: OrtProvider;
  /** providers tried before it that were refused, with why */
  readonly failed: ReadonlyArray<{ provider: OrtProvider; reason: string }>;
  /** WASM threads (1 without cross-origin isolation) */
  readonly threads: number;
  /** the WebGPU adapter's vendor/architecture, when WebGPU is in use */
  readonly adapter?: string;
}

export interface OrtBrowserOptions {
  /** a provider, or 'auto' (the default) */
  readonly provider?: string;
  /** URL prefix (ending in '/') onnxruntime-web's `.mjs` and `.wasm` files are served under */
  readonly wasmPath: string;
}

let chosen: OrtProvider | undefined;
let ready: Promise<OrtInfo> | undefined;

/** The provider every session opens with; WASM until `initOrt` has chosen. */
export function ortProvider(): OrtProvider {
  return chosen ?? 'wasm';
}

export function resolveOrtProvider(requested?: string): OrtProvider | 'auto' {
  const name = requested ?? 'auto';
  if (name === 'auto') return 'auto';
  if (!(ORT_PROVIDERS as readonly string[]).includes(name)) throw new UserError(`unknown ONNX Runtime provider "${name}" (expected auto or one of: ${ORT_PROVIDERS.join(', ')})`);
  return name as OrtProvider;
}

interface AdapterInfo {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly isFallbackAdapter?: boolean;
}

interface GpuAdapter {
  readonly info?: AdapterInfo;
  readonly isFallbackAdapter?: boolean;
}

async function webGpuAdapter(): Promise<{ name: string; software: boolean }> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<GpuAdapter | null> } }).gpu;
  if (!gpu) throw new Error('this browser has no navigator.gpu');
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture].filter((s) => s).join(' ') || 'unknown adapter';
  const software = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter) || /swiftshader/i.test(name);
  return { name, software };
}

/**
 * The check graph: softmax(x W) over a [1, 4, 8] input, against the same computed here. Catches a
 * provider that starts but computes wrong (as some browsers' WebGPU does for TensorFlow.js).
 */
async function checkProvider(provider: OrtProvider): Promise<void> {
  const g = new GraphBuilder('ps3_provider_check');
  const x = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i) * 2);
  const w = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i * 0.7));
  const input = g.input('x', [1, 4, 8]);
  g.op('Softmax', [g.op('MatMul', [input, g.floats('w', [8, 8], w)])], [{ name: 'axis', int: -1 }], 'y');
  g.output('y', [1, 4, 8]);
  const session = await ort.InferenceSession.create(g.toBytes(), { executionProviders: [provider] });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [1, 4, 8]) });
    const y = out['y']!.data as Float32Array;
    for (let r = 0; r < 4; r++) {
      const row = Array.from({ length: 8 }, (_, j) => x.subarray(r * 8, r * 8 + 8).reduce((a, v, i) => a + v * w[i * 8 + j]!, 0));
      const max = Math.max(...row);
      const e = row.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, v) => a + v, 0);
      for (let j = 0; j < 8; j++) {
        const want = e[j]! / sum;
        if (!(Math.abs(y[r * 8 + j]! - want) < 1e-4)) throw new Error(`a check graph computes ${y[r * 8 + j]} where ${want.toFixed(6)} is right`);
      }
    }
  } finally {
    await session.release();
  }
}

/** Set up onnxruntime-web once per page; later calls return what the first chose. */
export function initOrt(options: OrtBrowserOptions): Promise<OrtInfo> {
  if (!ready) {
    const requested = resolveOrtProvider(options.provider);
    ready = (async () => {
      ort.env.wasm.wasmPaths = options.wasmPath;
      const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
      // onnxruntime-web's default is half the cores; the page runs one encode at a time
      const threads = isolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
      ort.env.wasm.numThreads = threads;
      ort.env.logLevel = 'error';
      const failed: Array<{ provider: OrtProvider; reason: string }> = [];
      const order: OrtProvider[] = requested === 'auto' ? ['webgpu', 'wasm'] : [requested];
      for (const provider of order) {
        let adapter: string | undefined;
        try {
          if (provider === 'webgpu') {
            const a = await webGpuAdapter();
            if (a.software && requested === 'auto') throw new Error(`the adapter (${a.name}) is a software fallback, slower than WASM`);
            adapter = a.name;
          }
          await checkProvider(provider);
        } catch (e) {
          failed.push({ provider, reason: e instanceof Error ? e.message : String(e) });
          continue;
        }
        chosen = provider;
        return { provider, failed, threads, ...(adapter ? { adapter } : {}) };
      }
      throw new Error(`ONNX Runtime could not start: ${failed.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`);
    })();
  }
  return ready;
}
