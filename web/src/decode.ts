/**
 * Image decoding in the page: the browser's decoder (createImageBitmap, EXIF orientation applied
 * as `src/io/image.ts` applies it, embedded colour profiles ignored as it ignores them) to 8-bit
 * RGB with alpha dropped, not composited. Squashing and normalising are then the library's own
 * functions, so the page and Node give the same pixel values for the same decoded image.
 */
import type { RgbImage } from '../../src/io/pixels.js';

export interface DecodedImage {
  readonly rgb: RgbImage;
  /** the decoded bitmap, kept for drawing the display image */
  readonly bitmap: ImageBitmap;
}

/** Decode an encoded image (PNG, JPEG, WebP, GIF, ...) in its displayed orientation. */
export async function decodeImageBlob(blob: Blob, name: string): Promise<DecodedImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new Error(`${name}: the browser cannot decode this image (${(e as Error).message || String(e)})`);
  }
  return { rgb: bitmapToRgb(bitmap, bitmap.width, bitmap.height), bitmap };
}

function context2d(width: number, height: number): OffscreenCanvasRenderingContext2D {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true, alpha: true });
  if (!ctx) throw new Error('no 2-d canvas context');
  return ctx;
}

/** The bitmap drawn at width x height (the browser's own scaling when sizes differ) as interleaved RGB. */
export function bitmapToRgb(bitmap: ImageBitmap, width: number, height: number): RgbImage {
  const ctx = context2d(width, height);
  if (width !== bitmap.width || height !== bitmap.height) ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let p = 0, q = 0; p < n; p++, q += 4) {
    data[p * 3] = rgba[q]!;
    data[p * 3 + 1] = rgba[q + 1]!;
    data[p * 3 + 2] = rgba[q + 2]!;
  }
  return { data, width, height };
}

/** Interleaved RGB as the RGBA `ImageData` a canvas takes. */
export function rgbToImageData(image: RgbImage): ImageData {
  const { width, height, data } = image;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba[p * 4] = data[p * 3]!;
    rgba[p * 4 + 1] = data[p * 3 + 1]!;
    rgba[p * 4 + 2] = data[p * 3 + 2]!;
    rgba[p * 4 + 3] = 255;
  }
  return new ImageData(rgba, width, height);
}
