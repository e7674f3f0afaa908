/**
 * VILA-HD's training data: 4KPro-lite-style questions (src/data/qa/generate.ts) over synthetic
 * scenes with seeds below the held-out base, and a per-image cache of what a frozen PS3 makes of
 * each image, so that training steps run the LM and never the vision trunk.
 *
 * With PS3 frozen, everything the step needs from an image is fixed:
 *  - `ps3`: the low-res tokens (merged for the projector); the selection's inputs — the low-res
 *    hidden states of the layers selection reads, and the convnet's features — so the top-down
 *    probabilities of any prompt the head makes are recomputed exactly, with their gradient to
 *    the prompt, in a few matmuls; and per question the high-res tokens of the training looks
 *    and the box targets. The training looks are chosen with the question's evidence box forced
 *    first (PS3's `gtSelectionMaps`; the rest of the budget bottom-up): the LM learns to read
 *    what a well-aimed look shows while the selection loss teaches the prompt head to aim there.
 *    With `evidenceFraction` below 1 the other questions look bottom-up only, as a look that
 *    misses does. At test time the looks come from the prompt head (answer.ts).
 *  - `lowres`, `anyres`, `s2`: the method's merged tokens, which do not depend on the question.
 *
 * The `captions` task (VILA's alignment stage, before the questions) asks instead for a few of each
 * scene's local captions, each a region the pre-training data describes: the LM reads the visual
 * tokens and `CAPTION_QUESTION` and writes the caption. PS3's look at a region is its box forced
 * first, as in pre-training (`gtSelectionMaps`), and keeps only the tokens of the region's cells:
 * the rest of a look's budget goes to other salient objects, and a caption of one object among
 * several in view would not say which tokens it reads. The other methods read the same question
 * over their tokens, which do not depend on it. There is no selection loss in this task.
 * A `mixed` run reads both: its questions from a qa cache and its captions from a captions cache
 * of the same scenes (or, `mix` glyphs, its labels and signs from a glyphs cache), each cache as a
 * run of that task alone makes it.
 *
 * The `glyphs` task (ps3 only) is a reading stage for the LM: each of a scene's one-character
 * shape labels (data/sceneGlyphs.ts: the block of 4 x 4 top-scale patches a look sees it in) is a
 * sample whose answer is the character, asked `GLYPH_QUESTION` over the low-res tokens and the
 * block's tokens on the top scale; each sign is a sample whose answer is its code (1-3
 * characters, each its own word), asked 4KPro-lite's own sign-reading question over its text's
 * block. A caption names a character about once in thirteen words, too seldom for an
 * LM to learn 36 of them; a scene holds a dozen such labels. Looks forced onto the labels' blocks,
 * as many blocks a look as its top-scale budget takes (one look for most scenes of the tiny
 * model), give every sample its tokens in the context a look gives them. With `objects`, each
 * labelled or tiny shape is asked its colour and its shape too, as 4KPro-lite's attribute questions
 * ask them, over its box's tokens (`objectBlocks`).
 *
 * One `NNNNNN.safetensors` per image (written whole, then renamed) and `NNNNNN.json` with its
 * questions, written last, so an interrupted cache resumes where it stopped, and several builders
 * can share a folder (cacheClaims.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { tf } from '../tensor/engine.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors.js';
import { normalise } from '../io/image.js';
import { UserError } from '../errors.js';
import { renderScene } from '../data/scene/render.js';
import type { Scene } from '../data/scene/types.js';
import { sceneRng } from '../data/synth.js';
import { sceneGlyphs, sceneSigns } from '../data/sceneGlyphs.js';
import { GLYPH_CHARS } from '../data/glyphs.js';
import { Rng } from '../rng.js';
import { encodeImage, highresSelectionFeatures, ScaledImages, withResizes, type EncodeOutput, type Pixels } from '../model/encoder.js';
import { CONVNET_INPUT, convnetFor } from '../model/convnet.js';
import type { PS3Model } from '../model/load.js';
import { boxGroundTruthPerScale, gridAtScale, packForced, topBudget, topCellsForced } from '../model/selection.js';
import type { VisionConfig } from '../io/config.js';
import { finalNorm } from '../model/vit.js';
import { boxTargets } from '../train/loss.js';
import { sampleSeed } from '../train/sampleStream.js';
import { attributeColourQuestion, attributeShapeQuestion, HELDOUT_SEED_BASE, MAX_DETAIL_PX, QA_VERSION, questionRng, sceneQuestions, signReadingQuestion } from '../data/qa/generate.js';
import type { EncodeMethod } from '../model/baselines.js';
import { claim, release } from './cacheClaims.js';
import { blockBox, mergeBlock, mergeSpan, mergeTokens } from './projector.js';
import { baselineVisual, highResGrids, keptRows, lowResGrid, lowResTokens, regionMaps } from './visual.js';

export interface TrainQuestion {
  readonly image: number;
  /** its index among the image's questions */
  readonly index: number;
  readonly question: string;
  readonly options: string[];
  readonly answer: number;
  readonly category: string;
  readonly box: [number, number, number, number];
  /** the captions task: the caption to write (`options` is then empty and `answer` -1) */
  readonly target?: string;
  /** a decoy sample (decoyLooks.ts): the index of the question of the same image whose look it reads */
  readonly look?: number;
}

/**
 * What a training run asks of each scene: 4KPro-lite questions, local captions (the alignment
 * stage), or both in every batch (`mixed`: each task's samples come from its own cache, so
 * one-word answers train beside the captions and cannot unlearn reading the image).
 */
export type TrainTask = 'qa' | 'captions' | 'mixed' | 'glyphs';
export const TRAIN_TASKS: readonly TrainTask[] = ['qa', 'captions', 'mixed', 'glyphs'];

/** What a mixed run's batches hold beside the questions (`--mix`). */
export type MixTask = 'captions' | 'glyphs';
export const MIX_TASKS: readonly MixTask[] = ['captions', 'glyphs'];

/** The task a cached sample belongs to: a caption sample carries the caption it writes. */
export type SampleTask = Exclude<TrainTask, 'mixed'>;
export const sampleTask = (q: TrainQuestion): SampleTask => (q.target === undefined ? 'qa' : READING_CATEGORIES.includes(q.category) ? 'glyphs' : 'captions');

/** The question every caption sample asks (words the LM's vocabulary has). */
export const CAPTION_QUESTION = 'what is in the image';

/** The question every label sample of the glyphs task asks, and its category; a sign sample's category. */
export const GLYPH_QUESTION = 'what is marked in the image';
export const GLYPH_CATEGORY = 'glyph';
export const SIGN_CATEGORY = 'sign';
/** The categories of the glyphs task's object samples (`objectBlocks`): a shape's colour, and its shape. */
export const OBJECT_COLOUR_CATEGORY = 'object-colour';
export const OBJECT_SHAPE_CATEGORY = 'object-shape';
const READING_CATEGORIES: readonly string[] = [GLYPH_CATEGORY, SIGN_CATEGORY, OBJECT_COLOUR_CATEGORY, OBJECT_SHAPE_CATEGORY];

export interface CacheSpec {
  readonly method: EncodeMethod;
  /** scenes `renderScene(sceneRng(seed, i))`, i < images; seed below the held-out base */
  readonly seed: number;
  readonly images: number;
  /** ps3: looks per training question (default 1) */
  readonly looks?: number;
  /**
   * ps3: with this below `looks`, each question gets a number of looks drawn from minLooks..looks
   * (a function of the seed, the image and the question), so an LM learns to read one look or several
   */
  readonly minLooks?: number;
  /**
   * ps3: the share of training questions whose looks take the evidence box first (default 1, all);
   * the rest look bottom-up, as a look that misses the evidence does at test time, so that an LM
   * learns to fall back on the low-res tokens rather than trust high-res tokens of other objects
   */
  readonly evidenceFraction?: number;
  /** anyres/s2: resolution tiled */
  readonly resolution?: number;
  /** questions per category asked of each scene (default 1, as a benchmark asks) */
  readonly perCategory?: number;
  /** default 'qa' (a cache holds one task's samples: a mixed run reads two caches) */
  readonly task?: SampleTask;
  /** captions task: local captions asked of each scene (default 4; fewer where a scene has fewer) */
  readonly captions?: number;
  /** glyphs task: also ask the colour and the shape of the scene's labelled and tiny shapes (`objectBlocks`) */
  readonly objects?: boolean;
  /** ps3: also keep the selection ConvNeXt's input (the image at its size, F16), so a run can train the ConvNeXt */
  readonly convInput?: boolean;
  /**
   * ps3 (qa task, one look) or lowres: keep the hidden states entering this block of PS3's trunk
   * instead of the final tokens, so that a run tunes the blocks from it on (`tuneTrunk`): the
   * states before it are fixed functions of the image and the look, as the final tokens are of a
   * frozen PS3
   */
  readonly trunkFrom?: number;
}

/** The hash a cache is keyed by: PS3's weights' bytes, not the file's path or time (an embedded copy is rewritten at every checkpoint). */
export function ps3WeightsHash(ps3Dir: string): string {
  return createHash('sha256').update(fs.readFileSync(path.join(ps3Dir, 'model.safetensors'))).digest('hex');
}

/**
 * The cache folder of a spec under `root`: a function of the PS3 weights and the spec (not the
 * image count). `weights` (a `ps3WeightsHash`) names the PS3 the cache was made with when that is
 * not the folder's current one: a run that tunes PS3's selection keeps the tokens it started with.
 */
export function cacheDir(root: string, ps3Dir: string, spec: CacheSpec, weights = ps3WeightsHash(ps3Dir)): string {
  const looks = spec.looks ?? 1;
  // a fixed number of looks keeps the key caches made before minLooks existed have
  const drawn = spec.minLooks !== undefined && spec.minLooks !== looks ? { minLooks: spec.minLooks } : {};
  const asked = spec.perCategory !== undefined && spec.perCategory !== 1 ? { perCategory: spec.perCategory } : {};
  const forced = spec.evidenceFraction !== undefined && spec.evidenceFraction !== 1 ? { evidenceFraction: spec.evidenceFraction } : {};
  // a captions cache is keyed by its task too; a questions cache keeps the key it had before tasks
  const task = spec.task === 'captions' ? { task: 'captions', captions: spec.captions ?? DEFAULT_CAPTIONS, look: 'region' } : spec.task === 'glyphs' ? { task: 'glyphs', look: 'packed', samples: spec.objects ? 'labels+signs+objects' : 'labels+signs' } : {};
  const entering = spec.trunkFrom !== undefined ? { trunkFrom: spec.trunkFrom } : {};
  const key = JSON.stringify({ weights, method: spec.method, seed: spec.seed, looks, ...drawn, ...asked, ...forced, ...task, ...entering, resolution: spec.resolution ?? null, qa: QA_VERSION });
  return path.join(root, `${spec.method}-${createHash('sha256').update(key).digest('hex').slice(0, 12)}`);
}

export function checkTrainSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed >= HELDOUT_SEED_BASE) throw new UserError(`--data-seed must be an integer in [0, ${HELDOUT_SEED_BASE}) (seeds from ${HELDOUT_SEED_BASE} are held out for evaluation), got ${seed}`);
}

/** Normalised pixels [1, 3, S, S] of a scene rendered at S (into `out` when given). */
function scenePixels(rgb: Uint8Array, size: number, out?: Float32Array): Pixels {
  return { data: normalise({ data: rgb, width: size, height: size }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], out), batch: 1, height: size, width: size };
}

/**
 * What a cache run refills image after image: at 3780 px the pixels are 171 MB, and a fresh array
 * that size costs more in page faults than filling it.
 */
export interface Scratch {
  pixels?: Float32Array;
}

async function arrayOf(t: tf.Tensor): Promise<NamedArray> {
  return { shape: t.shape, data: (await t.data()) as Float32Array };
}

function writeAtomic(file: string, write: (tmp: string) => void): void {
  // the process's own temporary name: builders sharing the folder may write the same file at once
  const tmp = `${file}.${process.pid}.tmp`;
  write(tmp);
  fs.renameSync(tmp, file);
}

/** Image i's files are `NNNNNN.*`. */
const imageName = (i: number): string => String(i).padStart(6, '0');

const convInputFile = (dir: string, i: number): string => path.join(dir, `${imageName(i)}.convin.safetensors`);

/** The selection ConvNeXt's input of a scene ([1, 3, C, C] at CONVNET_INPUT), stored as F16. */
function writeConvInput(ps3: PS3Model, pixels: Pixels, dir: string, i: number): void {
  const data = new ScaledImages(ps3.config.vision, pixels).sized(CONVNET_INPUT, CONVNET_INPUT);
  writeAtomic(convInputFile(dir, i), (tmp) => writeSafetensors(tmp, new Map([['convin', { shape: [1, 3, CONVNET_INPUT, CONVNET_INPUT], data }]]), undefined, 'F16'));
}

/** The number of training looks of question `index` of image `image`: `looks`, or drawn from minLooks..looks. */
export function looksOf(spec: CacheSpec, image: number, index: number): number {
  const hi = spec.looks ?? 1;
  const lo = spec.minLooks ?? hi;
  return lo + (sampleSeed(spec.seed ^ 0x6c6f6f6b, image * 1024 + index) % (hi - lo + 1));
}

/** Whether question `index` of image `image` has its training looks take the evidence box first (a function of the seed, drawn with probability `evidenceFraction`). */
export function evidenceForced(spec: CacheSpec, image: number, index: number): boolean {
  const p = spec.evidenceFraction ?? 1;
  return p >= 1 || sampleSeed(spec.seed ^ 0x65766964, image * 1024 + index) / 2 ** 32 < p;
}

export const DEFAULT_CAPTIONS = 4;

/** The captions task's samples of a scene: `count` of its regions, drawn by a function of the seed and the image. */
export function captionSamples(scene: Scene, seed: number, image: number, count: number): TrainQuestion[] {
  const order = new Rng(sampleSeed(seed ^ 0x63617074, image)).shuffle(scene.regions.map((_, j) => j));
  return order.slice(0, count).map((j, index) => {
    const r = scene.regions[j]!;
    return { image, index, question: CAPTION_QUESTION, options: [], answer: -1, category: 'caption', box: [...r.box], target: r.caption };
  });
}

/** The reading stage's block (`ps3 train-read`'s 56 px crops): 4 x 4 patches of the top scale. */
export const GLYPH_CELLS = 4;

/**
 * A glyph sample's top-scale cells, exactly its block: a box's ground truth
 * (`boxGroundTruthPerScale`) is drawn on the first high-res grid and upsampled, so a 56 px block
 * would force 50-100 top-scale cells, and a scene's dozen labels would overflow one look.
 */
function glyphCells(cfg: VisionConfig, box: readonly number[], size: number): number[] {
  const P = cfg.trunk.patchSize;
  const [, gw] = gridAtScale(cfg, size, size, cfg.scales.length - 1);
  const cells: number[] = [];
  for (let r = box[1]! / P; r < box[3]! / P; r++) for (let c = box[0]! / P; c < box[2]! / P; c++) cells.push(r * gw + c);
  return cells;
}

/** A reading sample before it is numbered: its block of top-scale cells (one past the last), question and answer. */
interface ReadBlock {
  readonly rows: readonly [number, number];
  readonly cols: readonly [number, number];
  readonly question: string;
  readonly category: string;
  readonly target: string;
}

/**
 * The glyphs task's samples of a scene: each one-character shape label, its answer the character,
 * its box the top-scale block a look sees it in (`sceneGlyphs`); then each sign, its answer the
 * code, its box its text's block (`sceneSigns`); then, with `objects`, the object samples
 * (`objectBlocks`). Boxes are widened to whole 2 x 2 cells: the projector merges only cells whose
 * four patches were all chosen (projector.ts), so a block at an odd row or column would reach the
 * LM as one or two merged tokens of its four.
 */
export function glyphSamples(scene: Scene, image: number, patch: number, maxCells = Infinity, objects?: { readonly lowres: number }): TrainQuestion[] {
  const labels = sceneGlyphs(scene, patch, GLYPH_CELLS)
    .filter((g) => g.kind === 'shape')
    .map((g): ReadBlock => ({ rows: mergeSpan([g.row0, g.row0 + GLYPH_CELLS]), cols: mergeSpan([g.col0, g.col0 + GLYPH_CELLS]), question: GLYPH_QUESTION, category: GLYPH_CATEGORY, target: GLYPH_CHARS[g.char]! }));
  const signs = sceneSigns(scene, patch, GLYPH_CELLS)
    .map((s): ReadBlock => ({ rows: mergeSpan(s.rows), cols: mergeSpan(s.cols), question: signReadingQuestion(s.colour), category: SIGN_CATEGORY, target: s.code }));
  return [...labels, ...signs, ...(objects ? objectBlocks(scene, patch, objects.lowres) : [])]
    // a block larger than a look's top-scale budget (a model of very few patches a look) is left out
    .filter((b) => (b.rows[1] - b.rows[0]) * (b.cols[1] - b.cols[0]) <= maxCells)
    .map((b, index) => ({ image, index, question: b.question, options: [], answer: -1, category: b.category, box: blockBox(b, patch), target: b.target }));
}

/**
 * The object samples of a scene: each shape whose label is one character (what an attribute
 * question asks about) or that is tiny at low res (what counting and look-alike questions ask
 * about: `MAX_DETAIL_PX.shape` or less across at `lowres`), asked its colour and then its shape
 * over its box's top-scale cells. A labelled shape is asked 4KPro-lite's own attribute questions,
 * which name it by its label; another, the same questions naming it by its other attribute. The
 * label's character alone is what the glyph samples teach; these teach what the attribute
 * questions ask of it, the shape and colour a look shows, which no other stage names one object
 * at a time.
 */
function objectBlocks(scene: Scene, patch: number, lowres: number): ReadBlock[] {
  const k = lowres / Math.max(scene.width, scene.height);
  const [gh, gw] = [Math.floor(scene.height / patch), Math.floor(scene.width / patch)];
  return scene.objects.flatMap((o): ReadBlock[] => {
    if (o.kind !== 'shape') return [];
    const labelled = o.label !== null && o.label.length === 1;
    if (!labelled && o.size * k > MAX_DETAIL_PX.shape) return [];
    const { rows, cols } = mergeBlock(o.box, patch, gh, gw);
    const [colour, shape] = labelled
      ? [attributeColourQuestion(o.shape, o.label!), attributeShapeQuestion(o.colour, o.label!)]
      : [`What colour is the ${o.shape} in the image?`, `What shape is the ${o.colour} object in the image?`];
    return [
      { rows, cols, question: colour, category: OBJECT_COLOUR_CATEGORY, target: o.colour },
      { rows, cols, question: shape, category: OBJECT_SHAPE_CATEGORY, target: o.shape },
    ];
  });
}

/** What a training step needs of image `i`: its questions and arrays (`dir`: where a ConvNeXt input is written, when the spec keeps it). */
export async function imageSamples(ps3: PS3Model, spec: CacheSpec, i: number, scratch: Scratch = {}, dir?: string): Promise<{ questions: TrainQuestion[]; arrays: Map<string, NamedArray>; trunkTokens: number }> {
  const cfg = ps3.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const scene = renderScene(sceneRng(spec.seed, i), { width: S, height: S });
  const captions = spec.task === 'captions';
  const glyphs = spec.task === 'glyphs';
  if (glyphs && spec.method !== 'ps3') throw new Error(`imageSamples: the glyphs task is ps3's, not ${spec.method}'s`);
  // a region's tokens, not a look's: no selection loss to learn from it
  const region = captions || glyphs;
  const questions: TrainQuestion[] = captions
    ? captionSamples(scene, spec.seed, i, spec.captions ?? DEFAULT_CAPTIONS)
    : glyphs
      ? glyphSamples(scene, i, cfg.trunk.patchSize, topBudget(cfg), spec.objects ? { lowres: cfg.scales[0]! } : undefined)
      : sceneQuestions(scene, questionRng(spec.seed, i), { lowres: cfg.scales[0]!, perCategory: spec.perCategory ?? 1 })
        .map((d, index) => ({ image: i, index, question: d.question, options: d.options, answer: d.answer, category: d.category, box: d.evidence.box }));
  scratch.pixels ??= new Float32Array(3 * S * S);
  // every resize the encoder needs, made once for the image's several encodes
  const pixels = withResizes(cfg, scenePixels(scene.rgb, S, scratch.pixels));
  const arrays = new Map<string, NamedArray>();
  let trunkTokens = 0;
  if (spec.method === 'ps3' && questions.length) {
    const g0 = lowResGrid(ps3);
    const from = spec.trunkFrom;
    if (from !== undefined && (region || (spec.looks ?? 1) !== 1 || (spec.minLooks ?? 1) !== 1)) throw new Error('imageSamples: trunkFrom is for the qa task with one look a question');
    // selection's inputs are for the selection loss, which the captions task does not have; a
    // layer the tuned blocks make is recomputed by the step
    const selected = region ? [] : cfg.selectBasedOnLayer.filter((l) => from === undefined || l < from);
    const { tokens, kept } = lowResTokens(ps3, pixels, from === undefined ? selected : [...selected, from - 1]);
    if (from === undefined) {
      const low = mergeTokens(tokens, [{ height: g0, width: g0, offset: 0, ids: null }]);
      arrays.set('low', await arrayOf(low));
      low.dispose();
    } else arrays.set('lowin', await arrayOf(kept.get(from - 1)!));
    tokens.dispose();
    for (const layer of selected) arrays.set(`sel.${layer}`, await arrayOf(kept.get(layer)!));
    tf.dispose([...kept.values()]);
    if (dir && spec.convInput && cfg.highresSelectionFeature) writeConvInput(ps3, pixels, dir, i);
    // the engine's convnet, as encodeImage (and so evaluation) uses
    const convnet = convnetFor(ps3.weights, cfg, false);
    const conv = region ? null : convnet ? await convnet(new ScaledImages(cfg, pixels).sized(CONVNET_INPUT, CONVNET_INPUT), 1) : highresSelectionFeatures(ps3.weights, cfg, pixels);
    if (conv) {
      arrays.set('conv', await arrayOf(conv));
      conv.dispose();
    }
    // the glyphs task's looks: each forced onto as many blocks as its top-scale budget takes (a
    // block two samples share, an object's colour and shape, once)
    const cellsOf = glyphs ? questions.map((q) => glyphCells(cfg, q.box, S)) : [];
    const blockKey = (q: TrainQuestion): string => q.box.join(',');
    const firstOfBlock = new Map<string, number>();
    for (const q of questions) if (!firstOfBlock.has(blockKey(q))) firstOfBlock.set(blockKey(q), q.index);
    const firsts = [...firstOfBlock.values()];
    const shared: EncodeOutput[] = [];
    const lookOf: number[] = [];
    for (const group of glyphs ? packForced(firsts.map((k) => cellsOf[k]!.length), topBudget(cfg)) : []) {
      group.forEach((g) => (lookOf[firsts[g]!] = shared.length));
      shared.push(await encodeImage(ps3.weights, ps3.config, pixels, { numLookClose: 1, gtPerScale: topCellsForced(cfg, S, group.flatMap((g) => cellsOf[firsts[g]!]!)) }));
    }
    for (const q of questions) {
      const gtPerScale = glyphs ? topCellsForced(cfg, S, cellsOf[q.index]!) : boxGroundTruthPerScale(cfg, q.box, S);
      // a caption's look is always at its region
      const forced = captions || evidenceForced(spec, i, q.index) ? { gtPerScale } : {};
      const out = glyphs ? shared[lookOf[firstOfBlock.get(blockKey(q))!]!]! : (await encodeImage(ps3.weights, ps3.config, pixels, { numLookClose: looksOf(spec, i, q.index), ...forced, outputHiddenStates: from !== undefined }));
      const n0 = g0 * g0;
      const targets = boxTargets(gtPerScale);
      if (from !== undefined) {
        // [1, n0 + chosen, D] entering block `from` -> the look's rows, and which cells they are
        const entering = tf.slice(out.hiddenStates[from - 1]!, [0, n0, 0], [-1, -1, -1]);
        arrays.set(`highin.${q.index}`, await arrayOf(entering));
        tf.dispose([entering, ...out.hiddenStates.filter((h) => h !== out.lastHiddenState)]);
        out.selectionMaps.forEach((m, s) => arrays.set(`chosen.${q.index}.${s}`, { shape: [m.height, m.width], data: Float32Array.from(m.data) }));
      }
      // a caption is of its region alone: its look keeps only the tokens of the region's cells
      const maps = region ? regionMaps(out.selectionMaps, targets) : out.selectionMaps;
      trunkTokens = Math.max(trunkTokens, out.lastHiddenState.shape[1]!);
      if (from === undefined) {
        const high = tf.tidy(() => {
          const all = tf.reshape(finalNorm(ps3.weights, cfg.trunk, out.lastHiddenState), [-1, cfg.trunk.width]);
          const chosen = tf.slice(all, [n0, 0], [-1, -1]);
          return mergeTokens(region ? tf.gather(chosen, tf.tensor1d(keptRows(out.selectionMaps, maps), 'int32')) : chosen, highResGrids(ps3, maps));
        });
        arrays.set(`high.${q.index}`, await arrayOf(high));
        high.dispose();
      }
      if (!glyphs) tf.dispose([out.lastHiddenState, out.pooledOutput, ...out.bottomupSelectionProbs, ...out.selectionProbs]);
      if (region) continue;
      targets.forEach((t, s) => {
        const [gh, gw] = [out.selectionMaps[s]!.height, out.selectionMaps[s]!.width];
        arrays.set(`target.${q.index}.${s}`, { shape: [1, gh, gw], data: t });
      });
    }
    for (const o of shared) tf.dispose([o.lastHiddenState, o.pooledOutput, ...o.bottomupSelectionProbs, ...o.selectionProbs]);
  } else if (questions.length && spec.trunkFrom !== undefined) {
    if (spec.method !== 'lowres') throw new Error(`imageSamples: trunkFrom is for ps3 and lowres, not ${spec.method}`);
    const { tokens, kept } = lowResTokens(ps3, pixels, [spec.trunkFrom - 1]);
    arrays.set('lowin', await arrayOf(kept.get(spec.trunkFrom - 1)!));
    tf.dispose([tokens, ...kept.values()]);
    trunkTokens = lowResGrid(ps3) ** 2;
  } else if (questions.length) {
    const v = await baselineVisual(ps3, pixels, spec.method as Exclude<EncodeMethod, 'ps3'>, spec.resolution !== undefined ? { resolution: spec.resolution } : {});
    arrays.set('visual', await arrayOf(v.merged));
    trunkTokens = v.trunkTokens;
    v.merged.dispose();
  }
  return { questions, arrays, trunkTokens };
}

/** Cache image `i`; returns its questions. */
async function cacheImage(ps3: PS3Model, spec: CacheSpec, dir: string, i: number, scratch: Scratch): Promise<TrainQuestion[]> {
  const { questions, arrays, trunkTokens } = await imageSamples(ps3, spec, i, scratch, dir);
  const name = imageName(i);
  if (arrays.size) writeAtomic(path.join(dir, `${name}.safetensors`), (tmp) => writeSafetensors(tmp, arrays));
  writeAtomic(path.join(dir, `${name}.json`), (tmp) => fs.writeFileSync(tmp, `${JSON.stringify({ questions, trunk_tokens: trunkTokens })}\n`));
  return questions;
}

/** How often a builder looks again for the images other builders hold. */
const CLAIM_POLL_MS = 2000;

/**
 * Make (or finish) the cache of images 0..images-1 in `dir`; returns every question, image by
 * image. `onProgress(done, total)` after each image. Several builders may fill one folder at once
 * (cacheClaims.ts): each caches the images it claims, then waits for the ones the others hold.
 */
export async function buildCache(ps3: PS3Model, spec: CacheSpec, dir: string, onProgress?: (done: number, total: number) => void): Promise<TrainQuestion[]> {
  checkTrainSeed(spec.seed);
  fs.mkdirSync(dir, { recursive: true });
  const scratch: Scratch = {};
  const perImage: TrainQuestion[][] = [];
  let done = 0;
  /** image i's questions if it is cached, or cached now by this builder; undefined while another holds it */
  const fetch = async (i: number): Promise<TrainQuestion[] | undefined> => {
    const name = imageName(i);
    const meta = path.join(dir, `${name}.json`);
    if (fs.existsSync(meta)) return cachedQuestions(ps3, spec, dir, i, meta);
    const claimFile = path.join(dir, `${name}.claim`);
    if (!claim(claimFile)) return undefined;
    try {
      // another builder may have finished it between the look and the claim
      if (fs.existsSync(meta)) return cachedQuestions(ps3, spec, dir, i, meta);
      return await cacheImage(ps3, spec, dir, i, scratch);
    } finally {
      release(claimFile);
    }
  };
  // one pass over the images; then again over those other builders held, until none is left
  let waiting = Array.from({ length: spec.images }, (_, i) => i);
  for (;;) {
    const held: number[] = [];
    for (const i of waiting) {
      const questions = await fetch(i);
      if (questions) {
        perImage[i] = questions;
        onProgress?.(++done, spec.images);
      } else held.push(i);
    }
    waiting = held;
    if (waiting.length === 0) break;
    await sleep(CLAIM_POLL_MS);
  }
  const all = perImage.flat();
  if (all.length === 0) throw new UserError(`no questions from ${spec.images} scenes at ${ps3.config.vision.scales.at(-1)} px: details are too large at the low-res scale for 4K-only questions`);
  return all;
}

/** An image's questions from its cache files. */
function cachedQuestions(ps3: PS3Model, spec: CacheSpec, dir: string, i: number, meta: string): TrainQuestion[] {
  const questions = (JSON.parse(fs.readFileSync(meta, 'utf8')) as { questions: TrainQuestion[] }).questions;
  // a cache made without the ConvNeXt's input gets it now (the rest stays)
  if (spec.convInput && ps3.config.vision.highresSelectionFeature && questions.length && !fs.existsSync(convInputFile(dir, i))) {
    const S = ps3.config.vision.scales.at(-1)!;
    writeConvInput(ps3, scenePixels(renderScene(sceneRng(spec.seed, i), { width: S, height: S }).rgb, S), dir, i);
  }
  return questions;
}

/** Reads each sample's arrays from its task's cache (a mixed run has two). */
export class SampleReader {
  private readonly readers: Partial<Record<SampleTask, CacheReader>>;

  /** `dirs`: each task's cache folder; `convInput`: the qa cache holds the ConvNeXt's inputs, read too */
  constructor(readonly dirs: Partial<Record<SampleTask, string>>, convInput = false) {
    this.readers = Object.fromEntries(Object.entries(dirs).map(([task, dir]) => [task, new CacheReader(dir, 8, convInput && task === 'qa')]));
  }

  arrays(q: TrainQuestion): Map<string, NamedArray> {
    const reader = this.readers[sampleTask(q)];
    if (!reader) throw new Error(`training cache: no ${sampleTask(q)} cache for image ${q.image}`);
    return reader.image(q.image);
  }
}

/** Reads cached images, keeping the last few in memory. */
export class CacheReader {
  private readonly recent = new Map<number, Map<string, NamedArray>>();

  /** `convInput`: also read the ConvNeXt's input (`convin`) of each image */
  constructor(private readonly dir: string, private readonly keep = 8, private readonly convInput = false) {}

  image(i: number): Map<string, NamedArray> {
    const hit = this.recent.get(i);
    if (hit) return hit;
    const arrays = readSafetensors(path.join(this.dir, `${imageName(i)}.safetensors`));
    if (this.convInput) for (const [k, a] of readSafetensors(convInputFile(this.dir, i))) arrays.set(k, a);
    this.recent.set(i, arrays);
    if (this.recent.size > this.keep) this.recent.delete(this.recent.keys().next().value!);
    return arrays;
  }
}
