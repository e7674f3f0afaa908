/**
 * Does PS3 look where it should? On held-out scenes, the fraction of each region's high-res
 * patches at the top scale (the patches its box touches, by the pre-training ground-truth rule)
 * that the first look(s) choose:
 *  - top-down: the region's caption is the prompt (its text tower's `prompt`);
 *  - bottom-up: the learned prior prompt, over every small object of the scene;
 *  - random: what a uniformly random choice of as many top-scale patches covers, in expectation
 *    (chosen / grid size), for the same cases;
 *  - oracle (when asked for): per region, a free prompt fitted by gradient descent to the region's
 *    own box, starting from its caption's prompt. Not a method (it sees the answer): the most any
 *    prompt can make this model's selection features do, so a low top-down recall can be put on
 *    the prompts (text side) or on the features (image side).
 * Selection needs only the low-res pass, the convnet and the prompts, so no high-res pass runs.
 */
import { tf } from '../tensor/engine.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import type { RgbImage } from '../io/image.js';
import type { PS3Model } from '../model/load.js';
import { highresSelectionFeatures, lowRes, ScaledImages, selection, type Pixels } from '../model/encoder.js';
import { l2Normalize } from '../model/layers.js';
import { textFeatures } from '../model/region.js';
import { baseBudgets, chooseLook, gridAtScale, lookBudgets, planLooks } from '../model/selection.js';
import { createCanvas, fillRect, type Canvas, type Rgb } from '../data/draw.js';
import { drawText, GLYPH_CHARS } from '../data/glyphs.js';
import { displayImage } from '../io/heatmap.js';
import type { PixelBox, RetrievalImage } from './retrieval.js';

export interface SelectionCase {
  readonly image: string;
  readonly caption: string;
  readonly box: PixelBox;
  /** patches of the box at the top scale */
  readonly boxPatches: number;
  /** of those, chosen by the looks */
  readonly covered: number;
  readonly recall: number;
  /** top-scale patches the looks chose in all (what the random baseline draws) */
  readonly chosenTop: number;
}

export interface RecallSummary {
  /** mean over cases of covered / box patches */
  readonly recall: number | null;
  /** fraction of cases whose box was covered entirely */
  readonly full: number | null;
  readonly cases: number;
}

export interface SelectionRecallReport {
  readonly scale: number;
  readonly grid: readonly [number, number];
  readonly looks: number;
  /** top-scale patches one full look chooses */
  readonly top_budget_per_look: number;
  readonly images: number;
  readonly topdown: RecallSummary & { readonly per_kind: Record<string, RecallSummary> };
  readonly bottomup: RecallSummary;
  readonly random: RecallSummary & { readonly how: string };
  /**
   * Controls on the same boxes: the look another caption of the image drives (the next region's,
   * in images with two or more), and the bottom-up look. Top-down above them is the caption
   * steering selection to its object; equal to them, selection ignores the caption.
   */
  readonly controls: {
    readonly other_caption: RecallSummary & { readonly how: string };
    readonly prior_prompt: RecallSummary & { readonly how: string };
  };
  /** present when `oracleSteps` > 0 */
  readonly oracle?: RecallSummary & { readonly steps: number; readonly how: string };
  /** how far apart the captions' prompts are: top-down selection can only follow a caption its prompt sets apart */
  readonly prompts: PromptSpread;
  readonly cases: { readonly topdown: SelectionCase[]; readonly bottomup: SelectionCase[] };
}

export interface PromptSpread {
  /** mean cosine between the prompts of two captions of one image (1: every caption gives the same prompt) */
  readonly between_captions: number | null;
  /** mean cosine of a caption's prompt with the learned prior (bottom-up) prompt */
  readonly with_prior: number | null;
  readonly how: string;
}

/** An image of the evaluation: its regions (box, caption, kind) and its small objects' boxes, in top-scale pixels. */
export type SelectionImage = RetrievalImage;

export interface SelectionRecallOptions {
  readonly looks: number;
  /** how many top-down cases get a picture */
  readonly examples?: number;
  /** Adam steps of the oracle prompt per region (0 or absent: no oracle) */
  readonly oracleSteps?: number;
  readonly onProgress?: (done: number, total: number, recall: number) => void;
}

/**
 * The top-scale patches (row-major indices into a gh x gw grid over an h x w image) that a box
 * touches: the box as a 0/1 map at input resolution (rows floor(y0)..ceil(y1), columns
 * floor(x0)..ceil(x1), inclusive, clipped), area-downsampled to the grid, > 0. Each patch is
 * the input rectangle the area resize averages over.
 */
export function boxPatchIndices(box: PixelBox, height: number, width: number, gh: number, gw: number): number[] {
  const c0 = Math.max(0, Math.floor(box[0]));
  const c1 = Math.min(width - 1, Math.ceil(box[2]));
  const r0 = Math.max(0, Math.floor(box[1]));
  const r1 = Math.min(height - 1, Math.ceil(box[3]));
  if (c1 < c0 || r1 < r0) return [];
  // the area resize's cell j covers [j * in / out, (j + 1) * in / out): touched iff the pixel span overlaps it
  const cells = (a: number, b: number, size: number, n: number): [number, number] => [Math.floor((a * n) / size), Math.min(n - 1, Math.ceil(((b + 1) * n) / size) - 1)];
  const [ra, rb] = cells(r0, r1, height, gh);
  const [ca, cb] = cells(c0, c1, width, gw);
  const out: number[] = [];
  for (let r = ra; r <= rb; r++) for (let c = ca; c <= cb; c++) out.push(r * gw + c);
  return out;
}

/** The union of `looks` looks' choices at every high-res scale for one image's probabilities (flat per scale). */
export function chooseLooks(model: PS3Model, probs: readonly Float32Array[], height: number, width: number, looks: number): Uint8Array[] {
  const cfg = model.config.vision;
  const grids = cfg.scales.slice(1).map((_, i) => gridAtScale(cfg, height, width, i + 1));
  const base = baseBudgets(cfg);
  const maxTokens = grids.reduce((a, [h, w]) => a + h * w, 0);
  const union = grids.map(([h, w]) => new Uint8Array(h * w));
  planLooks(base, maxTokens, { numLookClose: looks }).forEach((num, k) => {
    const chosen = chooseLook(probs, k === 0 ? null : union, lookBudgets(base, num, null));
    chosen.forEach((ids, i) => ids.forEach((g) => (union[i]![g] = 1)));
  });
  return union;
}

const mean = (xs: readonly number[]): number | null => (xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : null);

function summarise(cases: readonly SelectionCase[]): RecallSummary {
  if (cases.length === 0) return { recall: null, full: null, cases: 0 };
  return {
    recall: cases.reduce((a, c) => a + c.recall, 0) / cases.length,
    full: cases.filter((c) => c.covered === c.boxPatches).length / cases.length,
    cases: cases.length,
  };
}

/** Learning rate of the oracle prompt's Adam: the logits are cosines, so the prompt's direction is what moves. */
const ORACLE_LR = 0.05;

/**
 * A prompt [1, D] fitted to one box: Adam on the balanced BCE of the top-scale probabilities (the
 * box's patches and the rest averaged apart, weighed equally), from `start`.
 */
function fitOraclePrompt(model: PS3Model, pixels: Pixels, hidden: readonly tf.Tensor[], features: tf.Tensor | null, start: tf.Tensor, patches: readonly number[], steps: number): tf.Tensor {
  const cfg = model.config.vision;
  const ns = cfg.scales.length - 1;
  const [gh, gw] = gridAtScale(cfg, pixels.height, pixels.width, ns);
  const inBox = new Float32Array(gh * gw);
  for (const p of patches) inBox[p] = 1;
  const target = tf.tensor(inBox, [1, gh, gw]);
  // the variable takes its own copy on the first step's assign; `start` is left as it was
  const prompt = tf.variable(start);
  const adam = tf.train.adam(ORACLE_LR);
  const n = patches.length;
  for (let s = 0; s < steps; s++) {
    adam.minimize(() => {
      const probs = selection(model.weights, cfg, pixels, hidden, features, prompt);
      const top = probs[ns - 1]!;
      const pos = tf.div(tf.sum(tf.mul(target, tf.log(tf.maximum(top, 1e-7)))), n);
      const neg = tf.div(tf.sum(tf.mul(tf.sub(1, target), tf.log(tf.maximum(tf.sub(1, top), 1e-7)))), gh * gw - n);
      return tf.neg(tf.mul(tf.add(pos, neg), 0.5)) as tf.Scalar;
    }, false, [prompt]);
  }
  const fitted = prompt.clone();
  tf.dispose([prompt, target]);
  adam.dispose();
  return fitted;
}

function scoreCase(image: string, caption: string, box: PixelBox, topMap: Uint8Array, height: number, width: number, gh: number, gw: number): SelectionCase | null {
  const patches = boxPatchIndices(box, height, width, gh, gw);
  if (patches.length === 0) return null;
  const covered = patches.filter((p) => topMap[p]).length;
  const chosenTop = topMap.reduce((a, v) => a + v, 0);
  return { image, caption, box, boxPatches: patches.length, covered, recall: covered / patches.length, chosenTop };
}

interface Example {
  readonly pixels: Pixels;
  readonly box: PixelBox;
  readonly caption: string;
  readonly topMap: Uint8Array;
  readonly recall: number;
}

/** Run the evaluation over `images` (pixels at the model's top scale). */
export async function evaluateSelection(model: PS3Model, tokenizer: TextTokenizer, images: readonly SelectionImage[], options: SelectionRecallOptions): Promise<{ report: SelectionRecallReport; examples: Example[] }> {
  const cfg = model.config.vision;
  const w = model.weights;
  const ns = cfg.scales.length - 1;
  const S = cfg.scales[ns]!;
  const topdown: SelectionCase[] = [];
  const bottomup: SelectionCase[] = [];
  const otherCaption: SelectionCase[] = [];
  const priorOnRegions: SelectionCase[] = [];
  const oracle: SelectionCase[] = [];
  const oracleSteps = options.oracleSteps ?? 0;
  const kinds = new Map<string, SelectionCase[]>();
  const between: number[] = [];
  const withPrior: number[] = [];
  const examples: Example[] = [];
  const wanted = options.examples ?? 0;
  let grid: [number, number] = [0, 0];
  for (const [n, image] of images.entries()) {
    const pixels = await image.load();
    const { height, width } = pixels;
    const [gh, gw] = gridAtScale(cfg, height, width, ns);
    grid = [gh, gw];
    const scaled = new ScaledImages(cfg, pixels);
    const low = lowRes(w, cfg, pixels, false, scaled);
    const features = highresSelectionFeatures(w, cfg, pixels, scaled);
    try {
      const prior = selection(w, cfg, pixels, low.hiddenStates, features, null);
      const priorArrays = await Promise.all(prior.map(async (p) => (await p.data()) as Float32Array));
      tf.dispose(prior);
      const priorTop = chooseLooks(model, priorArrays, height, width, options.looks)[ns - 1]!;
      for (const box of image.objects ?? []) {
        const c = scoreCase(image.key, '(object, bottom-up)', box, priorTop, height, width, gh, gw);
        if (c) bottomup.push(c);
      }
      for (const region of image.regions) {
        const c = scoreCase(image.key, region.caption, region.box, priorTop, height, width, gh, gw);
        if (c) priorOnRegions.push(c);
      }
      const R = image.regions.length;
      if (R > 0) {
        const captions = image.regions.map((r) => r.caption);
        const { features: text, prompts } = textFeatures(model, tokenizer.encode(captions), R);
        text.dispose();
        const { pairs, prior } = tf.tidy(() => {
          const unit = l2Normalize(prompts);
          const priorUnit = l2Normalize(tf.reshape(w.get('vision_model.prior_prompt'), [1, -1]));
          return { pairs: tf.matMul(unit, unit, false, true).arraySync() as number[][], prior: tf.matMul(unit, priorUnit, false, true).arraySync() as number[][] };
        });
        pairs.forEach((row, i) => row.forEach((c, j) => j < i && between.push(c)));
        prior.forEach(([c]) => withPrior.push(c!));
        if (oracleSteps > 0) {
          for (const [r, region] of image.regions.entries()) {
            const patches = boxPatchIndices(region.box, height, width, gh, gw);
            if (patches.length === 0) continue;
            const start = tf.slice(prompts, [r, 0], [1, -1]);
            const fitted = fitOraclePrompt(model, pixels, low.hiddenStates, features, start, patches, oracleSteps);
            const probs = selection(w, cfg, pixels, low.hiddenStates, features, fitted);
            const arrays = await Promise.all(probs.map(async (p) => (await p.data()) as Float32Array));
            tf.dispose([start, fitted, ...probs]);
            const c = scoreCase(image.key, region.caption, region.box, chooseLooks(model, arrays, height, width, options.looks)[ns - 1]!, height, width, gh, gw);
            if (c) oracle.push(c);
          }
        }
        // one image, R prompts: the selection inputs repeated R times
        const probs = tf.tidy(() => {
          const tiled = low.hiddenStates.map((h, i) => (cfg.selectBasedOnLayer.includes(i) ? tf.tile(h, [R, 1, 1]) : h));
          const f = features ? tf.tile(features, [R, 1, 1, 1]) : null;
          return selection(w, cfg, { ...pixels, batch: R }, tiled, f, prompts);
        });
        prompts.dispose();
        const arrays = await Promise.all(probs.map(async (p) => (await p.data()) as Float32Array));
        tf.dispose(probs);
        const grids = cfg.scales.slice(1).map((_, i) => gridAtScale(cfg, height, width, i + 1));
        const topMaps = image.regions.map((_, r) => {
          const own = arrays.map((a, i) => a.subarray(r * grids[i]![0] * grids[i]![1], (r + 1) * grids[i]![0] * grids[i]![1]));
          return chooseLooks(model, own, height, width, options.looks)[ns - 1]!;
        });
        image.regions.forEach((region, r) => {
          const topMap = topMaps[r]!;
          const c = scoreCase(image.key, region.caption, region.box, topMap, height, width, gh, gw);
          if (!c) return;
          if (R > 1) {
            const other = image.regions[(r + 1) % R]!;
            otherCaption.push(scoreCase(image.key, other.caption, region.box, topMaps[(r + 1) % R]!, height, width, gh, gw)!);
          }
          topdown.push(c);
          const kind = region.kind ?? 'all';
          kinds.set(kind, [...(kinds.get(kind) ?? []), c]);
          if (examples.length < wanted && (examples.length === 0 || examples[examples.length - 1]!.pixels !== pixels)) {
            examples.push({ pixels, box: region.box, caption: region.caption, topMap, recall: c.recall });
          }
        });
      }
    } finally {
      tf.dispose(low.hiddenStates);
      features?.dispose();
    }
    options.onProgress?.(n + 1, images.length, summarise(topdown).recall ?? 0);
  }
  const perLook = baseBudgets(cfg)[ns - 1]!;
  const random = topdown.map((c) => c.chosenTop / (grid[0] * grid[1]));
  const report: SelectionRecallReport = {
    scale: S,
    grid,
    looks: options.looks,
    top_budget_per_look: perLook,
    images: images.length,
    topdown: { ...summarise(topdown), per_kind: Object.fromEntries([...kinds].map(([k, cs]) => [k, summarise(cs)])) },
    bottomup: summarise(bottomup),
    controls: {
      other_caption: { ...summarise(otherCaption), how: 'each region\'s box scored with the look of the next region\'s caption of the same image (images with two or more regions): what a caption that names another object covers of this one' },
      prior_prompt: { ...summarise(priorOnRegions), how: 'each region\'s box scored with the bottom-up look (the prior prompt)' },
    },
    random: {
      recall: random.length ? random.reduce((a, c) => a + c, 0) / random.length : null,
      full: null,
      cases: random.length,
      how: 'expected recall of a uniformly random choice of as many top-scale patches as the looks chose (chosen / grid size), over the top-down cases',
    },
    ...(oracleSteps > 0
      ? { oracle: { ...summarise(oracle), steps: oracleSteps, how: 'per region, a free prompt fitted to its own box (Adam on the balanced BCE of the top-scale probabilities, from the caption\'s prompt): an upper bound of top-down selection with these features, not a method' } }
      : {}),
    prompts: {
      between_captions: mean(between),
      with_prior: mean(withPrior),
      how: 'cosines of the captions\' prompts (the text tower\'s prompt projection): between two captions of one image, and with the prior prompt',
    },
    cases: { topdown, bottomup },
  };
  return { report, examples };
}

const WHITE: Rgb = [255, 255, 255];
const RED: Rgb = [230, 30, 30];
const CHOSEN: Rgb = [255, 220, 0];

function blit(canvas: Canvas, image: RgbImage, x: number, y: number): void {
  for (let r = 0; r < image.height; r++) canvas.rgb.set(image.data.subarray(r * image.width * 3, (r + 1) * image.width * 3), ((y + r) * canvas.width + x) * 3);
}

function outline(canvas: Canvas, x0: number, y0: number, x1: number, y1: number, colour: Rgb, t: number): void {
  fillRect(canvas, x0 - t, y0 - t, x1 + t, y0, { colour });
  fillRect(canvas, x0 - t, y1, x1 + t, y1 + t, { colour });
  fillRect(canvas, x0 - t, y0, x0, y1, { colour });
  fillRect(canvas, x1, y0, x1 + t, y1, { colour });
}

/** Text in the 5 x 7 font, unknown characters dropped, words kept apart. */
function label(canvas: Canvas, text: string, x: number, y: number, height: number): void {
  const clean = text.toUpperCase().split('').filter((ch) => ch === ' ' || GLYPH_CHARS.includes(ch)).join('');
  let cx = x;
  for (const word of clean.split(' ').filter(Boolean)) {
    const wordWidth = (word.length * 6 * height) / 7;
    drawText(canvas, word, cx + wordWidth / 2, y + height / 2, height, { colour: WHITE });
    cx += wordWidth + (4 * height) / 7;
  }
}

/**
 * One row per example: the whole image (box in red, chosen top-scale patches shaded), and a
 * zoom on the box's neighbourhood at full resolution with the chosen patches outlined.
 */
export function examplesPicture(examples: readonly Example[], patch: number, mean: readonly number[], std: readonly number[]): RgbImage {
  const side = 384;
  const zoom = 384;
  const head = 22;
  const canvas = createCanvas(side + zoom + 12, Math.max(1, examples.length) * (side + head + 8));
  examples.forEach((ex, k) => {
    const { pixels, box, topMap } = ex;
    const { height, width } = pixels;
    const gh = Math.floor(height / patch);
    const gw = Math.floor(width / patch);
    const y = k * (side + head + 8) + head;
    label(canvas, `${ex.caption}  RECALL ${Math.round(ex.recall * 100)}`, 4, y - head + 3, 14);
    const whole = displayImage(pixels.data, height, width, mean, std, side, side);
    blit(canvas, whole, 0, y);
    for (let g = 0; g < topMap.length; g++) {
      if (!topMap[g]) continue;
      const r = Math.floor(g / gw);
      const c = g % gw;
      fillRect(canvas, (c * side) / gw, y + (r * side) / gh, ((c + 1) * side) / gw, y + ((r + 1) * side) / gh, { colour: CHOSEN, alpha: 0.5 });
    }
    outline(canvas, (box[0] * side) / width, y + (box[1] * side) / height, (box[2] * side) / width, y + (box[3] * side) / height, RED, 2);
    // the zoom: a window four times the box's larger side, centred on it, clipped to the image
    const extent = Math.min(Math.max(height, width), Math.max(8 * patch, 4 * Math.max(box[2] - box[0], box[3] - box[1])));
    const cx = (box[0] + box[2]) / 2;
    const cy = (box[1] + box[3]) / 2;
    const x0 = Math.round(Math.min(Math.max(0, cx - extent / 2), width - extent));
    const y0 = Math.round(Math.min(Math.max(0, cy - extent / 2), height - extent));
    const e = Math.round(extent);
    const crop = new Float32Array(3 * e * e);
    for (let ch = 0; ch < 3; ch++) {
      for (let r = 0; r < e; r++) crop.set(pixels.data.subarray(ch * height * width + (y0 + r) * width + x0, ch * height * width + (y0 + r) * width + x0 + e), ch * e * e + r * e);
    }
    const zx = side + 12;
    blit(canvas, displayImage(crop, e, e, mean, std, zoom, zoom), zx, y);
    const k2 = zoom / e;
    for (let g = 0; g < topMap.length; g++) {
      if (!topMap[g]) continue;
      const px = (g % gw) * patch;
      const py = Math.floor(g / gw) * patch;
      if (px + patch <= x0 || px >= x0 + e || py + patch <= y0 || py >= y0 + e) continue;
      fillRect(canvas, zx + Math.max(0, px - x0) * k2, y + Math.max(0, py - y0) * k2, zx + Math.min(e, px + patch - x0) * k2, y + Math.min(e, py + patch - y0) * k2, { colour: CHOSEN, alpha: 0.35 });
    }
    outline(canvas, zx + (box[0] - x0) * k2, y + (box[1] - y0) * k2, zx + (box[2] - x0) * k2, y + (box[3] - y0) * k2, RED, 2);
  });
  return { data: canvas.rgb, width: canvas.width, height: canvas.height };
}
