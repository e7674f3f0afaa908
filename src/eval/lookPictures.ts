/**
 * Where VILA-HD looked for a question, as pictures: per high-res scale, the prompt head's
 * top-down probabilities over the image (heat map) with the patches the looks chose outlined.
 */
import fs from 'node:fs';
import path from 'node:path';
import { toPng } from '../io/image.js';
import type { VilaAnswer } from '../mllm/answer.js';
import { displayImage, heatmapOverlay } from '../io/heatmap.js';

/** `out/PREFIX-scaleN.png` per high-res scale; `pixels` are the normalised [3, S, S] the answer saw. */
export async function writeLookPictures(out: string, prefix: string, pixels: Float32Array, S: number, scales: readonly number[], selection: NonNullable<VilaAnswer['selection']>): Promise<string[]> {
  const side = Math.min(1024, S);
  const base = displayImage(pixels, S, S, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], side, side);
  const files: string[] = [];
  for (const [i, probs] of selection.probs.entries()) {
    const map = selection.maps[i]!;
    const file = path.join(out, `${prefix}-scale${scales[i + 1]}.png`);
    fs.writeFileSync(file, await toPng(heatmapOverlay(base, probs, map.height, map.width, map.data)));
    files.push(file);
  }
  return files;
}
