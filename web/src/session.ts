/**
 * What the page does, without the page: start the engines, get a model (a folder by URL, or a
 * preset with random weights), and encode one image — decode, squash, normalise, optional text
 * prompt, PS3's encoder — timing every stage. The UI (main.ts) and the test API both call this.
 *
 * Engines, as in Node: ONNX Runtime (onnxruntime-web, WebGPU or WASM) runs the trunk and the
 * selector's convnet and feature projection, from the same graphs Node builds; TensorFlow.js runs
 * the rest (and everything with `engine: 'tfjs'`, kept for checking).
 */
import { initEngine, tf, type EngineInfo } from '../../src/tensor/engine.browser.js';
import { prepareTrunk, useTrunkEngine } from '../../src/engine/trunkEngine.js';
import { useOnnxRuntime } from '../../src/engine/onnxWeb.js';
import type { OrtInfo } from '../../src/engine/onnx/ortBrowser.js';
import { normalise, squash } from '../../src/io/pixels.js';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.js';
import { encodeImage, type StageTimings } from '../../src/model/encoder.js';
import { encodeText } from '../../src/model/text.js';
import type { PS3Model } from '../../src/model/load.js';
import { fetchModel, randomModelBrowser, type FetchProgress } from '../../src/model/loadBrowser.js';
import { presetConfig } from '../../src/model/presets.js';
import type { LookCount } from '../../src/model/selection.js';
import { decodeImageBlob } from './decode.js';
import { clearFolder, putFile } from './shims/vfs.js';

/** The processor's normalisation (SigLIP's), as the CLI uses it. */
export const MEAN = [0.5, 0.5, 0.5] as const;
export const STD = [0.5, 0.5, 0.5] as const;

export interface SessionOptions {
  /** model folder URL; a random-weights preset when absent */
  readonly model?: string;
  readonly preset: string;
  readonly seed: number;
  /** the TensorFlow.js backend (auto | webgpu | wasm | cpu) */
  readonly backend?: string;
  readonly wasmPath: string;
  /** what runs the trunk and the selector's convnet and projection (default 'ort') */
  readonly engine?: string;
  /** ONNX Runtime's provider (auto | webgpu | wasm) */
  readonly ortProvider?: string;
  /** URL prefix onnxruntime-web's `.mjs`/`.wasm` files are served under */
  readonly ortPath: string;
  readonly onStatus?: (text: string) => void;
  readonly onProgress?: (p: FetchProgress) => void;
}

export interface ModelInfo {
  readonly source: string;
  readonly random: boolean;
  readonly preset: string | null;
  readonly scales: readonly number[];
  readonly maxSelectNum: number;
  /** why the prompt box is off, or null when top-down prompts work */
  readonly promptUnavailable: string | null;
  readonly engine: EngineInfo;
  /** 'ort': the trunk, convnet and projection on ONNX Runtime; 'tfjs': all on TensorFlow.js */
  readonly trunkEngine: PageEngine;
  /** ONNX Runtime's provider and why others were refused, with `trunkEngine` 'ort' */
  readonly ort: OrtInfo | null;
  /** set-up: engines, model (fetch or random weights), ONNX Runtime sessions, tokenizer */
  readonly ms: { engine: number; model: number; sessions: number; tokenizer: number };
}

export type PageEngine = 'ort' | 'tfjs';

export const PAGE_ENGINES: readonly PageEngine[] = ['ort', 'tfjs'];

export function resolvePageEngine(requested?: string): PageEngine {
  const name = requested ?? 'ort';
  if (!(PAGE_ENGINES as readonly string[]).includes(name)) throw new Error(`unknown engine "${name}" (expected one of: ${PAGE_ENGINES.join(', ')})`);
  return name as PageEngine;
}

export interface StageTime {
  readonly stage: string;
  readonly ms: number;
  readonly detail?: string;
}

export interface EncodeResult {
  /** per high-res scale, image 0, row-major [gh * gw]: the probabilities the looks used */
  readonly selectionProbs: number[][];
  /** per high-res scale, image 0, row-major 0/1: the patches the looks chose (union) */
  readonly selectionMaps: number[][];
  /** per high-res scale, [gh, gw] */
  readonly grids: Array<[number, number]>;
  readonly scales: number[];
  /** the pooled output (image 0), the encoder's final summary of every token */
  readonly pooled: number[];
  /** tokens out: low-res plus chosen high-res */
  readonly tokens: number;
  readonly lowResTokens: number;
  readonly highResTokensPerScale: number[];
  readonly looks: LookCount;
  /** the text prompt used (top-down), or null (bottom-up) */
  readonly prompt: string | null;
  readonly mode: 'bottom-up' | 'top-down';
  readonly originalWidth: number;
  readonly originalHeight: number;
  /** wall time per stage, in order */
  readonly stages: StageTime[];
  /** the same, by name, plus `total` */
  readonly ms: Record<string, number>;
  /** TensorFlow.js's backend */
  readonly backend: string;
  /** what ran the trunk, convnet and projection: 'ort-wasm', 'ort-webgpu' or 'tfjs' */
  readonly engine: string;
}

export interface EncodeInput {
  readonly blob: Blob;
  readonly name: string;
  readonly prompt?: string | null;
  readonly looks: LookCount;
}

/** The folder the tokenizer files are put at in the virtual file system. */
const TOKENIZER_DIR = '/model';

const nextFrame = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

export class Session {
  private constructor(
    readonly model: PS3Model,
    readonly info: ModelInfo,
    private readonly tokenizer: TextTokenizer | null,
  ) {}

  static async create(o: SessionOptions): Promise<Session> {
    const status = o.onStatus ?? (() => {});
    const trunkEngine = resolvePageEngine(o.engine);
    let t = performance.now();
    status('starting TensorFlow.js…');
    const engine = await initEngine({ backend: o.backend ?? 'auto', wasmPath: o.wasmPath });
    let ort: OrtInfo | null = null;
    if (trunkEngine === 'ort') {
      status('starting ONNX Runtime…');
      ort = await useOnnxRuntime({ provider: o.ortProvider ?? 'auto', wasmPath: o.ortPath });
    } else useTrunkEngine('tfjs');
    const engineMs = performance.now() - t;
    t = performance.now();
    let model: PS3Model;
    let tokenizerFiles: ReadonlyMap<string, string> = new Map();
    let hasText = true;
    if (o.model) {
      status(`fetching model ${o.model}…`);
      const fetched = await fetchModel(o.model, o.onProgress ? { onProgress: o.onProgress } : {});
      model = fetched.model;
      tokenizerFiles = fetched.tokenizerFiles;
      hasText = fetched.model.parts === 'all';
    } else {
      status(`building random weights (preset ${o.preset}, seed ${o.seed})…`);
      await nextFrame();
      model = randomModelBrowser(presetConfig(o.preset), o.seed);
    }
    const modelMs = performance.now() - t;
    t = performance.now();
    if (trunkEngine === 'ort') {
      // the sessions are made now, not in the first encode (a b14 trunk's take seconds)
      status(`building ONNX Runtime sessions (${ort!.provider})…`);
      await nextFrame();
      await prepareTrunk('onnx', model.weights, model.config.vision);
    }
    const sessionsMs = performance.now() - t;
    t = performance.now();
    let tokenizer: TextTokenizer | null = null;
    let promptUnavailable: string | null = null;
    if (!o.model) promptUnavailable = 'random weights come without a tokenizer: bottom-up only (a model folder with tokenizer.json enables prompts)';
    else if (!tokenizerFiles.has('tokenizer.json')) promptUnavailable = 'the model folder has no tokenizer.json: bottom-up only';
    else if (!hasText) promptUnavailable = 'the checkpoint has no text tower: bottom-up only';
    else {
      clearFolder(TOKENIZER_DIR);
      for (const [name, text] of tokenizerFiles) putFile(`${TOKENIZER_DIR}/${name}`, text);
      const text = model.config.text;
      tokenizer = await loadTokenizer(TOKENIZER_DIR, { contextLength: text.contextLength, clean: text.tokenizerClean, padId: text.padId });
    }
    const cfg = model.config.vision;
    const info: ModelInfo = {
      source: o.model ?? `preset ${o.preset}, ${model.source}`,
      random: !o.model,
      preset: o.model ? null : o.preset,
      scales: cfg.scales,
      maxSelectNum: cfg.maxSelectNum,
      promptUnavailable,
      engine,
      trunkEngine,
      ort,
      ms: { engine: engineMs, model: modelMs, sessions: sessionsMs, tokenizer: performance.now() - t },
    };
    return new Session(model, info, tokenizer);
  }

  get topScale(): number {
    return this.model.config.vision.scales[this.model.config.vision.scales.length - 1]!;
  }

  /** Encode one image; also returns the decoded bitmap for drawing. */
  async encode(input: EncodeInput, onStatus: (text: string) => void = () => {}): Promise<{ result: EncodeResult; bitmap: ImageBitmap }> {
    const { config, weights } = this.model;
    const S = this.topScale;
    const prompt = input.prompt?.trim() ? input.prompt.trim() : null;
    if (prompt !== null && !this.tokenizer) throw new Error(`a prompt needs a tokenizer: ${this.info.promptUnavailable ?? 'none loaded'}`);
    const stages: StageTime[] = [];
    const start = performance.now();
    let clock = start;
    const lap = (stage: string, detail?: string): void => {
      const now = performance.now();
      stages.push(detail === undefined ? { stage, ms: now - clock } : { stage, ms: now - clock, detail });
      clock = now;
    };

    onStatus('decoding…');
    await nextFrame();
    clock = performance.now();
    const { rgb, bitmap } = await decodeImageBlob(input.blob, input.name);
    lap('decode', `${rgb.width}×${rgb.height}`);
    onStatus(`squashing to ${S}×${S}…`);
    await nextFrame();
    clock = performance.now();
    const squashed = squash(rgb, S);
    lap('squash', `PIL bicubic to ${S}×${S}`);
    const data = normalise(squashed, MEAN, STD);
    lap('normalise');

    let promptTensor: tf.Tensor | undefined;
    if (prompt !== null) {
      const ids = this.tokenizer!.encode([prompt]);
      const text = encodeText(weights, config.text, ids, 1);
      text.pooledOutput.dispose();
      await text.prompt.data();
      promptTensor = text.prompt;
      lap('text', `"${prompt}"`);
    }

    onStatus('encoding…');
    await nextFrame();
    clock = performance.now();
    const timings: StageTimings = {};
    const encodeStart = performance.now();
    const out = await encodeImage(weights, config, { data, batch: 1, height: S, width: S }, {
      numLookClose: input.looks,
      outputHiddenStates: false,
      timings,
      ...(promptTensor ? { prompt: promptTensor } : {}),
    });
    promptTensor?.dispose();
    const encodeMs = performance.now() - encodeStart;
    if (timings.lowRes !== undefined) stages.push({ stage: 'low-res', ms: timings.lowRes, detail: `${config.vision.scales[0]}px` });
    if (timings.selection !== undefined) stages.push({ stage: 'selection', ms: timings.selection, detail: prompt !== null ? 'top-down' : 'bottom-up' });
    (timings.looks ?? []).forEach((l, i) => stages.push({ stage: `look ${i + 1}`, ms: l.ms, detail: `${l.tokens} tokens` }));
    if (timings.assemble !== undefined) stages.push({ stage: 'assemble', ms: timings.assemble });
    const accounted = (timings.lowRes ?? 0) + (timings.selection ?? 0) + (timings.looks ?? []).reduce((a, l) => a + l.ms, 0) + (timings.assemble ?? 0);
    if (encodeMs - accounted > 5) stages.push({ stage: 'encode (rest)', ms: encodeMs - accounted });
    clock = performance.now();

    const grids = out.selectionProbs.map((p) => [p.shape[1]!, p.shape[2]!] as [number, number]);
    const selectionProbs = await Promise.all(out.selectionProbs.map(async (p, i) => Array.from((await p.data()).subarray(0, grids[i]![0] * grids[i]![1]))));
    const selectionMaps = out.selectionMaps.map((m) => Array.from(m.data.subarray(0, m.height * m.width)));
    const tokens = out.lastHiddenState.shape[1]!;
    const pooled = Array.from((await out.pooledOutput.data()).subarray(0, out.pooledOutput.shape[1]));
    const highResTokensPerScale = selectionMaps.map((m) => m.reduce((a, v) => a + v, 0));
    const disposed = new Set<tf.Tensor>([out.lastHiddenState, ...out.hiddenStates, ...out.selectionProbs, ...out.bottomupSelectionProbs, ...(out.topdownSelectionProbs ?? []), out.pooledOutput]);
    tf.dispose([...disposed]);
    lap('read back');

    const ms: Record<string, number> = {};
    for (const s of stages) ms[s.stage] = s.ms;
    ms['total'] = performance.now() - start;
    const result: EncodeResult = {
      selectionProbs,
      selectionMaps,
      grids,
      scales: [...config.vision.scales],
      pooled,
      tokens,
      lowResTokens: tokens - highResTokensPerScale.reduce((a, c) => a + c, 0),
      highResTokensPerScale,
      looks: input.looks,
      prompt,
      mode: prompt !== null ? 'top-down' : 'bottom-up',
      originalWidth: rgb.width,
      originalHeight: rgb.height,
      stages,
      ms,
      backend: this.info.engine.backend,
      engine: this.info.ort ? `ort-${this.info.ort.provider}` : 'tfjs',
    };
    return { result, bitmap };
  }
}
