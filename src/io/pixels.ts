/**
 * Pixels after decoding, with no decoder (so the browser can use them): PIL's bicubic squash and
 * the processor's normalisation.
 */
import { pilResizeBicubicRgb } from '../tensor/pilResize.js';

/** 8-bit RGB, interleaved: `data` is [height, width, 3]. */
export interface RgbImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** Resize to width x height ignoring aspect ratio, exactly as PIL's `Image.resize((w, h), BICUBIC)`. */
export function resizeImage(image: RgbImage, width: number, height: number): RgbImage {
  return { data: pilResizeBicubicRgb(image.data, image.width, image.height, width, height), width, height };
}

/** The processor's squash: any image to size x size, aspect ratio ignored. */
export function squash(image: RgbImage, size: number): RgbImage {
  return resizeImage(image, size, size);
}

/**
 * Scale to [0, 1] and normalise per channel: [H, W, 3] uint8 -> [3, H, W] float32. Rounded the way
 * Hugging Face's processor rounds (v * (1/255) in float64 cast to float32, then (x - mean) / std in
 * float32), via a 256-entry table per channel.
 */
export function normalise(image: RgbImage, mean: readonly number[], std: readonly number[]): Float32Array {
  if (mean.length !== 3 || std.length !== 3) {
    throw new RangeError(`normalise needs 3 means and 3 stds, got ${mean.length} and ${std.length}`);
  }
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v * (1 / 255)) - m) / s;
    const src = image.data;
    for (let p = 0; p < plane; p++) out[c * plane + p] = table[src[p * 3 + c]!]!;
  }
  return out;
}
