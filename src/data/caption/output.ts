/**
 * The finished images as the reference's shard pair: `DIR/images/shard-NNNNNN.tar` (`KEY.jpg`,
 * `.png` or `.webp`: the original file's bytes) and `DIR/annotations/shard-NNNNNN.tar`
 * (`KEY.json`), samples in key order, so the same finished images give the same bytes.
 *
 * Shards are written under `DIR/.caption-tmp/` and renamed into place, so a tar in images/ or
 * annotations/ is always whole. A kill between the renames can leave shards of the previous and
 * the new generation side by side; the progress log still holds everything, and the next run
 * writes them all again.
 */
import { readFile, readdir, rename, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ShardWriter } from '../shardWriter.js';
import { sha256, type ImageExt } from './inputs.js';
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
  const images = new ShardWriter(path.join(tmp, 'images'), perShard);
  const annotations = new ShardWriter(path.join(tmp, 'annotations'), perShard);
  const problems: string[] = [];
  const sorted = [...samples].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  try {
    for (const s of sorted) {
      const bytes = await readFile(s.path).catch(() => null);
      if (bytes === null || sha256(bytes) !== s.sha256) {
        problems.push(`${s.path}: ${bytes === null ? 'cannot be read any more' : 'changed since it was captioned'}; left out (run again to caption it afresh)`);
        continue;
      }
      await images.write(s.key, [{ ext: s.ext, data: bytes }]);
      await annotations.write(s.key, [{ ext: 'json', data: Buffer.from(JSON.stringify(s.annotation)) }]);
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
