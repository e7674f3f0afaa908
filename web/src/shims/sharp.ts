/**
 * Browser stand-in for `sharp`. `src/io/image.ts` decodes with sharp, but the page decodes with
 * the browser (createImageBitmap) and uses only that module's pure functions (`squash`,
 * `normalise`); calling the decoder in the page says so plainly.
 */
export default function sharp(): never {
  throw new Error('sharp is not available in the browser: the page decodes images with createImageBitmap');
}
