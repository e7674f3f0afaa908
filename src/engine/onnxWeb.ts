/**
 * The fast path in a browser (the library's browser entry and the page): start onnxruntime-web
 * (`onnx/ortBrowser.ts` chooses the provider) and make it the engine `encodeImage` uses for the
 * trunk and the selector's convnet and feature projection, as the Node entry does with
 * onnxruntime-node at load. ONNX Runtime is imported on this call only, so a bundle that splits
 * puts it in a chunk of its own and a program that never calls this does not fetch it.
 */
import type { OrtBrowserOptions, OrtInfo } from './onnx/ortBrowser.js';
import { useTrunkEngine } from './trunkEngine.js';

export async function useOnnxRuntime(options: OrtBrowserOptions): Promise<OrtInfo> {
  const { initOrt } = await import('./onnx/ortBrowser.js');
  const info = await initOrt(options);
  useTrunkEngine('onnx');
  return info;
}
