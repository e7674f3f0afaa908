/** What several commands share: finding images, loading a model, checking look options. */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { loadModel, randomModel, readConfigFile, type ModelParts, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { baseBudgets, gridAtScale } from '../model/selection.js';
import type { PS3Config, VisionConfig } from '../io/config.js';
import type { EncodeOptions } from '../model/encoder.js';

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

export function modelFrom(options: { model?: string; preset?: string; seed?: string }, parts: ModelParts, check?: (config: PS3Config, name: string) => void): PS3Model {
  if (options.model && options.preset) throw new UserError('give --model DIR or --preset NAME, not both');
  if (options.model) {
    // the config alone says whether the model can run, before its weights are read
    check?.(readConfigFile(path.join(options.model, 'config.json')), options.model);
    return loadModel(options.model, parts);
  }
  if (options.preset) {
    const config = presetConfig(options.preset);
    check?.(config, options.preset);
    return randomModel(config, Number(options.seed ?? 0));
  }
  throw new UserError('--model DIR is required (or --preset NAME for random weights)');
}

export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UserError(`--${name} must be a number, got "${value}"`);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`--${name} must be a non-negative integer, got ${value}`);
  return n;
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
