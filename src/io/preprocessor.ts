/**
 * `preprocessor_config.json`: how an image becomes pixel values for a model folder.
 *
 * Written in the reference's `PS3ImageProcessor` layout, exactly its constructor's arguments
 * (`image_size`, `mean`, `std`, `interpolation`, `resize_mode`) and nothing else: the
 * reference builds the processor with `cls(**file)`, and some of its releases take no other
 * keyword, so any extra key (even `image_processor_type`) would stop it constructing.
 *
 * Read in that layout (the released checkpoints) and in the generic Hugging Face one (`size`,
 * `image_mean`, `image_std`, `resample`) that earlier folders of this project used. The
 * reference's defaults apply to its own layout: no `mean`/`std` means OpenAI CLIP's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

export interface ImageProcessorConfig {
  /** the side of the square every image is squashed to */
  readonly size: number;
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

export const PS3_MEAN = [0.5, 0.5, 0.5] as const;
export const PS3_STD = [0.5, 0.5, 0.5] as const;
// the reference processor's fallbacks (OPENAI_DATASET_MEAN / _STD)
const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711] as const;

const OFFICIAL_KEYS = ['image_size', 'mean', 'std', 'interpolation', 'resize_mode'] as const;
// PIL's resample codes, as the generic layout stores them; 3 is bicubic
const PIL_BICUBIC = 3;

/** The file for a model whose top scale is `size` (every PS3 model: mean and std 0.5). */
export function preprocessorJson(size: number): Record<string, unknown> {
  return { image_size: size, mean: [...PS3_MEAN], std: [...PS3_STD], interpolation: 'bicubic', resize_mode: 'squash' };
}

type Json = Record<string, unknown>;

function triple(v: unknown, key: string, where: string): readonly [number, number, number] {
  // the reference repeats a single number over the three channels
  if (typeof v === 'number' && Number.isFinite(v)) return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return [v[0], v[1], v[2]];
  throw new UserError(`${where}: ${key} must be a number or a list of 3 numbers, got ${JSON.stringify(v)}`);
}

function positiveSide(v: unknown, key: string, where: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  throw new UserError(`${where}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
}

function checkStd(std: readonly number[], key: string, where: string): void {
  if (std.some((s) => s <= 0)) throw new UserError(`${where}: ${key} values must be positive, got ${JSON.stringify(std)}`);
}

function official(j: Json, defaultSize: number, where: string): ImageProcessorConfig {
  const interpolation = j['interpolation'] ?? 'bicubic';
  if (interpolation !== 'bicubic') {
    throw new UserError(`${where}: interpolation "${String(interpolation)}": only "bicubic" (what every PS3 model uses) is implemented`);
  }
  const resizeMode = j['resize_mode'] ?? 'squash';
  if (resizeMode !== 'squash') throw new UserError(`${where}: resize_mode "${String(resizeMode)}": only "squash" is implemented`);
  const size = j['image_size'] ?? defaultSize;
  let side: number;
  if (Array.isArray(size) && size.length === 2) {
    side = positiveSide(size[0], 'image_size[0]', where);
    if (positiveSide(size[1], 'image_size[1]', where) !== side) throw new UserError(`${where}: image_size ${JSON.stringify(size)}: only a square size is implemented`);
  } else {
    side = positiveSide(size, 'image_size', where);
  }
  // the reference uses `mean or OPENAI_DATASET_MEAN`: null, absent (and 0) fall back
  const mean = j['mean'] ? triple(j['mean'], 'mean', where) : OPENAI_MEAN;
  const std = j['std'] ? triple(j['std'], 'std', where) : OPENAI_STD;
  checkStd(std, 'std', where);
  return { size: side, mean, std };
}

function generic(j: Json, defaultSize: number, where: string): ImageProcessorConfig {
  const resample = j['resample'] ?? PIL_BICUBIC;
  if (resample !== PIL_BICUBIC) throw new UserError(`${where}: resample ${JSON.stringify(resample)}: only bicubic (3) is implemented`);
  const size = j['size'];
  let height = defaultSize;
  let width = defaultSize;
  if (typeof size === 'number') {
    height = width = positiveSide(size, 'size', where);
  } else if (typeof size === 'object' && size !== null) {
    const s = size as Json;
    if ('height' in s || 'width' in s) {
      height = positiveSide(s['height'], 'size.height', where);
      width = positiveSide(s['width'], 'size.width', where);
    } else if ('shortest_edge' in s) {
      height = width = positiveSide(s['shortest_edge'], 'size.shortest_edge', where);
    } else {
      throw new UserError(`${where}: size must have height and width (or shortest_edge), got ${JSON.stringify(size)}`);
    }
  } else if (size !== undefined && size !== null) {
    throw new UserError(`${where}: size must be a number or an object, got ${JSON.stringify(size)}`);
  }
  const mean = j['image_mean'] !== undefined && j['image_mean'] !== null ? triple(j['image_mean'], 'image_mean', where) : PS3_MEAN;
  const std = j['image_std'] !== undefined && j['image_std'] !== null ? triple(j['image_std'], 'image_std', where) : PS3_STD;
  checkStd(std, 'image_std', where);
  if (height !== width) throw new UserError(`${where}: size ${height}x${width}: only a square size is implemented`);
  return { size: height, mean, std };
}

/** A parsed `preprocessor_config.json`; `defaultSize` (the model's top scale) fills a missing size. */
export function parsePreprocessor(json: unknown, defaultSize: number, where = 'preprocessor_config.json'): ImageProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${where}: expected a JSON object`);
  const j = json as Json;
  const isOfficial = OFFICIAL_KEYS.some((k) => k in j);
  return isOfficial ? official(j, defaultSize, where) : generic(j, defaultSize, where);
}

/** `dir/preprocessor_config.json`, or PS3's processor at `defaultSize` when the folder has none. */
export function readPreprocessor(dir: string, defaultSize: number): ImageProcessorConfig {
  const file = path.join(dir, 'preprocessor_config.json');
  if (!fs.existsSync(file)) return { size: defaultSize, mean: PS3_MEAN, std: PS3_STD };
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parsePreprocessor(json, defaultSize, file);
}
