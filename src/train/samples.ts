/**
 * One pre-training sample (spec §3): a caption, the image cropped and resized to S x S, and the
 * caption's box as a 0/1 map at S x S.
 *
 * Per image, with probability `globalCaptionProb` (or when it has no local caption) the global
 * caption and the whole image as the box; else one random local (box, caption). The caption is
 * cleaned (captions.ts) and sentence-masked. The image gets torchvision's RandomResizedCrop (area
 * 0.9-1, ratio 3/4-4/3) then PIL's bicubic to S x S, and the box follows the same crop and scale.
 *
 * With `regions` > 1, a local sample also carries up to regions - 1 other local (box, caption)
 * pairs of the same image (`regions`): more pairs for the contrastive term from the one look,
 * among them the hardest negatives there are — other objects of the same image.
 *
 * Random draws, in order: global coin, caption index, sentence mask, crop, then (regions > 1)
 * the other regions' order and their sentence masks — after the reference's draws, so a run with
 * one region draws exactly as before. One Rng per sample (seeded from the run's seed and the
 * sample's index) keeps a resumed run identical to an uninterrupted one.
 */

import { cropResizeNormalise, decodeImage, type RgbImage } from '../io/image.js';
import type { Annotation, Box, RawSample } from '../io/shards.js';
import { boxCells, boxToGtMap, ownForcedAtTop, type ForcingCapacity } from '../model/selection.js';
import type { Rng } from '../rng.js';
import type { BufferPool } from '../tensor/bufferPool.js';
import { cleanCaption, maskSentences } from './captions.js';

export interface SampleOptions {
  /** Side of the output square (the top scale S). */
  readonly size: number;
  /** Chance of the global caption (0.25 in the reference). */
  readonly globalCaptionProb: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** Refuse images whose header claims more pixels than this. */
  readonly maxPixels?: number;
  /** Local (box, caption) pairs per image for the contrastive term, the sample's own included (default 1). */
  readonly regions?: number;
  /** What one look can force (model/selection.ts): other regions are kept only while all fit. */
  readonly forcing?: ForcingCapacity;
}

/** Another local region of the sample's image: its caption and its box in output pixels. */
export interface SampleRegion {
  readonly caption: string;
  readonly box: Box;
}

export interface TrainSample {
  readonly key: string;
  /** Normalised crop, [3, S, S] float32. */
  readonly pixels: Float32Array;
  /** Ground-truth selection map, [S, S] of 0/1: the box's pixels, all ones for a global caption. */
  readonly gt: Float32Array;
  readonly isGlobal: 0 | 1;
  readonly caption: string;
  /** The box in output pixels, clipped to [0, S]; null for a global caption. */
  readonly box: Box | null;
  /** `pixels` resized to the encoder's other sizes ("HxW" -> [3, H, W]), when asked for */
  readonly resized?: Map<string, Float32Array>;
  /** the image's other local regions (`regions` > 1; none for a global caption) */
  readonly regions?: readonly SampleRegion[];
}

/** A crop window in source pixels: rows top..top+height, columns left..left+width. */
export interface CropWindow {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/** RandomResizedCrop's ranges in the reference. */
const CROP_SCALE: readonly [number, number] = [0.9, 1];
const CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

/** Python's round(): halves to even, as torchvision's int(round(...)) does. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `RandomResizedCrop.get_params`: up to 10 tries of a random area fraction in
 * `scale` and a log-uniform aspect ratio in `ratio`; if none fits, the whole image cut to the
 * nearest allowed ratio, centred.
 */
export function randomResizedCropWindow(
  width: number,
  height: number,
  rng: Rng,
  scale: readonly [number, number] = CROP_SCALE,
  ratio: readonly [number, number] = CROP_RATIO,
): CropWindow {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: rng.int(0, height - h), left: rng.int(0, width - w), height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Cut a window out of an image: [H, W, 3] -> [h, w, 3]. */
export function cropImage(image: RgbImage, window: CropWindow): RgbImage {
  const { top, left, width, height } = window;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * image.width + left) * 3;
    data.set(image.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { data, width, height };
}

/** A source-pixel box through the crop and the resize to size x size, clipped to [0, size]. */
export function transformBox(box: Box, window: CropWindow, size: number): Box {
  const sx = size / window.width;
  const sy = size / window.height;
  const clip = (v: number): number => Math.min(size, Math.max(0, v));
  const [x0, y0, x1, y1] = box;
  return [clip((x0 - window.left) * sx), clip((y0 - window.top) * sy), clip((x1 - window.left) * sx), clip((y1 - window.top) * sy)];
}

/** The global caption or one random local (box, caption); box null for the global one. */
function pickCaption(annotation: Annotation, rng: Rng, globalCaptionProb: number): { text: string; box: Box | null; index: number } {
  const { text, box, globalText } = annotation;
  // the coin is drawn even when only one kind exists, so the draws stay in step
  const coin = rng.next();
  if (globalText !== null && (coin < globalCaptionProb || text.length === 0)) return { text: globalText, box: null, index: -1 };
  const i = rng.int(0, text.length - 1);
  return { text: text[i]!, box: box[i]!, index: i };
}

/**
 * Up to `count` local regions other than `exclude`, in a random order, through the crop; a box
 * the crop leaves without area is dropped (a caption of nothing visible would teach noise), and
 * with `forcing` so is one that would push the forced top-scale patches (the sample's own box's
 * and the kept regions') past the look's top budget: its patches would not all be looked at, and
 * its feature would pool other tokens.
 */
function otherRegions(annotation: Annotation, rng: Rng, exclude: number, own: Box, count: number, window: CropWindow, size: number, forcing?: ForcingCapacity): SampleRegion[] {
  const { text, box } = annotation;
  const order = text.map((_, i) => i).filter((i) => i !== exclude);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const forced = new Set(forcing ? ownForcedAtTop(own, size, forcing) : []);
  const out: SampleRegion[] = [];
  for (const i of order) {
    if (out.length === count) break;
    const b = transformBox(box[i]!, window, size);
    if (!(b[2] > b[0] && b[3] > b[1])) continue;
    if (forcing) {
      const more = boxCells(b, size, forcing.top, forcing.top).filter((g) => !forced.has(g));
      if (forced.size + more.length > forcing.budget) continue;
      more.forEach((g) => forced.add(g));
    }
    out.push({ caption: maskSentences(cleanCaption(text[i]!), rng), box: b });
  }
  return out;
}

/**
 * One pre-training sample from a shard sample. An image that does not decode throws a
 * UserError naming shard and key: the caller skips and counts it. With `pool`, the big arrays
 * (the sample's and the intermediate ones) come from it.
 */
export async function makeSample(raw: RawSample, rng: Rng, options: SampleOptions, pool?: BufferPool): Promise<TrainSample> {
  const name = `${raw.shard}: ${raw.key}.${raw.imageExt}`;
  const image = await decodeImage(raw.image, options.maxPixels === undefined ? { name } : { name, maxPixels: options.maxPixels });
  return sampleFromImage(raw.key, raw.annotation, image, rng, options, pool);
}

/** One pre-training sample from an image already decoded (or drawn) and its annotation. */
export function sampleFromImage(key: string, annotation: Annotation, image: RgbImage, rng: Rng, options: SampleOptions, pool?: BufferPool): TrainSample {
  const { size } = options;
  const picked = pickCaption(annotation, rng, options.globalCaptionProb);
  const caption = maskSentences(cleanCaption(picked.text), rng);
  const window = randomResizedCropWindow(image.width, image.height, rng);
  const pixels = cropResizeNormalise(image, window, size, size, options.mean, options.std, pool?.float32(3 * size * size));
  const box = picked.box === null ? null : transformBox(picked.box, window, size);
  const sample = { key, pixels, gt: boxToGtMap(box, size, pool?.float32(size * size)), isGlobal: box === null ? 1 : 0, caption, box } as const;
  const regions = options.regions ?? 1;
  if (regions <= 1 || box === null) return sample;
  return { ...sample, regions: otherRegions(annotation, rng, picked.index, box, regions - 1, window, size, options.forcing) };
}
