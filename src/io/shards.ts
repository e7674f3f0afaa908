/**
 * The reference's pre-training data, streamed straight from its tar files: two key-matched
 * webdataset shard sets, images (`KEY.jpg`, `.jpeg`, `.png`, `.webp`, `.bmp`, `.tiff`, `.tif`: what
 * the reference's reader takes) and annotations (`KEY.json`: local captions `text`, one pixel box
 * `[x0, y0, x1, y1]` per caption in `box`, `global_text`, optional `type`). As in the reference,
 * `global_text` is optional, and so are `text` and `box` (together) when `global_text` is there.
 * Shard i of the images pairs with shard i of the annotations.
 *
 * Nothing is extracted to disk and images are not decoded here: a sample carries the encoded
 * bytes, so skipping samples (resume) costs only reading tar bytes. Broken data is never fatal:
 * an entry without its partner, bad JSON, an annotation failing validation or a corrupt tar is
 * skipped and counted by reason, and a corrupt tar loses only the rest of its shard.
 */

import { createReadStream, readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import tar from 'tar-stream';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { Rng } from '../rng.js';
import { decodeImage, exifOrientation } from './image.js';

/** A box in pixels of the original image: [x0, y0, x1, y1] with x0 <= x1, y0 <= y1. */
export type Box = readonly [number, number, number, number];

/** One validated `KEY.json`. */
export interface Annotation {
  /** Local captions, one per box (empty when the entry has none). */
  readonly text: readonly string[];
  readonly box: readonly Box[];
  /** One caption of the whole image (`global_text` on disk), null when absent. */
  readonly globalText: string | null;
  readonly type?: string;
  /** set when the entry holds `text` and `box` as empty lists (rather than leaving them out) */
  readonly emptyLists?: true;
}

/** One image with its annotation, as read from a shard pair. */
export interface RawSample {
  readonly key: string;
  /** The image shard the sample came from. */
  readonly shard: string;
  /** Encoded image file bytes (JPEG, PNG, WebP, BMP or TIFF). */
  readonly image: Uint8Array;
  /** The image entry's extension, lower case: jpg, jpeg, png, webp, bmp, tiff or tif. */
  readonly imageExt: string;
  readonly annotation: Annotation;
}

/** Why an entry was dropped. */
export type SkipReason = 'unpaired' | 'duplicate' | 'badJson' | 'badAnnotation' | 'badTar';
export const SKIP_REASONS: readonly SkipReason[] = ['unpaired', 'duplicate', 'badJson', 'badAnnotation', 'badTar'];

/** One dropped entry (or, for `badTar`, the rest of a shard; its key is then ''). */
export interface ShardProblem {
  /** The tar file the problem is in. */
  readonly shard: string;
  readonly key: string;
  readonly reason: SkipReason;
  /** One line saying what is wrong. */
  readonly problem: string;
}

const IMAGE_EXTS: ReadonlySet<string> = new Set(['jpg', 'jpeg', 'png', 'webp', 'bmp', 'tiff', 'tif']);
const ANNOTATION_EXT = 'json';

// ---------------------------------------------------------------------------------------------
// Shard specs: "a.tar,b.tar", "shard-{000..009}.tar", "{train,extra}/x.tar", a folder of tars.

/** Split at commas outside braces: "a{1,2},b" -> ["a{1,2}", "b"]. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** "{000..010}" body "000..010" -> ["000", ..., "010"]; padded when an end has a leading zero, as braceexpand does. */
function numericRange(first: string, last: string): string[] {
  const a = Number(first);
  const b = Number(last);
  const padded = /^-?0\d/.test(first) || /^-?0\d/.test(last);
  const width = padded ? Math.max(first.length, last.length) : 0;
  const step = a <= b ? 1 : -1;
  const out: string[] = [];
  for (let v = a; step > 0 ? v <= b : v >= b; v += step) {
    out.push(v < 0 ? `-${String(-v).padStart(width - 1, '0')}` : String(v).padStart(width, '0'));
  }
  return out;
}

/** Brace expansion as webdataset's braceexpand: numeric ranges and comma alternatives, nested. */
export function braceExpand(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) {
    if (pattern.includes('}')) throw new UserError(`shard pattern '${pattern}': unbalanced '}'`);
    return [pattern];
  }
  let depth = 0;
  let close = -1;
  for (let i = open; i < pattern.length && close < 0; i++) {
    if (pattern[i] === '{') depth++;
    else if (pattern[i] === '}' && --depth === 0) close = i;
  }
  if (close < 0) throw new UserError(`shard pattern '${pattern}': unbalanced '{'`);
  const body = pattern.slice(open + 1, close);
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(body);
  const alternatives = range ? numericRange(range[1]!, range[2]!) : splitTopLevel(body);
  const prefix = pattern.slice(0, open);
  const suffix = pattern.slice(close + 1);
  return alternatives.flatMap((a) => braceExpand(prefix + a + suffix));
}

/** One expanded path: a tar file as is, a folder as its `*.tar` files sorted; null if missing. */
function filesAt(file: string): string[] | null {
  const info = statSync(file, { throwIfNoEntry: false });
  if (info === undefined) return null;
  if (!info.isDirectory()) return [file];
  const names = readdirSync(file).filter((n) => n.endsWith('.tar')).sort();
  if (names.length === 0) throw new UserError(`${file}: folder holds no .tar files`);
  return names.map((n) => path.join(file, n));
}

/**
 * A shard spec to absolute tar paths, in order. A spec is a path, a folder (its `*.tar`, sorted),
 * a brace pattern (`shard-{000..009}.tar`, `{a,b}.tar`) or a comma-separated list of those (or
 * an array of specs). Every path a pattern names must exist.
 */
export function expandShardSpec(spec: string | readonly string[]): string[] {
  const specs = (typeof spec === 'string' ? [spec] : spec).flatMap(splitTopLevel).map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length === 0) throw new UserError('no shards given (empty shard spec)');
  const files: string[] = [];
  for (const part of specs) {
    const expanded = braceExpand(part).map((p) => path.resolve(p));
    const found = expanded.map(filesAt);
    const missing = expanded.filter((_, i) => found[i] === null);
    if (missing.length > 0) {
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more of ${expanded.length})` : '';
      throw new UserError(`shard spec '${part}': no such file or folder ${missing[0]}${more}`);
    }
    for (const f of found) files.push(...f!);
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// Annotations

const finite = z.number().finite();
const annotationSchema = z
  .object({
    text: z.array(z.string()).optional(),
    box: z.array(z.tuple([finite, finite, finite, finite])).optional(),
    global_text: z.string().optional(),
    type: z.string().optional(),
  })
  .superRefine((a, ctx) => {
    // the reference's reader takes `text` and `box` together, or `global_text` alone
    if (a.text === undefined && a.global_text === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'neither text nor global_text: no caption to train on' });
    }
    if ((a.text === undefined) !== (a.box === undefined)) {
      ctx.addIssue({ code: 'custom', path: [a.text === undefined ? 'text' : 'box'], message: `missing while ${a.text === undefined ? 'box' : 'text'} is there` });
    }
    const text = a.text ?? [];
    const box = a.box ?? [];
    if (a.text !== undefined && a.box !== undefined && box.length !== text.length) {
      ctx.addIssue({ code: 'custom', path: ['box'], message: `${box.length} boxes for ${text.length} captions in text` });
    }
    if (text.length === 0 && a.global_text === undefined) {
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'empty, and no global_text: no caption to train on' });
    }
    box.forEach(([x0, y0, x1, y1], i) => {
      if (x1 < x0) ctx.addIssue({ code: 'custom', path: ['box', i], message: `x1 < x0 (${x1} < ${x0})` });
      if (y1 < y0) ctx.addIssue({ code: 'custom', path: ['box', i], message: `y1 < y0 (${y1} < ${y0})` });
    });
  });

type ParsedAnnotation = { ok: true; annotation: Annotation } | { ok: false; reason: 'badJson' | 'badAnnotation'; problem: string };

/** `KEY.json` bytes to a validated Annotation, or what is wrong in one line. */
export function parseAnnotation(bytes: Uint8Array): ParsedAnnotation {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    return { ok: false, reason: 'badJson', problem: `not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  const result = annotationSchema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
    return { ok: false, reason: 'badAnnotation', problem: issues.slice(0, 3).join('; ') + (issues.length > 3 ? `; ${issues.length - 3} more` : '') };
  }
  const { text = [], box = [], global_text: globalText = null, type } = result.data;
  const emptyLists = result.data.text !== undefined && text.length === 0;
  return { ok: true, annotation: { text, box, globalText, ...(type === undefined ? {} : { type }), ...(emptyLists ? { emptyLists: true as const } : {}) } };
}

// ---------------------------------------------------------------------------------------------
// Tar reading

/** A tar entry name split as webdataset does: key up to the first dot of the basename, ext after it. */
function splitName(name: string): { key: string; ext: string } | null {
  const m = /^((?:.*\/)?[^./]+)\.([^/]*)$/.exec(name);
  return m ? { key: m[1]!, ext: m[2]!.toLowerCase() } : null;
}

interface TarFile {
  readonly name: string;
  readonly data: Buffer;
}

async function readEntry(entry: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Whether a tar ends with its end-of-archive marker (two zero blocks). The extractor accepts a
 * file cut exactly between entries, as a writer killed mid-shard leaves it; this catches that.
 */
async function hasEndMarker(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size < 1024) return false;
    const tail = Buffer.alloc(1024);
    await handle.read(tail, 0, 1024, size - 1024);
    return tail.every((b) => b === 0);
  } finally {
    await handle.close();
  }
}

/** The regular files of a tar, streamed; a corrupt or truncated tar throws where it breaks. */
async function* readTar(file: string): AsyncGenerator<TarFile> {
  const input = createReadStream(file);
  const extract = tar.extract();
  input.on('error', (e) => extract.destroy(e));
  input.pipe(extract);
  try {
    for await (const entry of extract) {
      const data = await readEntry(entry);
      const type = entry.header.type ?? 'file';
      if (type === 'file' || type === 'contiguous-file') yield { name: entry.header.name, data };
    }
    if (!(await hasEndMarker(file))) throw new Error('no end-of-archive marker (file cut short?)');
  } finally {
    input.destroy();
    extract.destroy();
  }
}

/** What reading shard pairs tallies besides problems. */
export interface ReadTally {
  /** tar entries read, both sets */
  seen: number;
  /** entries that are neither a sample's image nor its annotation (other extensions, names without a key) */
  ignored: number;
}

function tarFailure(shard: string, entries: number, e: unknown): ShardProblem {
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  return { shard, key: '', reason: 'badTar', problem: `corrupt or truncated tar after ${entries} entries (${message}); rest of shard skipped` };
}

/** A whole annotation shard, key -> JSON bytes (annotations are small; images are not held). */
async function readAnnotationShard(shard: string, onProblem: (p: ShardProblem) => void, tally: ReadTally) {
  const byKey = new Map<string, Buffer>();
  let entries = 0;
  try {
    for await (const f of readTar(shard)) {
      entries++;
      tally.seen++;
      const name = splitName(f.name);
      if (name === null || name.ext !== ANNOTATION_EXT) tally.ignored++;
      else if (byKey.has(name.key)) onProblem({ shard, key: name.key, reason: 'duplicate', problem: 'second annotation with this key' });
      else byKey.set(name.key, f.data);
    }
    return { byKey, complete: true };
  } catch (e) {
    onProblem(tarFailure(shard, entries, e));
    return { byKey, complete: false };
  }
}

/**
 * The samples of one shard pair, in image-shard order. Problems go to `onProblem`. After a tar
 * error on either side, entries that lost their partner to it are not counted again as unpaired.
 */
export async function* readShardPair(
  imageShard: string,
  annotationShard: string,
  onProblem: (p: ShardProblem) => void,
  tally: ReadTally,
): AsyncGenerator<RawSample> {
  const annotations = await readAnnotationShard(annotationShard, onProblem, tally);
  const imageKeys = new Set<string>();
  let entries = 0;
  try {
    for await (const f of readTar(imageShard)) {
      entries++;
      tally.seen++;
      const name = splitName(f.name);
      if (name === null || !IMAGE_EXTS.has(name.ext)) {
        tally.ignored++;
        continue;
      }
      const { key, ext } = name;
      if (imageKeys.has(key)) {
        onProblem({ shard: imageShard, key, reason: 'duplicate', problem: `second image with this key (.${ext})` });
        continue;
      }
      imageKeys.add(key);
      const json = annotations.byKey.get(key);
      if (json === undefined) {
        if (annotations.complete) onProblem({ shard: imageShard, key, reason: 'unpaired', problem: `image .${ext} has no annotation in ${annotationShard}` });
        continue;
      }
      annotations.byKey.delete(key);
      const parsed = parseAnnotation(json);
      if (!parsed.ok) onProblem({ shard: annotationShard, key, reason: parsed.reason, problem: parsed.problem });
      else yield { key, shard: imageShard, image: f.data, imageExt: ext, annotation: parsed.annotation };
    }
  } catch (e) {
    onProblem(tarFailure(imageShard, entries, e));
    return;
  }
  for (const key of annotations.byKey.keys()) {
    onProblem({ shard: annotationShard, key, reason: 'unpaired', problem: `annotation has no image in ${imageShard}` });
  }
}

// ---------------------------------------------------------------------------------------------
// The dataset

export interface ShardDatasetOptions {
  /** Image shard spec(s), see expandShardSpec. */
  readonly images: string | readonly string[];
  /** Annotation shard spec(s); as many shards as images. */
  readonly annotations: string | readonly string[];
  readonly seed: number;
  /** Samples held for shuffling (webdataset's `shuffle(n)`); 0 or 1 keeps shard order. */
  readonly shuffleBuffer: number;
  /** Loop over epochs forever, shard order reshuffled each epoch; otherwise one pass. */
  readonly resample: boolean;
  /** Shuffle the shard order each epoch (default true). */
  readonly shuffleShards?: boolean;
  /** Told one line per skipped entry. */
  readonly log?: (line: string) => void;
}

export interface ShardCounts extends ReadTally {
  /** epochs started */
  epochs: number;
  /** shard pairs opened */
  shards: number;
  /** good samples read (before the shuffle buffer and resume skipping) */
  read: number;
  /** samples passed over by `samples({ skip })` */
  resumed: number;
  yielded: number;
  skipped: Record<SkipReason, number>;
}

function emptyCounts(): ShardCounts {
  const skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  return { epochs: 0, shards: 0, seen: 0, ignored: 0, read: 0, resumed: 0, yielded: 0, skipped };
}

/** Counts by reason as "unpaired 2, badJson 1" (non-zero ones only), or "none". */
export function formatReasons(counts: Readonly<Record<string, number>>): string {
  const parts = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/**
 * webdataset's shuffle buffer: fill to `size`, then each new sample swaps out a random held one;
 * at the end the rest come out in random order.
 */
async function* shuffleBuffer<T>(source: AsyncIterable<T>, size: number, rng: Rng): AsyncGenerator<T> {
  if (size <= 1) {
    yield* source;
    return;
  }
  const held: T[] = [];
  const takeRandom = (): T => {
    const i = rng.int(0, held.length - 1);
    const item = held[i]!;
    held[i] = held[held.length - 1]!;
    held.pop();
    return item;
  };
  for await (const item of source) {
    held.push(item);
    if (held.length >= size) yield takeRandom();
  }
  while (held.length > 0) yield takeRandom();
}

/**
 * The pre-training stream: shard pairs (order shuffled per epoch), samples through a shuffle
 * buffer, deterministic for a seed.
 */
export class ShardDataset {
  readonly imageShards: readonly string[];
  readonly annotationShards: readonly string[];
  private current: ShardCounts = emptyCounts();

  /** Expands both specs and checks they pair up (UserError otherwise); reads no tar yet. */
  constructor(private readonly options: ShardDatasetOptions) {
    this.imageShards = expandShardSpec(options.images);
    this.annotationShards = expandShardSpec(options.annotations);
    if (this.imageShards.length !== this.annotationShards.length) {
      throw new UserError(
        `${this.imageShards.length} image shards (${String(options.images)}) but ${this.annotationShards.length} annotation shards (${String(options.annotations)}); shard i of each must pair`,
      );
    }
    if (!Number.isInteger(options.shuffleBuffer) || options.shuffleBuffer < 0) {
      throw new UserError(`shuffle buffer must be a whole number >= 0, got ${options.shuffleBuffer}`);
    }
  }

  /** Counts of the latest `samples()` stream (a copy). */
  get counts(): ShardCounts {
    return structuredClone(this.current);
  }

  summary(): string {
    const c = this.current;
    return (
      `shards: ${c.epochs} epoch(s), ${c.shards} shard pairs, ${c.seen} tar entries, ${c.read} samples read, ` +
      `${c.yielded} yielded${c.resumed > 0 ? `, ${c.resumed} passed over on resume` : ''}, ` +
      `skipped: ${formatReasons(c.skipped)}${c.ignored > 0 ? `, ${c.ignored} other files ignored` : ''}`
    );
  }

  /**
   * The samples. `skip: n` replays the stream without yielding its first n samples (no image is
   * decoded here), so a resumed run continues exactly where an uninterrupted one would be.
   * Restarts the counts.
   */
  async *samples(options: { skip?: number } = {}): AsyncGenerator<RawSample> {
    const skip = options.skip ?? 0;
    if (!Number.isInteger(skip) || skip < 0) throw new RangeError(`skip must be a whole number >= 0, got ${skip}`);
    this.current = emptyCounts();
    const root = new Rng(this.options.seed);
    const orderRng = root.fork();
    const bufferRng = root.fork();
    for await (const sample of shuffleBuffer(this.epochs(orderRng), this.options.shuffleBuffer, bufferRng)) {
      if (this.current.resumed < skip) {
        this.current.resumed++;
        continue;
      }
      this.current.yielded++;
      yield sample;
    }
  }

  private onProblem = (p: ShardProblem): void => {
    this.current.skipped[p.reason]++;
    this.options.log?.(`skip ${p.shard}${p.key ? `: ${p.key}` : ''}: ${p.reason}: ${p.problem}`);
  };

  /** Every shard pair once per epoch; forever when resampling (refusing to spin on data with no good sample). */
  private async *epochs(orderRng: Rng): AsyncGenerator<RawSample> {
    const order = this.imageShards.map((_, i) => i);
    do {
      this.current.epochs++;
      if (this.options.shuffleShards ?? true) orderRng.shuffle(order);
      const before = this.current.read;
      for (const i of order) {
        this.current.shards++;
        for await (const sample of readShardPair(this.imageShards[i]!, this.annotationShards[i]!, this.onProblem, this.current)) {
          this.current.read++;
          yield sample;
        }
      }
      if (this.options.resample && this.current.read === before) {
        throw new UserError(`shards ${String(this.options.images)}: a whole epoch gave no usable sample (skipped: ${formatReasons(this.current.skipped)})`);
      }
    } while (this.options.resample);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

/** Problems validation finds besides the reader's. */
export type ValidationReason = SkipReason | 'badImage' | 'boxOutside' | 'emptyCaptions' | 'orientation';
const VALIDATION_REASONS: readonly ValidationReason[] = [...SKIP_REASONS, 'badImage', 'boxOutside', 'emptyCaptions', 'orientation'];

export interface ValidationProblem {
  readonly shard: string;
  readonly key: string;
  readonly reason: ValidationReason;
  readonly problem: string;
}

export interface ValidationReport {
  readonly problems: ValidationProblem[];
  readonly counts: {
    readonly shardPairs: number;
    /** tar entries read, both sets */
    readonly seen: number;
    /** paired samples whose image and boxes were checked */
    readonly samples: number;
    /** of those, with no problem */
    readonly ok: number;
    readonly ignored: number;
    readonly byReason: Record<ValidationReason, number>;
  };
}

/** Box problems against the decoded size; a box may touch the border (x1 = width). */
function boxProblems(boxes: readonly Box[], width: number, height: number): string[] {
  const out: string[] = [];
  boxes.forEach(([x0, y0, x1, y1], i) => {
    if (x0 < 0 || y0 < 0 || x1 > width || y1 > height) {
      out.push(`box ${i} [${x0}, ${y0}, ${x1}, ${y1}] lies outside the ${width}x${height} image`);
    }
  });
  return out;
}

/** Decode one sample's image and check its boxes; problems for it. */
async function checkSample(sample: RawSample, maxPixels: number | undefined): Promise<ValidationProblem[]> {
  const name = `${sample.shard}: ${sample.key}.${sample.imageExt}`;
  const problem = (reason: ValidationReason, text: string): ValidationProblem => ({ shard: sample.shard, key: sample.key, reason, problem: text });
  const found: ValidationProblem[] = [];
  if (sample.annotation.emptyLists) {
    // the reference's loader merges the chosen local captions and divides by their number
    found.push(problem('emptyCaptions', 'text and box are empty lists, which the reference\'s loader crashes on when it picks a local caption; leave both keys out (global_text only) or the image out'));
  }
  let size: { width: number; height: number };
  try {
    size = await decodeImage(sample.image, maxPixels === undefined ? { name } : { name, maxPixels });
  } catch (e) {
    return [...found, problem('badImage', (e instanceof Error ? e.message : String(e)).replace(`${name}: `, ''))];
  }
  const orientation = await exifOrientation(sample.image);
  if (orientation !== 1) {
    found.push(problem('orientation', `EXIF orientation ${orientation}: the reference's reader (PIL, orientation not applied) sees other pixels under the boxes than this one; store the pixels upright without the tag`));
  }
  return [...found, ...boxProblems(sample.annotation.box, size.width, size.height).map((p) => problem('boxOutside', p))];
}

/**
 * Check every entry of the shard pairs in order: pairing, JSON, annotation fields, tar
 * integrity, that each image decodes and that its boxes lie within it. `onProblem` hears each
 * problem as it is found (for printing while a long check runs).
 */
export async function validateShards(
  images: string | readonly string[],
  annotations: string | readonly string[],
  options: { maxPixels?: number; onProblem?: (p: ValidationProblem) => void } = {},
): Promise<ValidationReport> {
  const dataset = new ShardDataset({ images, annotations, seed: 0, shuffleBuffer: 0, resample: false, shuffleShards: false });
  const problems: ValidationProblem[] = [];
  const byReason = Object.fromEntries(VALIDATION_REASONS.map((r) => [r, 0])) as Record<ValidationReason, number>;
  const add = (p: ValidationProblem): void => {
    problems.push(p);
    byReason[p.reason]++;
    options.onProblem?.(p);
  };
  const tally: ReadTally = { seen: 0, ignored: 0 };
  let samples = 0;
  let ok = 0;
  for (let i = 0; i < dataset.imageShards.length; i++) {
    for await (const sample of readShardPair(dataset.imageShards[i]!, dataset.annotationShards[i]!, add, tally)) {
      samples++;
      const found = await checkSample(sample, options.maxPixels);
      found.forEach(add);
      if (found.length === 0) ok++;
    }
  }
  return { problems, counts: { shardPairs: dataset.imageShards.length, seen: tally.seen, samples, ok, ignored: tally.ignored, byReason } };
}
