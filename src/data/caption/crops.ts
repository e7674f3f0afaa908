/**
 * What the captioner is shown: a region of the full-resolution image (or the whole image),
 * downscaled with PIL's bicubic so its long side fits, encoded as a base64 data URL.
 */
import sharp from 'sharp';
import { resizeImage, type RgbImage } from '../../io/image.js';
import type { Box } from '../../io/shards.js';

export type CropFormat = 'jpeg' | 'png';

/** Grow a box by `margin` of its width and height on each side, clipped to the image; integer pixels. */
export function expandBox(box: Box, margin: number, width: number, height: number): Box {
  const mx = Math.round((box[2] - box[0]) * margin);
  const my = Math.round((box[3] - box[1]) * margin);
  return [Math.max(0, box[0] - mx), Math.max(0, box[1] - my), Math.min(width, box[2] + mx), Math.min(height, box[3] + my)];
}

/** The pixels of `box` (integer, inside the image) as their own image. */
export function cropImage(image: RgbImage, box: Box): RgbImage {
  const [x0, y0, x1, y1] = box;
  const width = x1 - x0;
  const height = y1 - y0;
  if (!(Number.isInteger(x0) && Number.isInteger(y0) && width >= 1 && height >= 1 && x0 >= 0 && y0 >= 0 && x1 <= image.width && y1 <= image.height)) {
    throw new RangeError(`cropImage: box [${box.join(', ')}] is not a non-empty integer box inside the ${image.width}x${image.height} image`);
  }
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((y0 + y) * image.width + x0) * 3;
    data.set(image.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { data, width, height };
}

/** The size an image of width x height is sent at: long side at most `maxSide`, never enlarged. */
export function fittedSize(width: number, height: number, maxSide: number): { width: number; height: number } {
  const long = Math.max(width, height);
  if (long <= maxSide) return { width, height };
  const s = maxSide / long;
  return { width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) };
}

/** `image` downscaled to fit `maxSide` and encoded as a `data:` URL. */
export async function imageDataUrl(image: RgbImage, maxSide: number, format: CropFormat): Promise<string> {
  const size = fittedSize(image.width, image.height, maxSide);
  const fitted = size.width === image.width && size.height === image.height ? image : resizeImage(image, size.width, size.height);
  const raw = sharp(fitted.data, { raw: { width: fitted.width, height: fitted.height, channels: 3 } });
  const bytes = format === 'png' ? await raw.png().toBuffer() : await raw.jpeg({ quality: 90 }).toBuffer();
  return `data:image/${format};base64,${bytes.toString('base64')}`;
}
