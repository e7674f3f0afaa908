/**
 * One selection heat map as PNG bytes: the picture `ps3 encode` writes for a high-res scale
 * (probabilities over the image, chosen patches outlined), made in memory for a response.
 */
import { toPng } from '../io/image.js';
import type { EncodeOutput, Pixels } from '../model/encoder.js';
import { displayImage, heatmapOverlay } from '../io/heatmap.js';

const MEAN = [0.5, 0.5, 0.5] as const;
const STD = [0.5, 0.5, 0.5] as const;

/** `scaleIndex` counts the high-res scales from 0; `aspect` is the original width / height. */
export async function heatmapPng(pixels: Pixels, out: EncodeOutput, scaleIndex: number, aspect: number, maxSide = 1024): Promise<Buffer> {
  const side = Math.min(maxSide, Math.max(pixels.height, pixels.width));
  const dw = Math.max(1, Math.round(aspect >= 1 ? side : side * aspect));
  const dh = Math.max(1, Math.round(aspect >= 1 ? side / aspect : side));
  const base = displayImage(pixels.data, pixels.height, pixels.width, MEAN, STD, dh, dw);
  const probs = out.selectionProbs[scaleIndex]!;
  const [, gh, gw] = probs.shape as [number, number, number];
  const values = (await probs.data()).subarray(0, gh * gw);
  const chosen = out.selectionMaps[scaleIndex]!.data.subarray(0, gh * gw);
  return toPng(heatmapOverlay(base, values, gh, gw, chosen));
}
