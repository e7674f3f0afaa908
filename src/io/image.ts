/**
 * The PS3 image processor: decode a file to 8-bit RGB, squash it to S x S with PIL's bicubic,
 * scale to [0, 1] and normalise, giving the [3, S, S] float32 pixels the encoder takes.
 *
 * The reference does `Image.open(f).convert('RGB')`, `resize((S, S), BICUBIC)` and the Hugging
 * Face rescale/normalise. Decoding here goes through sharp (libvips) but is steered to give PIL's
 * pixels: embedded ICC profiles are ignored (PIL ignores them), alpha is dropped without
 * compositing, CMYK uses PIL's naive conversion rather than a colour profile, 16-bit samples keep
 * their high byte. Two deliberate differences: EXIF orientation is applied (PIL's `open` does not),
 * and 16-bit greyscale is scaled to 8 bits (PIL clips it, turning most of the image white).
 * Palette GIFs with a transparent index also differ: libvips turns transparent pixels black where
 * PIL keeps the palette colour. BMP, which libvips as sharp ships it cannot read, goes through bmp-ts.
 */

import { readFile } from 'node:fs/promises';
import { decode as decodeBmpFile } from 'bmp-ts';
import sharp from 'sharp';
import type { Metadata, Sharp } from 'sharp';
import { UserError } from '../errors.js';
import { squashNormalise, type RgbImage } from './pixels.js';
import { SQUASH_THREAD_MIN_PIXELS, squashThread } from './squashThread.js';

export { cropResizeNormalise, normalise, resizeImage, squash, squashNormalise, type RgbImage } from './pixels.js';

export interface DecodeOptions {
  /** Refuse, before decoding, any image whose header claims more than this many pixels. */
  readonly maxPixels?: number;
  /** What error messages call the input (defaults to the path, or "image data" for bytes). */
  readonly name?: string;
}

export interface PixelValuesOptions extends DecodeOptions {
  /** Side of the square the image is squashed to (the top scale S). */
  readonly size: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export interface PixelValues {
  /** Normalised image, [3, height, width] float32. */
  readonly pixels: Float32Array;
  readonly height: number;
  readonly width: number;
  /** Size of the decoded image (after EXIF orientation), before squashing. */
  readonly originalWidth: number;
  readonly originalHeight: number;
}

/** Formats the processor accepts; others (SVG, PDF, HEIF, ...) sharp could load but PIL would not, or only with plug-ins. */
const SUPPORTED_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'tiff', 'gif']);

/** sharp's messages can span lines (libvips appends its log); a UserError is one line. */
function firstLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'unknown error';
}

async function readImageFile(path: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${name}: no such file`);
    if (code === 'EISDIR') throw new UserError(`${name}: is a directory, not an image file`);
    if (code === 'EACCES' || code === 'EPERM') throw new UserError(`${name}: permission denied`);
    throw new UserError(`${name}: cannot read file: ${firstLine(e)}`);
  }
}

/** BMP files start with "BM"; libvips (as sharp ships it) has no BMP loader, so bmp-ts decodes them. */
function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 26 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

function decodeBmp(bytes: Buffer, name: string, maxPixels: number | undefined): RgbImage {
  // BITMAPINFOHEADER: int32 width at 18 and height at 22 (negative for top-down rows)
  const width = bytes.readInt32LE(18);
  const height = Math.abs(bytes.readInt32LE(22));
  if (width < 1 || height < 1) throw new UserError(`${name}: BMP header has no valid size`);
  if (maxPixels !== undefined && width * height > maxPixels) {
    throw new UserError(`${name}: image is ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}`);
  }
  let rgba: Uint8Array;
  try {
    const decoded = decodeBmpFile(bytes, { toRGBA: true });
    if (decoded.width !== width || decoded.height !== height || decoded.data.length < width * height * 4) throw new Error('pixel data shorter than the header says');
    rgba = decoded.data;
  } catch (e) {
    throw new UserError(`${name}: cannot decode BMP image (truncated or corrupt?): ${firstLine(e)}`);
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) rgb.set(rgba.subarray(p * 4, p * 4 + 3), p * 3);
  return { data: rgb, width, height };
}

/**
 * The EXIF orientation tag of an encoded image (1 when it has none). PIL's plain `open`, which the
 * reference's data loader uses, ignores it, so only 1 means the same pixels there and here.
 */
export async function exifOrientation(bytes: Uint8Array): Promise<number> {
  if (isBmp(bytes)) return 1;
  try {
    return (await sharp(bytes).metadata()).orientation ?? 1;
  } catch {
    return 1;
  }
}

/** Read the header only: format, size, colour space, bit depth. */
async function readHeader(bytes: Buffer, name: string): Promise<Metadata & { width: number; height: number; format: string }> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch (e) {
    const detail = firstLine(e);
    if (/unsupported image format/i.test(detail)) throw new UserError(`${name}: not an image (unrecognised file format)`);
    throw new UserError(`${name}: cannot read image header: ${detail}`);
  }
  const { width, height, format } = meta;
  if (format === undefined || !SUPPORTED_FORMATS.has(format)) {
    throw new UserError(`${name}: unsupported image format '${format ?? 'unknown'}' (expected JPEG, PNG, WebP, TIFF, BMP or GIF)`);
  }
  if (width === undefined || height === undefined || width < 1 || height < 1) {
    throw new UserError(`${name}: image header has no valid size`);
  }
  return { ...meta, width, height, format };
}

/**
 * PIL's `cmyk2rgb`: R = 255 - C - K + C·K/255 (each product rounded the way its `MULDIV255`
 * rounds), i.e. no colour profile. [N, 4] -> [N, 3].
 */
function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const n = cmyk.length / 4;
  const rgb = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    const nk = 255 - cmyk[p * 4 + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = cmyk[p * 4 + c]! * nk + 128;
      rgb[p * 3 + c] = nk - ((t + (t >> 8)) >> 8);
    }
  }
  return rgb;
}

/** Run the decode pipeline to raw samples; libvips errors (truncated, corrupt data) become UserErrors. */
async function toRaw(pipeline: Sharp, depth: 'uchar' | 'ushort', name: string, format: string) {
  try {
    return await pipeline.raw({ depth }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UserError(`${name}: cannot decode ${format.toUpperCase()} image (truncated or corrupt?): ${firstLine(e)}`);
  }
}

/**
 * Decode an image file (or its bytes) to 8-bit RGB in its displayed orientation.
 * Throws `UserError` naming the input for anything wrong with it.
 */
export async function decodeImage(source: string | Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  const name = options.name ?? (typeof source === 'string' ? source : 'image data');
  const { maxPixels } = options;
  if (maxPixels !== undefined && !(Number.isInteger(maxPixels) && maxPixels > 0)) {
    throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  }
  const bytes =
    typeof source === 'string'
      ? await readImageFile(source, name)
      : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  if (bytes.length === 0) throw new UserError(`${name}: is empty (0 bytes)`);
  if (isBmp(bytes)) return decodeBmp(bytes, name, maxPixels);

  const meta = await readHeader(bytes, name);
  if (maxPixels !== undefined && meta.width * meta.height > maxPixels) {
    throw new UserError(
      `${name}: image is ${meta.width}x${meta.height} = ${meta.width * meta.height} pixels, more than the limit of ${maxPixels}`,
    );
  }

  // failOn 'truncated' refuses cut-off files, as PIL does, but accepts what libjpeg merely warns about, as PIL does.
  const pipeline = sharp(bytes, { ignoreIcc: true, failOn: 'truncated', limitInputPixels: maxPixels ?? true }).autoOrient();
  if (meta.space === 'cmyk') {
    // Keep the samples CMYK (sharp would otherwise convert through a CMYK profile) and convert as PIL does.
    const wide = meta.depth === 'ushort';
    const { data, info } = await toRaw(
      pipeline.pipelineColourspace('cmyk').toColourspace('cmyk').removeAlpha(),
      wide ? 'ushort' : 'uchar',
      name,
      meta.format,
    );
    // 16-bit samples (native-endian; copied, as the view may be unaligned) keep their high byte, as
    // PIL's "CMYK;16B" unpacker does. [H, W, 4]
    const cmyk = wide
      ? Uint8Array.from(new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)), (v) => v >> 8)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { data: cmykToRgb(cmyk), width: info.width, height: info.height };
  }
  // Greyscale is replicated to three channels, 16-bit shifted down to 8, alpha dropped.
  const { data, info } = await toRaw(pipeline.toColourspace('srgb').removeAlpha(), 'uchar', name, meta.format);
  if (info.channels !== 3) throw new Error(`${name}: decoder returned ${info.channels} channels, expected 3`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/**
 * Decode, squash to size x size and normalise: the model's `pixel_values` for one image, [3, S, S].
 * A large output is made on two threads (squashThread.ts), in shared memory.
 */
export async function loadPixelValues(source: string | Uint8Array, options: PixelValuesOptions): Promise<PixelValues> {
  const { size, mean, std } = options;
  const helper = size * size >= SQUASH_THREAD_MIN_PIXELS ? squashThread() : null;
  if (!helper) {
    const image = await decodeImage(source, options);
    const pixels = squashNormalise(image, size, size, mean, std);
    return { pixels, height: size, width: size, originalWidth: image.width, originalHeight: image.height };
  }
  const name = options.name ?? (typeof source === 'string' ? source : 'image data');
  const bytes = typeof source === 'string' ? await readImageFile(source, name) : source;
  const pixels = new Float32Array(new SharedArrayBuffer(3 * size * size * 4));
  const split = Math.floor(size / 2);
  // both threads decode the bytes (decoding is a small part of the work); the worker writes the bottom rows
  const bottom = helper.run({ bytes, name, ...(options.maxPixels !== undefined ? { maxPixels: options.maxPixels } : {}), size, mean, std, out: pixels.buffer as SharedArrayBuffer, rows: [split, size] });
  // handled now (awaited below): the worker may fail on a bad file before this thread does
  bottom.catch(() => undefined);
  let image: RgbImage;
  try {
    image = await decodeImage(bytes, { ...options, name });
    squashNormalise(image, size, size, mean, std, pixels, [0, split]);
  } catch (e) {
    await bottom.catch(() => undefined);
    throw e;
  }
  await bottom;
  return { pixels, height: size, width: size, originalWidth: image.width, originalHeight: image.height };
}

/** Encode 8-bit RGB as PNG (for heat maps and other pictures the tools write). */
export async function toPng(image: RgbImage): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}
