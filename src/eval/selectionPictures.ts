/**
 * Write the selection heat maps of an encode, one PNG per high-res scale, over the input image.
 */
import fs from 'node:fs';
import path from 'node:path';
import { toPng } from '../io/image.js';
import type { EncodeOutput, Pixels } from '../model/encoder.js';
import { displayImage, heatmapOverlay } from '../io/heatmap.js';

export interface PictureOptions {
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** longest side of the pictures in pixels */
  readonly maxSide?: number;
  /** file name prefix, e.g. "bottomup" */
  readonly prefix: string;
  /** draw at this aspect ratio (width / height), e.g. the original image's before squashing */
  readonly aspect?: number;
}

/** Writes `${prefix}-scale${i}.png` per high-res scale for image 0 of the batch; returns the paths. */
export async function writeSelectionPictures(outDir: string, pixels: Pixels, out: EncodeOutput, scales: readonly number[], probsSource: 'selection' | 'bottomup' | 'topdown', options: PictureOptions): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const maxSide = options.maxSide ?? 1024;
  const aspect = options.aspect ?? pixels.width / pixels.height;
  const side = Math.min(maxSide, Math.max(pixels.height, pixels.width));
  const dw = Math.max(1, Math.round(aspect >= 1 ? side : side * aspect));
  const dh = Math.max(1, Math.round(aspect >= 1 ? side / aspect : side));
  const base = displayImage(pixels.data, pixels.height, pixels.width, options.mean, options.std, dh, dw);
  const probs = probsSource === 'bottomup' ? out.bottomupSelectionProbs : probsSource === 'topdown' ? out.topdownSelectionProbs ?? out.selectionProbs : out.selectionProbs;
  const files: string[] = [];
  for (const [i, p] of probs.entries()) {
    const [, gh, gw] = p.shape as [number, number, number];
    const values = (await p.data()).subarray(0, gh * gw);
    const map = out.selectionMaps[i]!;
    const picture = heatmapOverlay(base, values, gh, gw, map.data.subarray(0, gh * gw));
    const file = path.join(outDir, `${options.prefix}-scale${scales[i + 1]}.png`);
    fs.writeFileSync(file, await toPng(picture));
    files.push(file);
  }
  return files;
}
