/**
 * Synthetic data sets: scenes (scene/render.ts) written as key-matched webdataset tar sets of
 * images and annotations in the reference format, each image's scene drawn from its own Rng so
 * a data set is a pure function of its seed.
 */
import sharp from 'sharp';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Rng } from '../rng.js';
import type { Box } from './draw.js';
import { renderScene } from './scene/render.js';
import type { Scene } from './scene/types.js';
import { ShardWriter } from './shardWriter.js';

/** Bumped whenever the same seed would draw different scenes; recorded in manifests. */
export const SYNTH_VERSION = 1;

export type ImageFormat = 'png' | 'jpg';

/**
 * Encodes an RGB buffer with fixed options, so the bytes depend on the pixels only. PNG is
 * lossless (tiny glyphs stay crisp); JPEG keeps full-resolution chroma (4:4:4) for the same
 * reason, at quality 92.
 */
export async function encodeImage(rgb: Uint8Array, width: number, height: number, format: ImageFormat): Promise<Buffer> {
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  return format === 'png'
    ? image.png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer()
    : image.jpeg({ quality: 92, chromaSubsampling: '4:4:4', progressive: false }).toBuffer();
}

/** The annotation record of one image in the reference format (ps3-spec §3). */
export interface SynthAnnotation {
  readonly text: string[];
  readonly box: Box[];
  readonly global_text: string;
  readonly type: 'synth';
}

export function sceneAnnotation(scene: Scene): SynthAnnotation {
  return { text: scene.regions.map((r) => r.caption), box: scene.regions.map((r) => [...r.box]), global_text: scene.globalCaption, type: 'synth' };
}

/** Sample keys: zero-padded to 9 digits, so they sort as they count. */
export function sampleKey(index: number): string {
  return String(index).padStart(9, '0');
}

/** The Rng of image `index`: independent of every other image's, whatever the shard size. */
export function sceneRng(seed: number, index: number): Rng {
  return new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0).fork();
}

export interface SynthDatasetOptions {
  readonly out: string;
  readonly count: number;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly perShard: number;
  readonly format: ImageFormat;
  /** local captions an image, [min, max] (default scene/render.ts DEFAULT_CAPTIONS) */
  readonly captions?: readonly [number, number];
}

export interface SynthProgress {
  /** images written so far */
  readonly done: number;
  /** bytes of images and annotations written so far (before tar headers) */
  readonly bytes: number;
}

export interface SynthSummary {
  readonly images: number;
  readonly captions: number;
  /** bytes of both tar sets on disk */
  readonly bytes: number;
  readonly imageShards: readonly string[];
  readonly annotationShards: readonly string[];
  readonly seconds: number;
}

/**
 * Writes `count` scenes as two key-matched webdataset tar sets, `out/images/shard-NNNNNN.tar`
 * (KEY.png or KEY.jpg) and `out/annotations/shard-NNNNNN.tar` (KEY.json). The next scene is
 * rendered while sharp encodes the previous one on its own thread; entries still go in key order.
 */
export async function writeSynthDataset(options: SynthDatasetOptions, onProgress?: (p: SynthProgress) => void): Promise<SynthSummary> {
  const { out, count, width, height, seed, perShard, format } = options;
  const started = performance.now();
  const imageDir = join(out, 'images');
  const annotationDir = join(out, 'annotations');
  await mkdir(imageDir, { recursive: true });
  await mkdir(annotationDir, { recursive: true });
  const images = new ShardWriter(imageDir, perShard);
  const annotations = new ShardWriter(annotationDir, perShard);
  let captions = 0;
  let bytes = 0;
  let pending: { key: string; encoded: Promise<Buffer>; json: Buffer } | null = null;
  const flush = async (): Promise<void> => {
    if (pending === null) return;
    const { key, encoded, json } = pending;
    pending = null;
    const data = await encoded;
    await images.write(key, [{ ext: format, data }]);
    await annotations.write(key, [{ ext: 'json', data: json }]);
    bytes += data.byteLength + json.byteLength;
    onProgress?.({ done: images.samples, bytes });
  };
  for (let index = 0; index < count; index++) {
    const scene = renderScene(sceneRng(seed, index), { width, height }, options.captions);
    const encoded = encodeImage(scene.rgb, width, height, format);
    // keep the rejection handled while this promise waits behind the previous image
    encoded.catch(() => undefined);
    captions += scene.regions.length + 1;
    await flush();
    pending = { key: sampleKey(index), encoded, json: Buffer.from(`${JSON.stringify(sceneAnnotation(scene))}\n`) };
  }
  await flush();
  const imageSet = await images.close();
  const annotationSet = await annotations.close();
  return {
    images: count,
    captions,
    bytes: imageSet.bytes + annotationSet.bytes,
    imageShards: imageSet.shards,
    annotationShards: annotationSet.shards,
    seconds: (performance.now() - started) / 1000,
  };
}
