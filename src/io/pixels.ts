/**
 * Pixels after decoding, with no decoder (so the browser can use them): PIL's bicubic squash and
 * the processor's normalisation.
 */
import type { BufferPool } from '../tensor/bufferPool.js';
import { pilCropResizeBicubicRgb, pilResizeBicubicRgb } from '../tensor/pilResize.js';

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

/**
 * A window of the image resized to width x height: the same as cropping, then `resizeImage`,
 * without the crop's copy; with `pool`, its arrays come from there.
 */
export function cropResizeImage(
  image: RgbImage,
  window: { readonly left: number; readonly top: number; readonly width: number; readonly height: number },
  width: number,
  height: number,
  pool?: BufferPool,
): RgbImage {
  return { data: pilCropResizeBicubicRgb(image.data, image.width, image.height, window, width, height, pool), width, height };
}

/** The processor's squash: any image to size x size, aspect ratio ignored. */
export function squash(image: RgbImage, size: number): RgbImage {
  return resizeImage(image, size, size);
}

/**
 * Scale to [0, 1] and normalise per channel: [H, W, 3] uint8 -> [3, H, W] float32. Rounded the way
 * Hugging Face's processor rounds (v * (1/255) in float64 cast to float32, then (x - mean) / std in
 * float32), via a 256-entry table per channel. Written into `out` when given (3 * H * W values).
 */
export function normalise(image: RgbImage, mean: readonly number[], std: readonly number[], out?: Float32Array): Float32Array {
  if (mean.length !== 3 || std.length !== 3) {
    throw new RangeError(`normalise needs 3 means and 3 stds, got ${mean.length} and ${std.length}`);
  }
  const plane = image.width * image.height;
  if (out && out.length !== 3 * plane) throw new RangeError(`normalise: out holds ${out.length} values, expected ${3 * plane}`);
  out ??= new Float32Array(3 * plane);
  const tables = [0, 1, 2].map((c) => {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v * (1 / 255)) - m) / s;
    return table;
  });
  const [t0, t1, t2] = tables as [Float32Array, Float32Array, Float32Array];
  // one pass over the interleaved bytes, writing the three planes
  const src = image.data;
  for (let p = 0, q = 0; p < plane; p++, q += 3) {
    out[p] = t0[src[q]!]!;
    out[plane + p] = t1[src[q + 1]!]!;
    out[2 * plane + p] = t2[src[q + 2]!]!;
  }
  return out;
}
