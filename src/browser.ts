/**
 * The package's browser entry (`ps3-ts/browser`): the encoder with models fetched from a URL and
 * the processor's squash and normalisation, with nothing that needs Node. Bundlers that follow
 * package.json's "browser" field (esbuild, webpack, Vite, Rollup's node-resolve) swap the Node
 * engine set-up for the browser one (WebGPU when it works, else WASM), and onnxruntime-node and
 * the Node session options for onnxruntime-web and its own: after `useOnnxRuntime`, `encodeImage`
 * runs the trunk and the selector's convnet and feature projection on ONNX Runtime (the fast path),
 * TensorFlow.js the rest.
 */
export { initEngine, resolveBackend, tf, type BackendName, type BrowserEngineOptions, type EngineInfo } from './tensor/engine.browser.js';
export { useOnnxRuntime } from './engine/onnxWeb.js';
export type { OrtBrowserOptions, OrtInfo, OrtProvider } from './engine/onnx/ortBrowser.js';
export { useTrunkEngine, prepareTrunk, releaseTrunk, trunkRunner, convnetRunner, TRUNK_ENGINES, type TrunkEngine } from './engine/trunkEngine.js';
export { UserError, isUserError } from './errors.js';
export { parseConfig, type PS3Config, type VisionConfig, type TextConfig, type TrunkConfig } from './io/config.js';
export { parseSafetensors, type NamedArray } from './io/safetensorsFormat.js';
export { squash, normalise, resizeImage, type RgbImage } from './io/pixels.js';
export { fetchModel, modelFromBytes, randomModelBrowser, type FetchedModel, type FetchModelOptions, type FetchProgress } from './model/loadBrowser.js';
export type { PS3Model, ModelParts } from './model/load.js';
export { PRESETS, presetConfig } from './model/presets.js';
export { encodeImage, type EncodeOptions, type EncodeOutput, type Pixels, type SelectionMap, type StageTimings } from './model/encoder.js';
export { encodeText, type TextOutput } from './model/text.js';
export { featureMaps } from './model/featureMaps.js';
export type { LookCount } from './model/selection.js';
