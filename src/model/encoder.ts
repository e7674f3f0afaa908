/**
 * The PS3 vision encoder: see the whole image at low resolution, score every patch against a
 * prompt (the learned prior prompt bottom-up, a text prompt top-down), then look closely at the
 * chosen patches of each high-res scale, which attend to the low-res keys and values.
 *
 * Stages are separate functions over named weights (`lowRes`, `selection`, `look`) so another
 * engine can replace one without touching the others.
 */
import { tf } from '../tensor/engine.js';
import { resize } from '../tensor/resample.js';
import type { PS3Config, VisionConfig } from '../io/config.js';
import { UserError } from '../errors.js';
import { CONVNET_INPUT, convnetFor, shallowConvNet, type ConvnetRunner } from './convnet.js';
import {
  baseBudgets,
  chooseLook,
  forceGroundTruth,
  gridAtScale,
  groundTruthPerScale,
  imageSizeAtScale,
  lookBudgets,
  planLooks,
  projectionFor,
  selectionFeatures,
  selectionInput,
  selectionLogits,
  selectionProbs,
  smoothProbs,
  type LookCount,
} from './selection.js';
import { disposeKv, finalNorm, mapPool, patchEmbed, patchify, positionEmbedding, selectedPositionEmbedding, trunk, trunkFor, type KV, type TrunkRunner } from './vit.js';
import type { Weights } from './weights.js';

/** Normalised pixels, NCHW float32, at the top scale (any aspect ratio). */
export interface Pixels {
  readonly data: Float32Array;
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  /**
   * Resizes of `data` already made elsewhere (a data-loading thread), keyed "HxW", each
   * [B, 3, H, W] plain bicubic from `data`: see `inputResizes`.
   */
  readonly resized?: ReadonlyMap<string, Float32Array>;
}

/** Every size the encoder resizes an input of height x width to: low-res, the convnet's input, each high-res scale. */
export function inputResizes(cfg: VisionConfig, height: number, width: number): Array<[number, number]> {
  const sizes: Array<[number, number]> = [[cfg.scales[0]!, cfg.scales[0]!]];
  if (cfg.highresSelectionFeature) sizes.push([CONVNET_INPUT, CONVNET_INPUT]);
  cfg.scales.slice(1).forEach((_, i) => sizes.push(imageSizeAtScale(cfg, height, width, i + 1)));
  const keys = new Set<string>();
  return sizes.filter(([h, w]) => {
    const key = `${h}x${w}`;
    if ((h === height && w === width) || keys.has(key)) return false;
    keys.add(key);
    return true;
  });
}

/**
 * `pixels` with every resize the encoder will need made now (`inputResizes`), so that several
 * encodes of one image (one per prompt, say) share them instead of each resizing again.
 */
export function withResizes(cfg: VisionConfig, pixels: Pixels): Pixels {
  const { batch, height, width, data } = pixels;
  const resized = new Map(pixels.resized ?? []);
  for (const [h, w] of inputResizes(cfg, height, width)) {
    const key = `${h}x${w}`;
    if (!resized.has(key)) resized.set(key, resize(data, batch * 3, height, width, h, w, 'bicubic'));
  }
  return { ...pixels, resized };
}

export interface EncodeOptions {
  /** top-down prompt [B, D] (from the text tower's `prompt`); bottom-up (prior prompt) when absent */
  prompt?: tf.Tensor;
  /** number of looks, or "all" patches; 0 returns the low-res tokens only */
  numLookClose?: LookCount;
  /** a token budget instead of a number of looks */
  numTokenLookClose?: number;
  /** restrict looks to the first n high-res scales (one n for all images, or one per image) */
  onlySelectFirstNScale?: number | readonly number[];
  /** area-pool the selection map to 6 x 6 and back before choosing */
  smoothSelectionProb?: boolean;
  /** 0/1 maps [B, H, W] at input resolution: every patch they touch is chosen first */
  gtSelectionMaps?: Float32Array;
  /**
   * instead of `gtSelectionMaps`, the same already on each high-res scale's grid ([B * gh * gw]
   * each, as `groundTruthPerScale` or `boxGroundTruthPerScale` make it): no map at input resolution
   */
  gtPerScale?: readonly Float32Array[];
  /** keep every block's hidden states in the output (default true) */
  outputHiddenStates?: boolean;
  /** when given, filled with each stage's wall time in ms (forces a sync at stage ends) */
  timings?: StageTimings;
  /**
   * runs the trunk's blocks for the low-res pass and the looks: another engine's runner, or null
   * for TensorFlow.js's own blocks; when absent, the installed default (`setDefaultTrunk`: ONNX
   * Runtime in Node once the library or the CLI is loaded, TensorFlow.js otherwise); the
   * selector's convnet runs on the default engine too, and on TensorFlow.js when this is null
   */
  trunk?: TrunkRunner | null;
  /** runs the selector's convnet: another engine's, or null for TensorFlow.js; when absent, TensorFlow.js if `trunk` is null, else the installed default */
  convnet?: ConvnetRunner | null;
}

export interface StageTimings {
  lowRes?: number;
  selection?: number;
  /** one entry per look, with its number of high-res tokens */
  looks?: Array<{ ms: number; tokens: number }>;
  assemble?: number;
  /** wall and CPU time of each part of the stages above, summed over the encode (filled when `timings` is given) */
  parts?: Partial<Record<StagePart, PartTime>>;
}

/** The parts a profile splits an encode into (decoding is the caller's). */
export const STAGE_PARTS = ['resize', 'patchEmbed', 'posEmbed', 'lowResTrunk', 'convnet', 'selectionHead', 'pool', 'highResTrunk', 'gather'] as const;
export type StagePart = (typeof STAGE_PARTS)[number];

export interface PartTime {
  ms: number;
  /** CPU time of the whole process (every thread), 0 where the platform does not say */
  cpuMs: number;
}

function cpuMsNow(): number {
  const usage = globalThis.process?.cpuUsage?.();
  return usage ? (usage.user + usage.system) / 1000 : 0;
}

function addPart(timings: StageTimings, part: StagePart, ms: number, cpuMs: number): void {
  const parts = (timings.parts ??= {});
  const t = (parts[part] ??= { ms: 0, cpuMs: 0 });
  t.ms += ms;
  t.cpuMs += cpuMs;
}

/** `fn()`, its time added to `part` when profiling; the tensor `done` picks (the result, if a tensor) is waited for first. */
function timedSync<T>(timings: StageTimings | undefined, part: StagePart, fn: () => T, done?: (r: T) => tf.Tensor | undefined): T {
  if (!timings) return fn();
  const t0 = performance.now();
  const c0 = cpuMsNow();
  const r = fn();
  const t = done ? done(r) : r instanceof tf.Tensor ? r : undefined;
  t?.dataSync();
  addPart(timings, part, performance.now() - t0, cpuMsNow() - c0);
  return r;
}

/** `timedSync` for an async step; `done` picks the tensor to wait for. */
async function timed<T>(timings: StageTimings | undefined, part: StagePart, fn: () => Promise<T>, done?: (r: T) => tf.Tensor | undefined): Promise<T> {
  if (!timings) return fn();
  const t0 = performance.now();
  const c0 = cpuMsNow();
  const r = await fn();
  const t = done?.(r);
  if (t) await t.data();
  addPart(timings, part, performance.now() - t0, cpuMsNow() - c0);
  return r;
}

/** A per-scale 0/1 map, [B, gh, gw] flat. */
export interface SelectionMap {
  readonly height: number;
  readonly width: number;
  readonly data: Uint8Array;
}

export interface EncodeOutput {
  /** [B, N0 + chosen, D]: low-res tokens, then chosen high-res tokens by scale, then row-major position */
  readonly lastHiddenState: tf.Tensor;
  /** every block's output in the same token layout (empty when not requested) */
  readonly hiddenStates: tf.Tensor[];
  /** the union of all looks, per high-res scale */
  readonly selectionMaps: SelectionMap[];
  /** the probabilities the looks used, per high-res scale [B, gh, gw] */
  readonly selectionProbs: tf.Tensor[];
  readonly bottomupSelectionProbs: tf.Tensor[];
  /** present when a prompt was given */
  readonly topdownSelectionProbs: tf.Tensor[] | null;
  /** MAP pooling of the final-normed low-res tokens, [B, D] */
  readonly pooledOutput: tf.Tensor;
}

export interface LowResOutput {
  readonly hiddenStates: tf.Tensor[];
  readonly kvCache: KV[];
}

function checkPixels(cfg: VisionConfig, pixels: Pixels): void {
  const { data, batch, height, width } = pixels;
  if (data.length !== batch * 3 * height * width) {
    throw new UserError(`pixels: ${data.length} values do not make [${batch}, 3, ${height}, ${width}]`);
  }
  if (height < cfg.trunk.patchSize || width < cfg.trunk.patchSize) {
    throw new UserError(`pixels: ${height}x${width} is smaller than one ${cfg.trunk.patchSize}px patch`);
  }
}

/** The low-res tokens [B, N0, D]: the image resized (plain bicubic) to the square low-res scale, embedded, plus the position embedding. */
export function lowResTokens(w: Weights, cfg: VisionConfig, pixels: Pixels, images = new ScaledImages(cfg, pixels)): tf.Tensor {
  const s0 = cfg.scales[0]!;
  const P = cfg.trunk.patchSize;
  const image = images.sized(s0, s0);
  const g = s0 / P;
  const embedded = timedSync(images.timings, 'patchEmbed', () => {
    const { data } = patchify(image, { batch: pixels.batch, channels: 3, height: s0, width: s0 }, P);
    return tf.tidy(() => patchEmbed(w, tf.tensor2d(data, [pixels.batch * g * g, 3 * P * P]), pixels.batch));
  });
  const tokens = timedSync(images.timings, 'posEmbed', () => tf.tidy(() => tf.add(embedded, positionEmbedding(w, g, g))));
  embedded.dispose();
  return tokens;
}

/** Low-res pass: the low-res tokens through all blocks, KV cache kept. */
export function lowRes(w: Weights, cfg: VisionConfig, pixels: Pixels, keepKv = true, images?: ScaledImages): LowResOutput {
  const tokens = lowResTokens(w, cfg, pixels, images);
  const out = timedSync(images?.timings, 'lowResTrunk', () => trunk(w, cfg.trunk, tokens, { keepKv }), (r) => r.hiddenStates[r.hiddenStates.length - 1]);
  tokens.dispose();
  return out;
}

/**
 * `lowRes` with the blocks run by `run` (another engine's trunk). With `hiddenLayers`, the caller
 * reads only those blocks' hidden states and the last one's; the others may be left empty.
 */
export async function lowResOn(run: TrunkRunner, w: Weights, cfg: VisionConfig, pixels: Pixels, keepKv = true, images?: ScaledImages, hiddenLayers?: readonly number[]): Promise<LowResOutput> {
  const tokens = lowResTokens(w, cfg, pixels, images);
  try {
    return await timed(images?.timings, 'lowResTrunk', () => run(tokens, { keepKv, ...(hiddenLayers ? { hiddenLayers } : {}) }), (r) => r.hiddenStates[r.hiddenStates.length - 1]);
  } finally {
    tokens.dispose();
  }
}

/** The image at every high-res scale (plain bicubic), computed once per call and shared by the looks. */
export class ScaledImages {
  private readonly cache = new Map<string, Float32Array>();
  constructor(
    private readonly cfg: VisionConfig,
    readonly pixels: Pixels,
    /** when given, each pass over these images adds its parts' times here */
    readonly timings?: StageTimings,
  ) {}

  /** The images resized (plain bicubic, from the input) to h x w, computed once. */
  sized(h: number, w: number): Float32Array {
    const { batch, height, width, data } = this.pixels;
    if (h === height && w === width) return data;
    const key = `${h}x${w}`;
    let out = this.cache.get(key) ?? this.pixels.resized?.get(key);
    if (!out) {
      out = timedSync(this.timings, 'resize', () => resize(data, batch * 3, height, width, h, w, 'bicubic'));
      this.cache.set(key, out);
    }
    return out;
  }

  /** The images at high-res scale i, with their size. */
  at(i: number): { data: Float32Array; height: number; width: number } {
    const [h, w] = imageSizeAtScale(this.cfg, this.pixels.height, this.pixels.width, i);
    return { data: this.sized(h, w), height: h, width: w };
  }
}

/**
 * High-res tokens of one look: for each scale with chosen patches, cut them (`chosen[scale][b]`,
 * sorted grid indices, the same count for every image), embed, add the resampled position
 * embedding and the scale's residual. Returns [B, n, D] ordered by scale, then position.
 */
export function highResTokens(w: Weights, cfg: VisionConfig, images: ScaledImages, batch: number, chosen: readonly Int32Array[][]): tf.Tensor {
  const P = cfg.trunk.patchSize;
  const parts: tf.Tensor[] = [];
  chosen.forEach((perImage, i) => {
    const count = perImage[0]!.length;
    if (count === 0) return;
    const scaled = images.at(i + 1);
    const [gh, gw] = [Math.floor(scaled.height / P), Math.floor(scaled.width / P)];
    const embedded = timedSync(images.timings, 'patchEmbed', () => {
      const { data } = patchify(scaled.data, { batch, channels: 3, height: scaled.height, width: scaled.width }, P, perImage);
      return tf.tidy(() => patchEmbed(w, tf.tensor2d(data, [batch * count, 3 * P * P]), batch)); // [B, n, D]
    });
    parts.push(
      timedSync(images.timings, 'posEmbed', () =>
        tf.tidy(() => {
          const ids = Int32Array.from(perImage.flatMap((ids) => Array.from(ids)));
          const pos = selectedPositionEmbedding(w, gh, gw, ids, cfg.separatePosEmb ? i : undefined); // [B * n, D]
          return tf.add(embedded, tf.reshape(pos, embedded.shape));
        }),
      ),
    );
    embedded.dispose();
  });
  const tokens = parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
  if (parts.length > 1) parts.forEach((p) => p.dispose());
  return tokens;
}

/** One look: the chosen high-res tokens through every block, attending to the low-res KV cache. */
export function look(w: Weights, cfg: VisionConfig, images: ScaledImages, batch: number, chosen: readonly Int32Array[][], cache: KV[]): tf.Tensor[] {
  const tokens = highResTokens(w, cfg, images, batch, chosen);
  const { hiddenStates } = timedSync(images.timings, 'highResTrunk', () => trunk(w, cfg.trunk, tokens, { cache }), (r) => r.hiddenStates[r.hiddenStates.length - 1]);
  tokens.dispose();
  return hiddenStates;
}

/** `look` with the blocks run by `run` (another engine's trunk); with `lastOnly` it may return only the last hidden state. */
export async function lookOn(run: TrunkRunner, w: Weights, cfg: VisionConfig, images: ScaledImages, batch: number, chosen: readonly Int32Array[][], cache: KV[], lastOnly: boolean): Promise<tf.Tensor[]> {
  const tokens = highResTokens(w, cfg, images, batch, chosen);
  try {
    return (await timed(images.timings, 'highResTrunk', () => run(tokens, { cache, lastOnly }), (r) => r.hiddenStates[r.hiddenStates.length - 1])).hiddenStates;
  } finally {
    tokens.dispose();
  }
}

/** Selection probabilities for a prompt [B, D] (prior prompt when null), per high-res scale; `features` as in `selectionLogits`. */
export function selection(
  w: Weights,
  cfg: VisionConfig,
  pixels: Pixels,
  lowResHidden: readonly tf.Tensor[],
  highresFeatures: tf.Tensor | null,
  prompt: tf.Tensor | null,
  features?: tf.Tensor,
): tf.Tensor[] {
  return tf.tidy(() => {
    const D = cfg.trunk.width;
    const p = prompt ?? tf.broadcastTo(tf.reshape(w.get('vision_model.prior_prompt'), [1, D]), [pixels.batch, D]);
    const logits = selectionLogits(w, cfg, lowResHidden, highresFeatures, p, features);
    return selectionProbs(cfg, logits, pixels.height, pixels.width);
  });
}

/** The convnet's features, or null when the model has none. */
export function highresSelectionFeatures(w: Weights, cfg: VisionConfig, pixels: Pixels, images = new ScaledImages(cfg, pixels)): tf.Tensor | null {
  return cfg.highresSelectionFeature ? shallowConvNet(w, cfg, images.sized(CONVNET_INPUT, CONVNET_INPUT), pixels.batch) : null;
}

function validateOptions(cfg: VisionConfig, pixels: Pixels, o: EncodeOptions): void {
  const batch = pixels.batch;
  const ns = cfg.scales.length - 1;
  if (o.numLookClose !== undefined && o.numLookClose !== 'all' && (!Number.isInteger(o.numLookClose) || o.numLookClose < 0)) {
    throw new UserError(`numLookClose must be a non-negative integer or "all", got ${String(o.numLookClose)}`);
  }
  if (o.numTokenLookClose !== undefined && (!Number.isInteger(o.numTokenLookClose) || o.numTokenLookClose < 0)) {
    throw new UserError(`numTokenLookClose must be a non-negative integer, got ${String(o.numTokenLookClose)}`);
  }
  if (o.numLookClose !== undefined && o.numTokenLookClose !== undefined) {
    throw new UserError('give numLookClose or numTokenLookClose, not both');
  }
  const firstN = o.onlySelectFirstNScale;
  if (firstN !== undefined) {
    const list = typeof firstN === 'number' ? [firstN] : firstN;
    if (typeof firstN !== 'number' && list.length !== batch) {
      throw new UserError(`onlySelectFirstNScale has ${list.length} entries for a batch of ${batch}`);
    }
    for (const n of list) {
      if (!Number.isInteger(n) || n < 1 || n > ns) throw new UserError(`onlySelectFirstNScale must be an integer in [1, ${ns}], got ${n}`);
      // the reference's arithmetic can leave the last scale a negative budget (it then fails in topk)
      if (lookBudgets(baseBudgets(cfg), null, n).some((b) => b < 0)) {
        throw new UserError(`onlySelectFirstNScale ${n} leaves a negative budget for the last scale with this model's budgets (${baseBudgets(cfg).join(' + ')}); use a larger n`);
      }
    }
  }
  if (o.gtSelectionMaps && o.gtSelectionMaps.length !== batch * pixels.height * pixels.width) {
    throw new UserError(`gtSelectionMaps: ${o.gtSelectionMaps.length} values do not make [${batch}, ${pixels.height}, ${pixels.width}]`);
  }
  if (o.gtPerScale) {
    if (o.gtSelectionMaps) throw new UserError('give gtSelectionMaps or gtPerScale, not both');
    const grids = cfg.scales.slice(1).map((_, i) => gridAtScale(cfg, pixels.height, pixels.width, i + 1));
    if (o.gtPerScale.length !== ns || o.gtPerScale.some((g, i) => g.length !== batch * grids[i]![0] * grids[i]![1])) {
      throw new UserError(`gtPerScale: [${o.gtPerScale.map((g) => g.length).join(', ')}] values do not make [${grids.map(([h, w]) => `${batch * h * w}`).join(', ')}] (batch x each high-res grid)`);
    }
  }
  if (o.prompt && (o.prompt.rank !== 2 || o.prompt.shape[0] !== batch || o.prompt.shape[1] !== cfg.trunk.width)) {
    throw new UserError(`prompt has shape [${o.prompt.shape.join(', ')}], expected [${batch}, ${cfg.trunk.width}]`);
  }
}

async function flatProbs(probs: readonly tf.Tensor[]): Promise<Float32Array[]> {
  return Promise.all(probs.map(async (p) => (await p.data()) as Float32Array));
}

/** PS3's forward pass with hidden states (`PS3VisionModel.forward`, `output_hidden_states=True`). */
export async function encodeImage(w: Weights, config: PS3Config, pixels: Pixels, options: EncodeOptions = {}): Promise<EncodeOutput> {
  const cfg = config.vision;
  checkPixels(cfg, pixels);
  validateOptions(cfg, pixels, options);
  const B = pixels.batch;
  const D = cfg.trunk.width;
  const ns = cfg.scales.length - 1;
  const keepHidden = options.outputHiddenStates ?? true;
  const lowResOnly = options.numLookClose === 0 || options.numTokenLookClose === 0;
  const numLookClose = options.numLookClose ?? (options.numTokenLookClose === undefined ? 1 : undefined);

  const timings = options.timings;
  let clock = performance.now();
  const lap = async (done: tf.Tensor | undefined): Promise<number> => {
    if (done) await done.data();
    const now = performance.now();
    const ms = now - clock;
    clock = now;
    return ms;
  };
  // every resize of the input is made once and shared (the convnet's 1512 px is often a scale too)
  const images = new ScaledImages(cfg, pixels, timings);
  const run = trunkFor(w, cfg.trunk, options.trunk);
  // without hidden states in the output, the selection's layers and the last are all a pass reads
  const hiddenLayers = keepHidden ? undefined : cfg.selectBasedOnLayer;
  const low = run ? await lowResOn(run, w, cfg, pixels, !lowResOnly, images, hiddenLayers) : lowRes(w, cfg, pixels, !lowResOnly, images);
  if (timings) timings.lowRes = await lap(low.hiddenStates[low.hiddenStates.length - 1]);
  // the convnet follows the trunk's engine: TensorFlow.js when asked for (trunk: null), else the installed default
  const convnet = !cfg.highresSelectionFeature ? null : options.convnet !== undefined ? options.convnet : convnetFor(w, cfg, options.trunk === null);
  const convnetInput = cfg.highresSelectionFeature ? images.sized(CONVNET_INPUT, CONVNET_INPUT) : null;
  const highFeatures = await timed(timings, 'convnet', async () => (convnet ? convnet(convnetInput!, B) : highresSelectionFeatures(w, cfg, pixels, images)), (f) => f ?? undefined);
  // the selection features do not depend on the prompt: computed once for both selections, on the convnet's engine
  const projection = projectionFor(w, cfg, options.trunk === null || options.convnet === null);
  const features = await timed(
    timings,
    'selectionHead',
    async () => {
      if (!projection) return selectionFeatures(w, cfg, low.hiddenStates);
      const input = tf.tidy(() => selectionInput(cfg, low.hiddenStates));
      try {
        return await projection(input);
      } finally {
        input.dispose();
      }
    },
    (f) => f,
  );
  const [bottomup, topdown] = timedSync(
    timings,
    'selectionHead',
    () => [selection(w, cfg, pixels, low.hiddenStates, highFeatures, null, features), options.prompt ? selection(w, cfg, pixels, low.hiddenStates, highFeatures, options.prompt, features) : null] as const,
    ([b, t]) => (t ?? b)[0],
  );
  highFeatures?.dispose();
  features.dispose();
  if (timings) timings.selection = await lap((topdown ?? bottomup)[0]);
  let probs = topdown ?? bottomup;
  if (options.gtSelectionMaps) {
    probs = forceGroundTruth(probs, groundTruthPerScale(cfg, options.gtSelectionMaps, B, pixels.height, pixels.width));
  } else if (options.gtPerScale) probs = forceGroundTruth(probs, options.gtPerScale);
  if (options.smoothSelectionProb) {
    const smoothed = smoothProbs(probs);
    if (probs !== bottomup && probs !== topdown) probs.forEach((p) => p.dispose());
    probs = smoothed;
  }
  const pooledOutput = timedSync(timings, 'pool', () => tf.tidy(() => mapPool(w, cfg.trunk, finalNorm(w, cfg.trunk, low.hiddenStates[low.hiddenStates.length - 1]!))));
  const grids = cfg.scales.slice(1).map((_, i) => gridAtScale(cfg, pixels.height, pixels.width, i + 1));
  const emptyMaps = (): SelectionMap[] => grids.map(([h, gw]) => ({ height: h, width: gw, data: new Uint8Array(B * h * gw) }));

  if (lowResOnly) {
    disposeKv(low.kvCache);
    const last = low.hiddenStates[low.hiddenStates.length - 1]!;
    const hiddenStates = keepHidden ? low.hiddenStates : [];
    if (!keepHidden) low.hiddenStates.slice(0, -1).forEach((h) => h.dispose());
    return { lastHiddenState: last, hiddenStates, selectionMaps: emptyMaps(), selectionProbs: probs, bottomupSelectionProbs: bottomup, topdownSelectionProbs: topdown, pooledOutput };
  }

  // plan the looks
  const firstNList = options.onlySelectFirstNScale === undefined ? null : typeof options.onlySelectFirstNScale === 'number' ? Array(B).fill(options.onlySelectFirstNScale) : [...options.onlySelectFirstNScale];
  const scalesCounted = firstNList ? Math.max(...firstNList) : ns;
  const maxTokens = grids.slice(0, scalesCounted).reduce((a, [h, gw]) => a + h * gw, 0);
  const base = baseBudgets(cfg);
  const lookOptions = numLookClose !== undefined ? { numLookClose } : { numTokenLookClose: options.numTokenLookClose! };
  const plan = planLooks(base, maxTokens, lookOptions);

  const probArrays = await flatProbs(probs);
  const union = emptyMaps();
  const gridSizes = grids.map(([h, gw]) => h * gw);
  // per look: the chosen indices per scale per image, and that look's hidden states
  const looks: Array<{ chosen: Int32Array[][]; hidden: tf.Tensor[] }> = [];
  for (const num of plan) {
    const chosen: Int32Array[][] = grids.map(() => []);
    for (let b = 0; b < B; b++) {
      const own = (i: number): Float32Array => probArrays[i]!.subarray(b * gridSizes[i]!, (b + 1) * gridSizes[i]!);
      const taken = looks.length ? union.map((m, i) => m.data.subarray(b * gridSizes[i]!, (b + 1) * gridSizes[i]!)) : null;
      const budgets = lookBudgets(base, num, firstNList ? firstNList[b] : null);
      chooseLook(grids.map((_, i) => own(i)), taken, budgets).forEach((ids, i) => chosen[i]!.push(ids));
    }
    chosen.forEach((perImage, i) => {
      if (perImage.some((ids) => ids.length !== perImage[0]!.length)) {
        throw new Error(`look: images chose different patch counts at scale ${i}; batch them separately`);
      }
    });
    const hidden = run ? await lookOn(run, w, cfg, images, B, chosen, low.kvCache, !keepHidden) : look(w, cfg, images, B, chosen, low.kvCache);
    if (timings) (timings.looks ??= []).push({ ms: await lap(hidden[hidden.length - 1]), tokens: chosen.reduce((a, perImage) => a + perImage[0]!.length, 0) });
    const kept = keepHidden ? hidden : [hidden[hidden.length - 1]!];
    if (!keepHidden) hidden.slice(0, -1).forEach((h) => h.dispose());
    looks.push({ chosen, hidden: kept });
    chosen.forEach((perImage, i) => perImage.forEach((ids, b) => ids.forEach((g) => (union[i]!.data[b * gridSizes[i]! + g] = 1))));
  }
  disposeKv(low.kvCache);
  const gatherCpu0 = cpuMsNow();

  // Each look's tokens, per image, run scale by scale in row-major order. Gather them from all
  // looks (flattened look-major: [look][b][row]) in (scale, position) order, as the reference does.
  const offsets = gridSizes.map((_, i) => gridSizes.slice(0, i).reduce((a, c) => a + c, 0));
  const perLook = looks.map(({ chosen }) => chosen.reduce((a, perImage) => a + perImage[0]!.length, 0));
  const lookBase = perLook.map((_, li) => perLook.slice(0, li).reduce((a, c) => a + B * c, 0));
  const gatherIndex: number[] = [];
  for (let b = 0; b < B; b++) {
    const slots: Array<[number, number]> = [];
    looks.forEach(({ chosen }, li) => {
      let row = lookBase[li]! + b * perLook[li]!;
      chosen.forEach((perImage, i) => perImage[b]!.forEach((g) => slots.push([offsets[i]! + g, row++])));
    });
    slots.sort((x, y) => x[0] - y[0]);
    for (const [, row] of slots) gatherIndex.push(row);
  }
  const perImageHigh = gatherIndex.length / B;
  const layers = looks[0]!.hidden.length;
  const assembled: tf.Tensor[] = [];
  for (let layer = 0; layer < layers; layer++) {
    const lowLayer = keepHidden ? low.hiddenStates[layer]! : low.hiddenStates[low.hiddenStates.length - 1]!;
    assembled.push(
      tf.tidy(() => {
        const flat = tf.concat(looks.map(({ hidden }) => tf.reshape(hidden[layer]!, [-1, D])), 0);
        const high = tf.reshape(tf.gather(flat, tf.tensor1d(gatherIndex, 'int32')), [B, perImageHigh, D]);
        return tf.concat([lowLayer, high], 1);
      }),
    );
  }
  looks.forEach(({ hidden }) => hidden.forEach((h) => h.dispose()));
  low.hiddenStates.forEach((h) => h.dispose());
  if (timings) {
    timings.assemble = await lap(assembled[assembled.length - 1]);
    addPart(timings, 'gather', timings.assemble, cpuMsNow() - gatherCpu0);
  }
  return {
    lastHiddenState: assembled[assembled.length - 1]!,
    hiddenStates: keepHidden ? assembled : [],
    selectionMaps: union,
    selectionProbs: probs,
    bottomupSelectionProbs: bottomup,
    topdownSelectionProbs: topdown,
    pooledOutput,
  };
}

