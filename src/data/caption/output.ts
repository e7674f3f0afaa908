/**
 * The finished images as the reference's shard pair: `DIR/images/shard-NNNNNN.tar` (`KEY.jpg`,
 * `.png` or `.webp`) and `DIR/annotations/shard-NNNNNN.tar` (`KEY.json`), samples in key order,
 * spread evenly over the shards, so the same finished images give the same bytes.
 *
 * Written so the reference's reader takes them right:
 * - an image is stored as its file's bytes, unless it carries an EXIF orientation other than 1:
 *   the reference decodes with PIL, which does not apply the tag, while the boxes are in the
 *   displayed (rotated) frame; such an image is stored as its displayed pixels, re-encoded in
 *   its own format without the tag, so pixels and boxes share one frame for every reader;
 * - an image with no local region gets `global_text` only: empty `text`/`box` lists crash the
 *   reference's loader (it divides by the number of captions merged), and without the keys it
 *   takes the global caption (`--use_global_caption`, as its training scripts set).
 *
 * Shards are written under `DIR/.caption-tmp/` and renamed into place, so a tar in images/ or
 * annotations/ is always whole. A kill between the renames can leave shards of the previous and
 * the new generation side by side; the progress log still holds everything, and the next run
 * writes them all again.
 */
import { readFile, readdir, rename, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { exifOrientation } from '../../io/image.js';
import { ShardWriter } from '../shardWriter.js';
import { hashFile, sha256, type ImageExt } from './inputs.js';
import type { AnnotationJson } from './progressLog.js';

export interface OutputSample {
  readonly key: string;
  /** the image file, read again now */
  readonly path: string;
  /** what its bytes hashed to when captioned */
  readonly sha256: string;
  readonly ext: ImageExt;
  readonly annotation: AnnotationJson;
}

export interface OutputSummary {
  readonly samples: number;
  /** shard pairs */
  readonly shards: number;
  /** one line per image left out (file gone or changed since it was captioned) */
  readonly problems: string[];
}

const SHARD_NAME = /^shard-\d{6}\.tar$/;
const SUBSETS = ['images', 'annotations'] as const;
const TMP = '.caption-tmp';

/** Shard files already in DIR/images and DIR/annotations (relative to DIR). */
export async function existingShards(out: string): Promise<string[]> {
  const found: string[] = [];
  for (const sub of SUBSETS) {
    const names = await readdir(path.join(out, sub)).catch(() => [] as string[]);
    found.push(...names.filter((n) => SHARD_NAME.test(n)).sort().map((n) => `${sub}/${n}`));
  }
  return found;
}

/**
 * (Re)writes the shard pair set of `out` from `samples`. With no sample it leaves the folder as it
 * is rather than deleting earlier shards.
 */
export async function writeOutputShards(out: string, samples: readonly OutputSample[], perShard: number): Promise<OutputSummary> {
  const tmp = path.join(out, TMP);
  await rm(tmp, { recursive: true, force: true });
  await Promise.all(SUBSETS.map((sub) => mkdir(path.join(tmp, sub), { recursive: true })));
  const problems: string[] = [];
  const sorted = [...samples].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // which files are still as captioned, first: the even spread needs the count
  const kept: OutputSample[] = [];
  for (const s of sorted) {
    const hash = await hashFile(s.path);
    if (hash === s.sha256) kept.push(s);
    else problems.push(leftOut(s, hash === null));
  }
  const images = new ShardWriter(path.join(tmp, 'images'), perShard, { total: kept.length });
  const annotations = new ShardWriter(path.join(tmp, 'annotations'), perShard, { total: kept.length });
  try {
    for (const s of kept) {
      const bytes = await readFile(s.path).catch(() => null);
      if (bytes === null || sha256(bytes) !== s.sha256) throw new Error(`${s.path} changed while the shards were being written; run again`);
      await images.write(s.key, [{ ext: s.ext, data: await upright(bytes, s.ext) }]);
      await annotations.write(s.key, [{ ext: 'json', data: Buffer.from(JSON.stringify(annotationFor(s.annotation))) }]);
    }
  } finally {
    await Promise.all([images.close(), annotations.close()]);
  }
  const written = images.samples;
  if (written > 0) {
    for (const sub of SUBSETS) {
      const dir = path.join(out, sub);
      await mkdir(dir, { recursive: true });
      const fresh = (await readdir(path.join(tmp, sub))).filter((n) => SHARD_NAME.test(n));
      for (const name of fresh) await rename(path.join(tmp, sub, name), path.join(dir, name));
      // shards of an earlier, longer generation
      const stale = (await readdir(dir)).filter((n) => SHARD_NAME.test(n) && !fresh.includes(n));
      for (const name of stale) await rm(path.join(dir, name));
    }
  }
  await rm(tmp, { recursive: true, force: true });
  return { samples: written, shards: Math.ceil(written / perShard), problems };
}

function leftOut(s: OutputSample, unreadable: boolean): string {
  return `${s.path}: ${unreadable ? 'cannot be read any more' : 'changed since it was captioned'}; left out (run again to caption it afresh)`;
}

/** What goes in `KEY.json`: no empty caption lists (see the module comment). */
function annotationFor(a: AnnotationJson): Record<string, unknown> {
  return a.text.length === 0 ? { global_text: a.global_text, type: a.type } : { ...a };
}

/**
 * The file's bytes, or, with an EXIF orientation other than 1, its displayed pixels re-encoded
 * in the same format without the tag (JPEG at quality 95 without chroma subsampling, PNG and
 * WebP losslessly).
 */
async function upright(bytes: Buffer, ext: ImageExt): Promise<Buffer> {
  if ((await exifOrientation(bytes)) === 1) return bytes;
  // embedded colour profiles are ignored, as the decoder the boxes were made on ignores them
  const turned = sharp(bytes, { ignoreIcc: true }).autoOrient();
  if (ext === 'jpg') return turned.jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
  if (ext === 'png') return turned.png().toBuffer();
  return turned.webp({ lossless: true }).toBuffer();
}
