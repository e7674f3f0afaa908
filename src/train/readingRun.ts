/**
 * A reading stage (`ps3 train-read`): PS3's trunk taught to name the character of glyph crops
 * (reading.ts) drawn along a palette curriculum (data/glyphCrops.ts), with the trainer's
 * guarantees: AdamW, warm-up + cosine, clipping, atomic checkpoints in `OUT/checkpoint/` (a PS3
 * model folder, plus `reading_head.safetensors`, `optimizer.safetensors`, `trainer_state.json`),
 * `OUT/metrics.jsonl`, a time budget, and kill-and-resume on the same curve (a crop is a function
 * of the seed and its index). Its checks read held-out crops of each palette and the one-character
 * labels of held-out scenes, on validation seeds (readingEval.ts). With a kept trunk, each step
 * also pulls the tokens of natural-scene crops toward that trunk's (readingKeep.ts), and the checks
 * say how far they have moved on validation scenes (`val_keep`). With a context pool the crops run
 * as one look beside a scene's low-res tokens (readingContext.ts), and the checks also read the
 * held-out scenes' characters from the encoder's own looks (`val_scene_look`, readingLook.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { readSafetensors } from '../io/safetensors.js';
import { loadModel, randomModel, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { Weights } from '../model/weights.js';
import { GLYPH_CHARS } from '../data/glyphs.js';
import { checkGlyphCropSpec, paletteAt, type GlyphCropSpec, type Palette } from '../data/glyphCrops.js';
import { findCheckpoint, readOptimizerState, readTrainerState, saveCheckpoint } from './checkpoint.js';
import { AdamW, clipGradients, type AdamWOptions } from './optimizer.js';
import { learningRate } from './schedule.js';
import { truncateMetrics } from './metricsFile.js';
import { newReadingHead, READING_HEAD, readingLossAndGrads, readingTrainable, type KeepBatch } from './reading.js';
import { keepBatchAt, keepDistance, keepPool } from './readingKeep.js';
import { contextAt, contextPool } from './readingContext.js';
import { disposeKv } from '../model/vit.js';
import { sceneReadingInLook } from './readingLook.js';
import { curriculumCrops, glyphBatch, READING_VALIDATION_BASE, readingAccuracy, sceneReadingAccuracy, sceneReadingSet } from './readingEval.js';

export const READING_HEAD_FILE = 'reading_head.safetensors';

export interface ReadingRunOptions {
  readonly preset?: string;
  readonly init?: string;
  readonly out: string;
  readonly resume: boolean;
  readonly crops: GlyphCropSpec;
  readonly steps: number;
  readonly batch: number;
  readonly lr: number;
  readonly warmup: number;
  readonly clip: number;
  readonly adamw: AdamWOptions;
  readonly seed: number;
  readonly saveEvery: number;
  /** stop (after a whole step, with a checkpoint) after this long; 0 = no limit */
  readonly maxSeconds: number;
  /** steps between held-out checks; 0 = never */
  readonly evalEvery: number;
  /** held-out crops per palette of the curriculum */
  readonly evalCrops: number;
  /** held-out scenes whose single characters are read at every check (`val_scene`); 0 = none */
  readonly evalScenes: number;
  /** the keep term: whose tokens to stay near, its weight, the training scenes cut for it, and crops a step */
  readonly keep?: KeepOptions;
  /** training scenes whose low-res tokens each step's crops attend to, as one look (readingContext.ts); 0 or absent: each crop alone */
  readonly contextScenes?: number;
}

export interface KeepOptions {
  readonly from: string;
  readonly weight: number;
  readonly scenes: number;
  readonly batch: number;
  /** each batch one scene's crops of a scale read in a look beside the scene's low-res pass, both kept (readingKeep.ts) */
  readonly inLook?: boolean;
}

/** Crops a scale of each scene of the keep pool; the validation pool's scenes. */
const KEEP_CROPS_PER_SCALE = 24;
const KEEP_CHECK_SCENES = 8;

export interface ReadingMetrics {
  step: number;
  loss: number;
  /** share of the step's crops named right */
  accuracy: number;
  /** the keep term before its weight, on the step's keep batch (with a kept trunk) */
  keep?: number;
  palette: Palette;
  lr: number;
  grad_norm: number;
  samples_per_s: number;
  seconds: number;
  /** held-out accuracy per palette (`val_grey`, …) and on scenes' characters (`val_scene`), and the keep term on validation scenes (`val_keep`), on the steps that ran a check */
  [val: `val_${string}`]: number;
}

export interface ReadingEvents {
  /** `headFrom`: the file the head was read from (a resumed run's, or an `--init` reading checkpoint's), null for a fresh one */
  onStart?(info: { model: PS3Model; startStep: number; trainable: number; headFrom: string | null }): void;
  /** the held-out scenes drawn so far, before the first step */
  onScenes?(done: number, total: number): void;
  /** the keep pool's scenes cut so far (training and validation together), before the first step */
  onKeepScenes?(done: number, total: number): void;
  /** the context pool's scenes drawn so far, before the first step */
  onContextScenes?(done: number, total: number): void;
  onStep?(m: ReadingMetrics): void;
  onSave?(dir: string): void;
}

/** The options a resumed run must share with the run it continues (they decide its crops and schedule), with their flags. */
const CURVE_OPTIONS = { crops: '--curriculum, --glyph-px and --crop', seed: '--seed', batch: '--batch', steps: '--steps', keep: '--keep, --keep-weight, --keep-scenes, --keep-batch and --keep-in-look', contextScenes: '--context-scenes' } as const;

/**
 * A reading run's checkpoint (or any PS3 folder holding `reading_head.safetensors`): the model,
 * one set of weights with the head beside the model's, and the crops the run drew when the
 * folder says (its `trainer_state.json`).
 */
export function loadReader(folder: string): { model: PS3Model; weights: Weights; crops: GlyphCropSpec | null } {
  const headFile = path.join(folder, READING_HEAD_FILE);
  if (!fs.existsSync(headFile)) throw new UserError(`${folder}: no ${READING_HEAD_FILE} (give a "ps3 train-read" checkpoint folder)`);
  const model = loadModel(folder);
  const head = readHead(headFile, model.config.vision.trunk.width);
  const state = fs.existsSync(path.join(folder, 'trainer_state.json')) ? readTrainerState(folder) : null;
  const crops = (state?.options['crops'] as GlyphCropSpec | undefined) ?? null;
  return { model, weights: new Weights(new Map([...model.weights.entries(), ...head])), crops };
}

/** A reading head as saved, checked against the model's width and the glyph classes. */
function readHead(file: string, width: number): Map<string, tf.Tensor> {
  const arrays = readSafetensors(file);
  const expected: Record<string, number[]> = { [`${READING_HEAD}.weight`]: [GLYPH_CHARS.length, width], [`${READING_HEAD}.bias`]: [GLYPH_CHARS.length] };
  return new Map(
    Object.entries(expected).map(([k, shape]) => {
      const a = arrays.get(k);
      if (!a) throw new UserError(`${file}: no "${k}"`);
      if (a.shape.join('x') !== shape.join('x')) throw new UserError(`${file}: "${k}" is [${a.shape.join(', ')}], expected [${shape.join(', ')}]`);
      return [k, tf.tensor(a.data, shape)];
    }),
  );
}

/** The kept trunk's weights, checked against the model's: the same trunk, key for key and shape for shape. */
function loadKept(folder: string, model: PS3Model): Weights {
  const kept = loadModel(folder, 'vision');
  for (const k of model.weights.keys()) {
    if (!k.startsWith('vision_model.')) continue;
    if (!kept.weights.has(k)) throw new UserError(`--keep ${folder}: no "${k}" (not the same PS3 trunk as the model trained)`);
    const [a, b] = [kept.weights.shapeOf(k), model.weights.shapeOf(k)];
    if (a.join('x') !== b.join('x')) throw new UserError(`--keep ${folder}: "${k}" is [${a.join(', ')}], the model's is [${b.join(', ')}]`);
  }
  return kept.weights;
}

function checkCropFits(model: PS3Model, spec: GlyphCropSpec): void {
  const v = model.config.vision;
  const P = v.trunk.patchSize;
  const S = v.scales[v.scales.length - 1]!;
  if (spec.size % P !== 0 || spec.size < P) throw new UserError(`--crop ${spec.size}: a crop must be a whole number of ${P} px patches`);
  if (spec.size > S) throw new UserError(`--crop ${spec.size}: larger than the model's top scale (${S} px)`);
  // a crop stands for what one look holds
  const patches = (spec.size / P) ** 2;
  if (patches > v.maxSelectNum) throw new UserError(`--crop ${spec.size}: ${patches} patches, more than a look of this model holds (${v.maxSelectNum}; at most ${Math.floor(Math.sqrt(v.maxSelectNum)) * P} px)`);
}

/** What the first curve option that differs from the run's is (its flags and the run's value); null when none does. */
function differingOption(before: Record<string, unknown>, o: ReadingRunOptions): string | null {
  for (const [k, flags] of Object.entries(CURVE_OPTIONS) as Array<[keyof typeof CURVE_OPTIONS, string]>) {
    if (JSON.stringify(before[k]) !== JSON.stringify(o[k])) return `${flags} ${flags.includes(' and ') ? 'differ' : 'differs'} from the run's (${JSON.stringify(before[k])})`;
  }
  return null;
}

/** The keep pools: training scenes of the run's seed, and validation scenes for the checks; the kept trunk is read for them and let go. */
function keepPools(model: PS3Model, o: ReadingRunOptions, kept: Weights, events: ReadingEvents): { train: KeepBatch[]; check: KeepBatch[] | null } {
  const k = o.keep!;
  const checkScenes = o.evalEvery > 0 ? KEEP_CHECK_SCENES : 0;
  const total = k.scenes + checkScenes;
  try {
    const pool = (seed: number, scenes: number, before: number): KeepBatch[] =>
      keepPool(model, kept, { seed, scenes, cropsPerScale: KEEP_CROPS_PER_SCALE, side: o.crops.size, batch: k.batch, ...(k.inLook ? { inLook: true } : {}) }, (done) => events.onKeepScenes?.(before + done, total));
    return { train: pool(o.seed, k.scenes, 0), check: checkScenes ? pool(READING_VALIDATION_BASE, checkScenes, k.scenes) : null };
  } finally {
    kept.dispose();
  }
}

export async function runReading(o: ReadingRunOptions, events: ReadingEvents = {}): Promise<{ step: number; checkpoint: string }> {
  checkGlyphCropSpec(o.crops);
  const previous = o.resume ? findCheckpoint(o.out) : null;
  if (o.resume && !previous) throw new UserError(`--resume: no checkpoint in ${o.out}`);
  if (!o.resume && findCheckpoint(o.out)) throw new UserError(`${o.out} already holds a checkpoint: pass --resume to continue it, or choose another --out`);
  let state = { step: 0, samplesSeen: 0 };
  let optimizerState: { tensors: Map<string, tf.Tensor>; step: number } | null = null;
  let model: PS3Model;
  let head: Map<string, tf.Tensor>;
  let headFrom: string | null = null;
  if (previous) {
    const s = readTrainerState(previous);
    const differs = differingOption(s.options, o);
    if (differs) throw new UserError(`--resume: ${differs}; a resumed run keeps its crops and schedule`);
    const headFile = path.join(previous, READING_HEAD_FILE);
    if (!fs.existsSync(headFile)) throw new UserError(`--resume: ${previous} has no ${READING_HEAD_FILE} (not a reading run's checkpoint)`);
    model = loadModel(previous);
    head = readHead(headFile, model.config.vision.trunk.width);
    headFrom = headFile;
    state = { step: s.step, samplesSeen: s.samplesSeen };
    optimizerState = { tensors: readOptimizerState(previous), step: s.optimizerStep };
  } else {
    if (o.init) model = loadModel(o.init);
    else if (o.preset) model = randomModel(presetConfig(o.preset), o.seed);
    else throw new UserError('give --init DIR or --preset NAME (or --resume)');
    // a reading run's checkpoint carries its head on into the next stage
    const headFile = o.init ? path.join(o.init, READING_HEAD_FILE) : null;
    head = headFile && fs.existsSync(headFile) ? readHead(headFile, model.config.vision.trunk.width) : newReadingHead(model.config.vision.trunk.width, GLYPH_CHARS.length, o.seed);
    headFrom = headFile && fs.existsSync(headFile) ? headFile : null;
  }
  checkCropFits(model, o.crops);
  if (o.keep && !o.keep.inLook && o.keep.batch > KEEP_CROPS_PER_SCALE * o.keep.scenes) throw new UserError(`--keep-batch ${o.keep.batch}: more than the ${KEEP_CROPS_PER_SCALE * o.keep.scenes} crops a scale that --keep-scenes ${o.keep.scenes} give`);
  const kept = o.keep ? loadKept(o.keep.from, model) : null;
  // the checks' crops and scenes, made once
  const checkCrops = o.evalEvery > 0 ? curriculumCrops(model, o.crops, READING_VALIDATION_BASE + o.seed, o.evalCrops) : new Map();
  const scenes = o.evalScenes > 0 && o.evalEvery > 0 ? sceneReadingSet(model, READING_VALIDATION_BASE, o.evalScenes, o.crops.size, (done) => events.onScenes?.(done, o.evalScenes)) : null;
  const keep = kept ? keepPools(model, o, kept, events) : null;
  const context = o.contextScenes ? contextPool(model, o.seed, o.contextScenes, (done) => events.onContextScenes?.(done, o.contextScenes!)) : null;
  // one set of weights the steps update, the model's and the head's; the model's alone are saved as the model
  const weights = new Weights(new Map([...model.weights.entries(), ...head]));
  const modelKeys = [...model.weights.keys()];
  const trainable = readingTrainable(weights.keys());
  const optimizer = new AdamW(o.adamw);
  if (optimizerState) optimizer.load(optimizerState.tensors, optimizerState.step);
  const tokenizerDir = [previous, o.init].find((d): d is string => d !== undefined && d !== null && fs.existsSync(path.join(d, 'tokenizer.json')));

  fs.mkdirSync(o.out, { recursive: true });
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  if (previous) truncateMetrics(metricsFile, state.step);
  else fs.writeFileSync(metricsFile, '');
  let checkpoint = previous ?? '';
  const save = async (): Promise<void> => {
    const asModel: PS3Model = { ...model, weights: new Weights(new Map(modelKeys.map((k) => [k, weights.get(k)]))) };
    const headNow = [...head.keys()].map((k): [string, tf.Tensor] => [k, weights.get(k)]);
    checkpoint = await saveCheckpoint(o.out, asModel, optimizer, { ...state, optimizerStep: optimizer.step, options: { ...o } }, tokenizerDir, new Map([[READING_HEAD_FILE, headNow]]));
    events.onSave?.(checkpoint);
  };
  events.onStart?.({ model, startStep: state.step, trainable: trainable.reduce((n, k) => n + weights.get(k).size, 0), headFrom });
  const started = performance.now();
  try {
    while (state.step < o.steps) {
      const t0 = performance.now();
      const lr = learningRate(state.step, { lr: o.lr, warmup: o.warmup, steps: o.steps });
      const palette = paletteAt(o.crops.curriculum, state.samplesSeen);
      const crops = glyphBatch(model, o.crops, o.seed, state.samplesSeen, o.batch);
      const kv = context ? contextAt(weights, model, context, state.step) : null;
      const batch = kv ? { ...crops, context: kv } : crops;
      state.samplesSeen += o.batch;
      const r = readingLossAndGrads(weights, model.config.vision, batch, trainable, keep ? { batch: keepBatchAt(keep.train, state.step), weight: o.keep!.weight } : undefined);
      if (kv) disposeKv(kv);
      const gradNorm = clipGradients(r.grads, o.clip);
      optimizer.apply(weights, r.grads, lr);
      tf.dispose([...r.grads.values()]);
      state.step += 1;
      const check = o.evalEvery > 0 && state.step % o.evalEvery === 0;
      const evaluation = check
        ? {
            ...readingAccuracy(model, weights, checkCrops),
            ...(scenes ? { val_scene: sceneReadingAccuracy(model, weights, scenes).accuracy } : {}),
            ...(keep?.check ? { val_keep: keepDistance(weights, model, keep.check) } : {}),
            ...(scenes && context ? { val_scene_look: (await sceneReadingInLook(model, weights, READING_VALIDATION_BASE, o.evalScenes, o.crops.size)).accuracy } : {}),
          }
        : {};
      const seconds = (performance.now() - t0) / 1000;
      const m: ReadingMetrics = { ...evaluation, step: state.step, loss: r.loss, accuracy: r.correct / o.batch, ...(keep ? { keep: r.keep } : {}), palette, lr, grad_norm: gradNorm, samples_per_s: o.batch / seconds, seconds };
      fs.appendFileSync(metricsFile, `${JSON.stringify(m)}\n`);
      events.onStep?.(m);
      const outOfTime = o.maxSeconds > 0 && (performance.now() - started) / 1000 >= o.maxSeconds;
      if (state.step >= o.steps || outOfTime || state.step % o.saveEvery === 0) await save();
      if (outOfTime) break;
    }
    if (!checkpoint) await save();
  } finally {
    optimizer.dispose();
    weights.dispose();
  }
  return { step: state.step, checkpoint };
}
