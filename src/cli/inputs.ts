/** What several commands share: finding images, loading a model, checking look options. */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../errors.js';
import { loadModel, randomModel, readConfigFile, type ModelParts, type PS3Model } from '../model/load.js';
import { loadModelTokenizer, resolveModelFolder, type ResolvedModel } from '../hub/pretrained.js';
import type { DownloadProgress } from '../hub/snapshot.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { progressBar, type Progress } from './progress.js';
import { presetConfig } from '../model/presets.js';
import { baseBudgets, gridAtScale } from '../model/selection.js';
import type { PS3Config, VisionConfig } from '../io/config.js';
import type { EncodeOptions } from '../model/encoder.js';
import { oldGeneratorWarning } from '../eval/qa/make4k.js';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif']);

/** One image file, or every image file in a folder (sorted, not recursive). */
export function listImages(target: string): string[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    throw new UserError(`${target}: no such file or folder`);
  }
  if (!stat.isDirectory()) return [target];
  const files = fs
    .readdirSync(target)
    .filter((f) => IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase()))
    .sort()
    .map((f) => path.join(target, f));
  if (files.length === 0) throw new UserError(`${target}: no images (${[...IMAGE_EXTENSIONS].join(' ')}) in this folder`);
  return files;
}

const MB = 2 ** 20;
/** Downloads smaller than this finish too fast for a bar to say anything. */
const BAR_FROM_BYTES = 8 * MB;

/** A progress bar over the bytes of a download, in MB (made when the first bytes arrive). */
export function downloadProgress(label: string): { onProgress: (p: DownloadProgress) => void; stop: () => void } {
  let bar: Progress | undefined;
  return {
    onProgress(p) {
      if (p.total < BAR_FROM_BYTES) return;
      bar ??= progressBar(Math.ceil(p.total / MB), `${label} (MB)`);
      bar.update(Math.floor(p.done / MB));
    },
    stop() {
      bar?.stop();
    },
  };
}

/** A model folder, or a Hub id brought into the cache (with a progress bar). */
export async function resolveModelSpec(spec: string): Promise<ResolvedModel> {
  const progress = downloadProgress(`download ${spec}`);
  try {
    return await resolveModelFolder(spec, { onProgress: progress.onProgress });
  } finally {
    progress.stop();
  }
}

/**
 * `--model DIR|ORG/NAME[@REV]` or `--preset NAME` (random weights). `check` sees the config
 * before any weight is read: whether the model can run at all is said up front.
 */
export async function modelFrom(options: { model?: string; preset?: string; seed?: string }, parts: ModelParts, check?: (config: PS3Config, name: string) => void): Promise<PS3Model> {
  if (options.model && options.preset) throw new UserError('give --model DIR|ORG/NAME or --preset NAME, not both');
  if (options.model) {
    const folder = (await resolveModelSpec(options.model)).folder;
    check?.(readConfigFile(path.join(folder, 'config.json')), options.model);
    return loadModel(folder, parts);
  }
  if (options.preset) {
    const config = presetConfig(options.preset);
    check?.(config, options.preset);
    return randomModel(config, seedOption(options.seed) ?? 0);
  }
  throw new UserError('--model DIR|ORG/NAME is required (or --preset NAME for random weights)');
}

/**
 * The tokenizer of a loaded model: its own files, or the repo its config names (downloaded
 * when the model itself was given as a Hub id, else looked up in the cache).
 */
export async function tokenizerFor(model: PS3Model, spec: string): Promise<TextTokenizer> {
  if (model.folder === undefined) throw new UserError('a text prompt needs --model DIR|ORG/NAME with tokenizer files');
  const progress = downloadProgress('download tokenizer');
  try {
    return await loadModelTokenizer(model.folder, model, { download: !fs.existsSync(spec), onProgress: progress.onProgress });
  } finally {
    progress.stop();
  }
}

export function positiveInt(name: string, value: string | undefined): number | undefined {
  return intOption(name, value, { min: 0 });
}

/**
 * An integer option in [min, max]; `undefined` when not given. "abc", "1.5", "" and values out of
 * range are refused, naming the option and the value.
 */
export function intOption(name: string, value: string | undefined, range: { min?: number; max?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const min = range.min ?? Number.MIN_SAFE_INTEGER;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const n = /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : NaN;
  const wanted = range.max !== undefined ? `an integer from ${min} to ${max}` : min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UserError(`--${name} must be ${wanted}, got "${value}"`);
  return n;
}

/** A number option in [min, max] (`above`: strictly greater than min); `undefined` when not given. */
export function numberOption(name: string, value: string | undefined, range: { min?: number; max?: number; above?: boolean } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === '' ? NaN : Number(value);
  const min = range.min ?? -Infinity;
  const max = range.max ?? Infinity;
  const low = range.above ? n > min : n >= min;
  if (!Number.isFinite(n) || !low || n > max) {
    const wanted = range.above && min === 0 && max === Infinity ? 'a positive number' : `a number ${range.above ? '>' : '>='} ${min}${max < Infinity ? ` and <= ${max}` : ''}`;
    throw new UserError(`--${name} must be ${wanted}, got "${value}"`);
  }
  return n;
}

/** The seed option: an integer from 0 to 2^32 - 1. */
export function seedOption(value: string | undefined): number | undefined {
  return intOption('seed', value, { min: 0, max: 0xffffffff });
}

/** The nearest path at or above `target` that exists, with its stats. */
function nearestExisting(target: string): { at: string; stat: fs.Stats } {
  let at = path.resolve(target);
  for (;;) {
    try {
      return { at, stat: fs.statSync(at) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UserError(`${at}: cannot inspect (${code ?? String(e)})`);
    }
    const up = path.dirname(at);
    if (up === at) throw new UserError(`${target}: no part of this path exists`);
    at = up;
  }
}

function writableFolder(option: string, shown: string, at: string): void {
  try {
    fs.accessSync(at, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new UserError(`${option}: ${shown}: cannot write in ${at} (permission denied)`);
  }
}

/**
 * An output folder that can be made or written into: not a file, nothing on its path a file,
 * writable where it would be created. Checks only; creates nothing.
 */
export function outputFolder(option: string, dir: string): string {
  if (dir.trim() === '') throw new UserError(`${option} must name a folder`);
  const { at, stat } = nearestExisting(dir);
  if (!stat.isDirectory()) {
    throw new UserError(at === path.resolve(dir) ? `${option}: ${dir} is a file, not a folder` : `${option}: ${dir}: ${at} is a file, not a folder`);
  }
  writableFolder(option, dir, at);
  return dir;
}

/** An output file that can be written: not a folder, its folder makeable and writable. Creates nothing. */
export function outputFile(option: string, file: string): string {
  if (file.trim() === '') throw new UserError(`${option} must name a file`);
  const resolved = path.resolve(file);
  if (fs.existsSync(resolved)) {
    if (fs.statSync(resolved).isDirectory()) throw new UserError(`${option}: ${file} is a folder, not a file`);
    try {
      fs.accessSync(resolved, fs.constants.W_OK);
    } catch {
      throw new UserError(`${option}: ${file}: cannot write this file (permission denied)`);
    }
    return file;
  }
  outputFolder(option, path.dirname(resolved));
  return file;
}

/** An input file that exists and can be read. */
export function inputFile(option: string, file: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new UserError(`${option}: ${file}: no such file`);
  }
  if (stat.isDirectory()) throw new UserError(`${option}: ${file} is a folder, not a file`);
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw new UserError(`${option}: ${file}: cannot read this file (permission denied)`);
  }
  return file;
}

/** An input image: a readable file whose header an image decoder understands (pixels not decoded). */
export async function inputImage(option: string, file: string): Promise<string> {
  inputFile(option, file);
  try {
    const meta = await sharp(file).metadata();
    if (!meta.width || !meta.height) throw new Error('no size in its header');
  } catch (e) {
    throw new UserError(`${option}: ${file}: not an image this program can read (${(e as Error).message.split('\n')[0]})`);
  }
  return file;
}

/** A comma-separated list, each part parsed by `item`; an empty list is refused. */
export function listOption<T>(name: string, value: string, item: (part: string) => T): T[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new UserError(`--${name} must be a comma-separated list without empty items, got "${value}"`);
  return parts.map(item);
}

/**
 * The look options of `--looks N | --tokens N | --all` and `--scales N`, clamped with a warning
 * where the reference clamps (more looks or tokens than the image has patches for).
 */
export function lookOptions(
  cfg: VisionConfig,
  o: { looks?: string; tokens?: string; all?: boolean; scales?: string },
  warn: (message: string) => void,
): Pick<EncodeOptions, 'numLookClose' | 'numTokenLookClose' | 'onlySelectFirstNScale'> {
  const given = [o.looks !== undefined, o.tokens !== undefined, o.all === true].filter(Boolean).length;
  if (given > 1) throw new UserError('give one of --looks N, --tokens N, --all');
  const ns = cfg.scales.length - 1;
  const scales = positiveInt('scales', o.scales);
  if (scales !== undefined && (scales < 1 || scales > ns)) throw new UserError(`--scales must be in [1, ${ns}], got ${scales}`);
  // square inputs: the processor squashes every image to the top scale
  const S = cfg.scales[ns]!;
  const counted = scales ?? ns;
  const maxTokens = Array.from({ length: counted }, (_, i) => gridAtScale(cfg, S, S, i + 1)).reduce((a, [h, w]) => a + h * w, 0);
  const perLook = baseBudgets(cfg).reduce((a, c) => a + c, 0);
  const restrict = scales !== undefined ? { onlySelectFirstNScale: scales } : {};
  if (o.all) return { numLookClose: 'all', ...restrict };
  const tokens = positiveInt('tokens', o.tokens);
  if (tokens !== undefined) {
    if (tokens > maxTokens) warn(`--tokens ${tokens} is more than the ${maxTokens} high-res patches there are; using ${maxTokens}`);
    return { numTokenLookClose: Math.min(tokens, maxTokens), ...restrict };
  }
  const looks = positiveInt('looks', o.looks) ?? 1;
  const needed = Math.ceil(maxTokens / perLook);
  if (looks > needed) warn(`--looks ${looks} is more than the ${needed} looks that cover every patch; using ${needed}`);
  return { numLookClose: Math.min(looks, needed), ...restrict };
}

/** Say so (stderr) when a benchmark was made by an older question generator. */
export function warnOldGenerator(bench: string): void {
  const warning = oldGeneratorWarning(bench);
  if (warning) process.stderr.write(`${warning}\n`);
}

/** A benchmark given as its file, or as the folder `ps3 eval make-4k` wrote (its questions.jsonl). */
export function benchmarkFile(bench: string): string {
  if (!fs.existsSync(bench) || !fs.statSync(bench).isDirectory()) return bench;
  const file = path.join(bench, 'questions.jsonl');
  if (!fs.existsSync(file)) throw new UserError(`${bench}: a folder without questions.jsonl (give a benchmark's questions.jsonl, or the folder ps3 eval make-4k wrote)`);
  return file;
}
