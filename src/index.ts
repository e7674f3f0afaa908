/** The library: everything a user of PS3 needs, from engine set-up to heat maps. */
import { resolveTrunkEngine, useTrunkEngine } from './engine/trunkEngine.js';
export { initEngine, resolveBackend, tf, type BackendName } from './tensor/engine.js';
export { UserError, isUserError } from './errors.js';
export { parseConfig, type PS3Config, type VisionConfig, type TextConfig, type TrunkConfig } from './io/config.js';
export { openSafetensors, readSafetensors, parseSafetensors, writeSafetensors, serializeSafetensors, type NamedArray } from './io/safetensors.js';
export { decodeImage, squash, normalise, loadPixelValues, toPng, type RgbImage, type PixelValues } from './io/image.js';
export { loadTokenizer, canonicalize, type TextTokenizer } from './io/tokenizer.js';
export { loadModel as loadModelFolder, openStoredWeights, randomModel, readConfigFile, imageProcessor, type PS3Model, type ModelParts } from './model/load.js';
export { officialConfigJson } from './io/exportConfig.js';
export { parsePreprocessor, readPreprocessor, preprocessorJson, type ImageProcessorConfig } from './io/preprocessor.js';
export { writeTokenizerFolder } from './io/tokenizerFolder.js';
export { loadModel, loadModelTokenizer, resolveModelFolder, tokenizerSource, type LoadModelOptions } from './hub/pretrained.js';
export { snapshot, MODEL_PLAN, TOKENIZER_PLAN, type Snapshot, type SnapshotOptions, type DownloadProgress } from './hub/snapshot.js';
export { hubSettings, type HubSettings } from './hub/settings.js';
export { parseModelId, looksLikeModelId, type ModelId } from './hub/repoId.js';
export { modelInfo, type ModelInfo } from './model/info.js';
export { PRESETS, presetConfig } from './model/presets.js';
export { paramTable, visionParams, textParams, countParams } from './model/params.js';
export { Weights } from './model/weights.js';
export {
  encodeImage,
  lowRes,
  look,
  selection,
  highresSelectionFeatures,
  type EncodeOptions,
  type EncodeOutput,
  type Pixels,
  type SelectionMap,
  type StageTimings,
} from './model/encoder.js';
export { encodeText, type TextOutput } from './model/text.js';
export type { TrunkRunner } from './model/vit.js';
export { resolveTrunkEngine, trunkRunner, convnetRunner, prepareTrunk, releaseTrunk, useTrunkEngine, TRUNK_ENGINES, DEFAULT_TRUNK_ENGINE, type TrunkEngine } from './engine/trunkEngine.js';
export { checkHeapFits, heapNeed, WASM_HEAP_BYTES, type HeapNeed } from './engine/capacity.js';
export { setDefaultConvnet, type ConvnetRunner } from './model/convnet.js';
export { benchTrain, type TrainBench, type TrainPhases } from './eval/benchTrain.js';
export { setDefaultTrunk, type DefaultTrunk } from './model/vit.js';
export { encodePretrain, type PretrainOutput } from './model/pretrain.js';
export { featureMaps } from './model/featureMaps.js';
export { baseBudgets, boxGroundTruthPerScale, lookBudgets, planLooks, chooseLook, gridAtScale, imageSizeAtScale, type LookCount } from './model/selection.js';
export { heatmapOverlay, displayImage, viridis } from './io/heatmap.js';
export { writeSelectionPictures } from './eval/selectionPictures.js';
export { runParity, type ParityReport, type CaseResult } from './eval/parity.js';
export { pretrainObjective, lossAndGrads, type PretrainBatch, type LossWeights } from './train/objective.js';
export { siglipLoss, boxLoss } from './train/loss.js';
export { AdamW, clipGradients } from './train/optimizer.js';
export { learningRate } from './train/schedule.js';
export { runTraining, type TrainRunOptions, type RunEvents } from './train/run.js';
export { ShardDataset, expandShardSpec, validateShards, type RawSample, type Annotation } from './io/shards.js';
export { makeSample } from './train/samples.js';
export { renderScene } from './data/scene/render.js';
export type { Scene, SceneObject } from './data/scene/types.js';
export { writeSynthDataset } from './data/synth.js';
export { encodeWith, ENCODE_METHODS, type EncodeMethod } from './model/baselines.js';
export { evaluateQa, type QaReport } from './eval/qa/evaluate.js';
export { makeBenchmark } from './eval/qa/make4k.js';
export { loadBenchmark } from './eval/qa/format.js';
export { evaluateRetrieval, type RetrievalReport } from './eval/retrieval.js';
export { costReport, type CostReport } from './eval/cost.js';
export { renderPlot, type PlotSpec } from './eval/plot.js';
export { textFeatures, pooledRegion, encodeRegion, scoreOf, disposeEncode } from './model/region.js';
export { trainVilaHd, type TrainVilaOptions, type TrainVilaEvents, type VilaStepMetrics } from './mllm/train.js';
export { answerQuestion as answerVilaQuestion, type AskOptions, type VilaAnswer } from './mllm/answer.js';
export { loadVilaHd, disposeVilaHd, newVilaConfig, type VilaHd } from './mllm/model.js';
export { isVilaFolder, type VilaConfig, type LmConfig } from './mllm/config.js';
export { vilaInfo, type VilaInfo, type VilaMethodInfo } from './mllm/info.js';
export { evaluateVilaQa, evaluateVilaRuns, scalingCurves, scalingRuns, curvesFrom, plotScaling, type VilaQaReport, type VilaRun, type ScalingCurves, type ScalingPlan } from './eval/qa/vila.js';
export { wilson, newcombeDifference } from './eval/stats.js';

// `encodeImage` and every pass that names no engine run the trunk on $PS3_TRUNK's engine, else ONNX Runtime
useTrunkEngine(resolveTrunkEngine());
