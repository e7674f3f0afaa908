/**
 * Pixels after decoding, with no decoder (so the browser can use them): PIL's bicubic squash and
 * the processor's normalisation.
 */
import { pilResizeBicubicRgb, pilResizeBicubicRgbToPlanes } from '../tensor/pilResize.js';

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
 * The processor's byte -> float map of each channel as a 256-entry table: Hugging Face's rounding
 * (v * (1/255) in float64 cast to float32, then (x - mean) / std in float32).
 */
function normaliseTables(mean: readonly number[], std: readonly number[]): [Float32Array, Float32Array, Float32Array] {
  if (mean.length !== 3 || std.length !== 3) {
    throw new RangeError(`normalise needs 3 means and 3 stds, got ${mean.length} and ${std.length}`);
  }
  const table = (c: number): Float32Array => {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = Math.fround(Math.fround(v * (1 / 255)) - m) / s;
    return t;
  };
  return [table(0), table(1), table(2)];
}

/**
 * Scale to [0, 1] and normalise per channel: [H, W, 3] uint8 -> [3, H, W] float32, rounded as
 * `normaliseTables` says. Written into `out` when given (3 * H * W values).
 */
export function normalise(image: RgbImage, mean: readonly number[], std: readonly number[], out?: Float32Array): Float32Array {
  return squashNormalise(image, image.width, image.height, mean, std, out);
}

/**
 * `normalise(resizeImage(image, width, height), mean, std)` in one pass: the resized bytes go
 * straight through the channel tables into the planes (the same values, a fraction of the memory
 * traffic: a 4K squash's bytes are never stored). [3, height, width]; into `out` when given, and
 * then only its rows `rows[0]`..`rows[1]` when given (threads sharing one output).
 */
export function squashNormalise(
  image: RgbImage,
  width: number,
  height: number,
  mean: readonly number[],
  std: readonly number[],
  out?: Float32Array,
  rows?: readonly [number, number],
): Float32Array {
  const tables = normaliseTables(mean, std);
  if (out && out.length !== 3 * width * height) throw new RangeError(`normalise: out holds ${out.length} values, expected ${3 * width * height}`);
  return pilResizeBicubicRgbToPlanes(image.data, image.width, image.height, width, height, tables, out ?? new Float32Array(3 * width * height), rows);
}

/**
 * A window of the image resized to width x height and normalised, in one pass (the same values
 * as cutting the window out, then `squashNormalise`), as
 * `squashNormalise` does for the whole image: a training sample's crop, [3, height, width]; into
 * `out` when given.
 */
export function cropResizeNormalise(
  image: RgbImage,
  window: { readonly left: number; readonly top: number; readonly width: number; readonly height: number },
  width: number,
  height: number,
  mean: readonly number[],
  std: readonly number[],
  out?: Float32Array,
): Float32Array {
  const tables = normaliseTables(mean, std);
  if (out && out.length !== 3 * width * height) throw new RangeError(`normalise: out holds ${out.length} values, expected ${3 * width * height}`);
  return pilResizeBicubicRgbToPlanes(image.data, image.width, image.height, width, height, tables, out ?? new Float32Array(3 * width * height), [0, height], window);
}
