/**
 * `ps3 data synth --out DIR --count N --size PX --seed S`: writes synthetic high-resolution
 * detail scenes as key-matched webdataset shards (DIR/images, DIR/annotations), the word
 * tokenizer of their captions (DIR/tokenizer) and DIR/manifest.json. Refuses to write into a
 * folder that already holds shards, rather than mixing two data sets.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import cliProgress from 'cli-progress';
import { UserError } from '../errors.js';
import { SYNTH_VERSION, writeSynthDataset, type ImageFormat, type SynthSummary } from '../data/synth.js';
import { DEFAULT_CAPTIONS } from '../data/scene/render.js';
import { SPECIAL_TOKENS, synthVocabulary, writeWordTokenizer } from '../data/wordTokenizer.js';
import { outputFolder } from './inputs.js';

export interface DataSynthOptions {
  out: string;
  count: string;
  size: string;
  seed: string;
  perShard?: string;
  format?: string;
  /** width:height ("16:9") or width/height ("1.5"); default square */
  aspect?: string;
  contextLength?: string;
  /** local captions an image: "MIN-MAX" or "N" */
  captions?: string;
}

const MAX_SIDE = 16384;

function integerOption(name: string, value: string | undefined, fallback: number | null, min: number, max: number): number {
  if (value === undefined) {
    if (fallback === null) throw new UserError(`${name} is required`);
    return fallback;
  }
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UserError(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function formatOption(value: string | undefined): ImageFormat {
  const v = (value ?? 'png').toLowerCase();
  if (v === 'png') return 'png';
  if (v === 'jpg' || v === 'jpeg') return 'jpg';
  throw new UserError(`--format must be png or jpg, got "${value}"`);
}

/** width / height from "W:H" or a positive number. */
function aspectOption(value: string | undefined): number {
  if (value === undefined) return 1;
  const parts = value.split(':');
  const nums = parts.map((p) => (/^\s*\d+(\.\d+)?\s*$/.test(p) ? Number(p) : NaN));
  const ratio = nums.length === 1 ? nums[0]! : nums.length === 2 ? nums[0]! / nums[1]! : NaN;
  if (!Number.isFinite(ratio) || ratio < 1 / 8 || ratio > 8) throw new UserError(`--aspect must be W:H or a number (width / height) between 1/8 and 8, got "${value}"`);
  return ratio;
}

/** "MIN-MAX" or "N" local captions an image, 1 to 64 (`name` is the option's). */
export function captionsOption(value: string | undefined, name = '--captions'): readonly [number, number] {
  if (value === undefined) return DEFAULT_CAPTIONS;
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(value);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(lo >= 1 && hi <= 64 && lo <= hi)) throw new UserError(`${name} must be N or MIN-MAX with 1 <= MIN <= MAX <= 64, got "${value}"`);
  return [lo, hi];
}

/** Shards already in DIR/images or DIR/annotations. */
async function existingShards(out: string): Promise<string[]> {
  const found: string[] = [];
  for (const sub of ['images', 'annotations']) {
    let names: string[];
    try {
      names = await readdir(join(out, sub));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      throw new UserError(`--out: cannot read ${join(out, sub)} (${code ?? String(e)})`);
    }
    found.push(...names.filter((n) => n.endsWith('.tar')).map((n) => join(sub, n)));
  }
  return found;
}

export async function dataSynthCommand(options: DataSynthOptions): Promise<number> {
  const count = integerOption('--count', options.count, null, 1, 100_000_000);
  const size = integerOption('--size', options.size, null, 64, MAX_SIDE);
  const seed = integerOption('--seed', options.seed, 0, 0, 0xffffffff);
  const perShard = integerOption('--per-shard', options.perShard, 100, 1, 1_000_000);
  const contextLength = integerOption('--context-length', options.contextLength, 64, 2, 4096);
  const format = formatOption(options.format);
  const aspect = aspectOption(options.aspect);
  const captions = captionsOption(options.captions);
  // --size is the long side
  const width = aspect >= 1 ? size : Math.max(32, Math.round(size * aspect));
  const height = aspect >= 1 ? Math.max(32, Math.round(size / aspect)) : size;
  const out = options.out;
  if (!out) throw new UserError('--out is required');
  outputFolder('--out', out);
  const existing = await existingShards(out);
  if (existing.length > 0) {
    throw new UserError(`--out: ${out} already holds shards (${existing[0]}${existing.length > 1 ? `, and ${existing.length - 1} more` : ''}); choose a new folder or delete them`);
  }

  process.stdout.write(`synth: ${count} scenes of ${width} x ${height} (${format}), seed ${seed}, ${perShard} per shard -> ${out}\n`);
  const bar = new cliProgress.SingleBar({
    format: 'synth |{bar}| {value}/{total} images | {rate} img/s | {mb} MB | ETA {eta_formatted}',
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  const started = performance.now();
  bar.start(count, 0, { rate: '0.00', mb: '0' });
  let summary: SynthSummary;
  try {
    summary = await writeSynthDataset({ out, count, width, height, seed, perShard, format, captions }, ({ done, bytes }) => {
      const rate = done / ((performance.now() - started) / 1000);
      bar.update(done, { rate: rate.toFixed(2), mb: (bytes / 1e6).toFixed(1) });
    });
  } finally {
    bar.stop();
  }

  const vocabulary = synthVocabulary();
  await writeWordTokenizer(join(out, 'tokenizer'), vocabulary, { contextLength });
  const manifest = {
    generator: 'ps3 data synth',
    version: SYNTH_VERSION,
    count,
    size,
    width,
    height,
    seed,
    per_shard: perShard,
    format,
    local_captions: captions,
    shards: { images: summary.imageShards.map((p) => relative(out, p)), annotations: summary.annotationShards.map((p) => relative(out, p)) },
    captions: summary.captions,
    tokenizer: 'tokenizer',
    vocabulary_size: SPECIAL_TOKENS.length + vocabulary.length,
    context_length: contextLength,
  };
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  const perImage = summary.bytes / summary.images;
  process.stdout.write(
    `wrote ${summary.images} images, ${summary.captions} captions (local and global), ${(summary.bytes / 1e6).toFixed(1)} MB `
      + `(${(perImage / 1e6).toFixed(2)} MB per image) in ${summary.seconds.toFixed(1)} s: ${(summary.images / summary.seconds).toFixed(2)} images/s at ${width} x ${height} ${format}\n`,
  );
  return 0;
}
