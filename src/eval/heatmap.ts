/**
 * Selection heat maps as pictures: a scale's selection probabilities over the image (viridis,
 * blended half and half), with the patches a look chose outlined — the picture the reference's
 * visualisation draws, one per high-res scale.
 */
import type { RgbImage } from '../io/image.js';
import { resize } from '../tensor/resample.js';

/** Viridis at 9 control points; linear between them is indistinguishable at heat-map scale. */
const VIRIDIS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];

export function viridis(t: number): [number, number, number] {
  const x = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + (b[c]! - a[c]!) * f)) as [number, number, number];
}

/**
 * The normalised image [3, H, W] (one of a batch) back to 8-bit RGB at `height` x `width`
 * (area-averaged), for drawing on.
 */
export function displayImage(pixels: Float32Array, height: number, width: number, mean: readonly number[], std: readonly number[], outH: number, outW: number): RgbImage {
  const small = resize(pixels.subarray(0, 3 * height * width), 3, height, width, outH, outW, 'area');
  const data = new Uint8Array(outH * outW * 3);
  const plane = outH * outW;
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) data[p * 3 + c] = Math.round(Math.min(Math.max((small[c * plane + p]! * std[c]! + mean[c]!) * 255, 0), 255));
  }
  return { data, width: outW, height: outH };
}

/**
 * Blend `probs` [gh, gw] (in [0, 1]) over `image`, and outline the patches where `chosen` is 1.
 * Each grid cell covers the image's matching rectangle.
 */
export function heatmapOverlay(image: RgbImage, probs: ArrayLike<number>, gh: number, gw: number, chosen?: ArrayLike<number>): RgbImage {
  const { width, height } = image;
  const data = new Uint8Array(image.data);
  const cellOf = (y: number, x: number): number => Math.min(Math.floor((y * gh) / height), gh - 1) * gw + Math.min(Math.floor((x * gw) / width), gw - 1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const cell = cellOf(y, x);
      const colour = viridis(probs[cell]!);
      const o = (y * width + x) * 3;
      const edge = chosen?.[cell] && (cellOf(y - 1 < 0 ? 0 : y - 1, x) !== cell || cellOf(y, x - 1 < 0 ? 0 : x - 1) !== cell || y === 0 || x === 0);
      for (let c = 0; c < 3; c++) data[o + c] = edge ? 255 : Math.round(0.5 * data[o + c]! + 0.5 * colour[c]!);
    }
  }
  return { data, width, height };
}
