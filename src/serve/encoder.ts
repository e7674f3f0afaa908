/**
 * The model behind the server and the queue's workers, loaded once: image bytes in, an encode
 * out (pooled feature, token counts, and on request the `ps3 encode` features as safetensors
 * bytes or a heat map as PNG); and `similarity`, texts scored against an image as
 * `ps3 similarity` scores them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine, tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { serializeSafetensors, type NamedArray } from '../io/safetensors.js';
import { UserError } from '../errors.js';
import { encodeImage, type EncodeOutput, type Pixels } from '../model/encoder.js';
import { loadModel, randomModel, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { encodeText } from '../model/text.js';
import { disposeEncode, encodeRegion, logitParams, scoreOf, textFeatures } from '../model/region.js';
import { releaseTrunk, resolveTrunkEngine, trunkRunner, type TrunkEngine } from '../engine/trunkEngine.js';
import type { TrunkRunner } from '../model/vit.js';
import { featureArrays } from './features.js';
import { heatmapPng } from './heatmapPng.js';
import { requestLooks, type LookRequest } from './looks.js';

export interface ModelSource {
  /** a PS3 model folder (with tokenizer files for prompts and similarity) */
  readonly model?: string;
  /** or a preset's shape with random weights */
  readonly preset?: string;
  readonly seed?: number;
}

export interface EncoderOptions {
  readonly backend?: string;
  readonly trunk?: string;
  /** refuse images whose header claims more pixels than this */
  readonly maxPixels: number;
}

export interface EncodeRequest extends LookRequest {
  readonly prompt?: string;
  /** what to return besides the pooled feature */
  readonly want?: 'features' | 'heatmap';
  /** the heat map's high-res scale in pixels (default the first high-res scale) */
  readonly heatmapScale?: number;
  /** recorded in the features' metadata, as `ps3 encode` records the file name */
  readonly source?: string;
}

export interface EncodeResult {
  readonly pooled: number[];
  /** tokens in the last hidden state: low-res plus chosen high-res */
  readonly tokens: number;
  readonly highresTokens: number;
  /** encode time, decode to outputs */
  readonly ms: number;
  readonly features?: Buffer;
  readonly png?: Buffer;
}

export interface SimilarityRow {
  readonly text: string;
  readonly cosine: number;
  readonly probability: number;
  readonly tokens: number;
}

const MEAN = [0.5, 0.5, 0.5] as const;
const STD = [0.5, 0.5, 0.5] as const;

export class Encoder {
  private constructor(
    readonly model: PS3Model,
    private readonly tokenizer: TextTokenizer | undefined,
    private readonly engine: TrunkEngine,
    private readonly trunk: TrunkRunner | null,
    private readonly options: EncoderOptions,
  ) {}

  /** Load the model (and its tokenizer when the folder has one); every problem is a UserError. */
  static async load(source: ModelSource, options: EncoderOptions): Promise<Encoder> {
    await initEngine(options);
    if (source.model && source.preset) throw new UserError('give --model DIR or --preset NAME, not both');
    let model: PS3Model;
    let tokenizer: TextTokenizer | undefined;
    if (source.model) {
      const withText = fs.existsSync(path.join(source.model, 'tokenizer.json'));
      model = loadModel(source.model, withText ? 'all' : 'vision');
      if (withText) {
        const t = model.config.text;
        tokenizer = await loadTokenizer(source.model, { contextLength: t.contextLength, clean: t.tokenizerClean, padId: t.padId });
      }
    } else if (source.preset) {
      model = randomModel(presetConfig(source.preset), source.seed ?? 0);
    } else {
      throw new UserError('--model DIR is required (or --preset NAME for random weights)');
    }
    const engine = resolveTrunkEngine(options.trunk);
    const trunk = await trunkRunner(engine, model.weights, model.config.vision.trunk);
    return new Encoder(model, tokenizer, engine, trunk, options);
  }

  get topScale(): number {
    const s = this.model.config.vision.scales;
    return s[s.length - 1]!;
  }

  get hasTokenizer(): boolean {
    return this.tokenizer !== undefined;
  }

  private async pixels(bytes: Uint8Array, name: string): Promise<{ pixels: Pixels; aspect: number }> {
    const S = this.topScale;
    const pv = await loadPixelValues(bytes, { size: S, mean: MEAN, std: STD, maxPixels: this.options.maxPixels, name });
    return { pixels: { data: pv.pixels, batch: 1, height: S, width: S }, aspect: pv.originalWidth / pv.originalHeight };
  }

  private prompts(texts: readonly string[]): { features: tf.Tensor; prompts: tf.Tensor } {
    if (!this.tokenizer) throw new UserError('this model has no tokenizer files (tokenizer.json), so it takes no text');
    return textFeatures(this.model, this.tokenizer.encode([...texts]), texts.length);
  }

  async encode(bytes: Uint8Array, r: EncodeRequest): Promise<EncodeResult> {
    const cfg = this.model.config.vision;
    const looks = requestLooks(cfg, r);
    const heatmapIndex = r.heatmapScale === undefined ? 0 : cfg.scales.indexOf(r.heatmapScale) - 1;
    if (heatmapIndex < 0) throw new UserError(`scale ${r.heatmapScale} is not a high-res scale of this model (${cfg.scales.slice(1).join(', ')})`);
    const t0 = performance.now();
    const { pixels, aspect } = await this.pixels(bytes, r.source ?? 'image');
    let prompt: tf.Tensor | undefined;
    if (r.prompt !== undefined) {
      if (!this.tokenizer) throw new UserError('this model has no tokenizer files (tokenizer.json), so it takes no prompt');
      const t = encodeText(this.model.weights, this.model.config.text, this.tokenizer.encode([r.prompt]), 1);
      t.pooledOutput.dispose();
      prompt = t.prompt;
    }
    let out: EncodeOutput | undefined;
    try {
      out = await encodeImage(this.model.weights, this.model.config, pixels, { ...looks, ...(prompt ? { prompt } : {}), trunk: this.trunk, outputHiddenStates: false });
      const pooled = Array.from(await out.pooledOutput.data());
      const tokens = out.lastHiddenState.shape[1]!;
      const lowRes = (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
      let features: Buffer | undefined;
      let png: Buffer | undefined;
      if (r.want === 'features') features = await this.serialize(out, r.source);
      if (r.want === 'heatmap') png = await heatmapPng(pixels, out, heatmapIndex, aspect);
      return { pooled, tokens, highresTokens: tokens - lowRes, ms: performance.now() - t0, ...(features ? { features } : {}), ...(png ? { png } : {}) };
    } finally {
      if (out) disposeEncode(out);
      prompt?.dispose();
    }
  }

  /** The features of an encode as `ps3 encode` writes them. */
  async serialize(out: EncodeOutput, source?: string): Promise<Buffer> {
    const arrays: Map<string, NamedArray> = await featureArrays(out);
    return serializeSafetensors(arrays, source !== undefined ? { source } : undefined);
  }

  async similarity(bytes: Uint8Array, texts: readonly string[], r: LookRequest): Promise<SimilarityRow[]> {
    if (texts.length === 0) throw new UserError('give at least one text');
    const looks = requestLooks(this.model.config.vision, r);
    const { features, prompts } = this.prompts(texts);
    try {
      const { pixels } = await this.pixels(bytes, 'image');
      const params = logitParams(this.model);
      const rows: SimilarityRow[] = [];
      for (const [i, text] of texts.entries()) {
        const prompt = tf.slice(prompts, [i, 0], [1, -1]);
        const { out, region } = await encodeRegion(this.model, pixels, prompt, { ...looks, trunk: this.trunk });
        const cosine = tf.tidy(() => tf.sum(tf.mul(region, tf.slice(features, [i, 0], [1, -1])))).dataSync()[0]!;
        rows.push({ text, ...scoreOf(cosine, params), tokens: out.lastHiddenState.shape[1]! });
        disposeEncode(out);
        tf.dispose([prompt, region]);
      }
      return rows;
    } finally {
      tf.dispose([features, prompts]);
    }
  }

  async close(): Promise<void> {
    await releaseTrunk(this.engine, this.model.weights);
    this.model.weights.dispose();
  }
}
