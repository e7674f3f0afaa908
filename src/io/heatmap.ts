/**
 * Selection heat maps as pictures: a scale's selection probabilities over the image (viridis,
 * blended half and half), with the patches a look chose outlined — the picture the reference's
 * visualisation draws, one per high-res scale.
 */
import type { RgbImage } from './image.js';
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
 * Blend `probs` [gh, gw] (in [0, 1]) over `image` and mark the patches where `chosen` is 1: an
 * outline where a cell spans at least 6 display pixels, a light tint where cells are smaller.
 * Each grid cell covers the image's matching rectangle, whatever the display size.
 */
export function heatmapOverlay(image: RgbImage, probs: ArrayLike<number>, gh: number, gw: number, chosen?: ArrayLike<number>): RgbImage {
  const { width, height } = image;
  const data = new Uint8Array(image.data);
  const outline = height / gh >= 6 && width / gw >= 6;
  const rowCell = (y: number): number => Math.min(Math.floor((y * gh) / height), gh - 1);
  const colCell = (x: number): number => Math.min(Math.floor((x * gw) / width), gw - 1);
  for (let y = 0; y < height; y++) {
    const r = rowCell(y);
    const rowEdge = y === 0 || rowCell(y - 1) !== r || y === height - 1 || rowCell(y + 1) !== r;
    for (let x = 0; x < width; x++) {
      const c = colCell(x);
      const cell = r * gw + c;
      const colour = viridis(probs[cell]!);
      const o = (y * width + x) * 3;
      const picked = chosen !== undefined && chosen[cell]! > 0;
      const edge = rowEdge || x === 0 || colCell(x - 1) !== c || x === width - 1 || colCell(x + 1) !== c;
      for (let k = 0; k < 3; k++) {
        const blended = 0.5 * data[o + k]! + 0.5 * colour[k]!;
        data[o + k] = Math.round(!picked ? blended : outline ? (edge ? 255 : blended) : 0.5 * blended + 127.5);
      }
    }
  }
  return { data, width, height };
}
