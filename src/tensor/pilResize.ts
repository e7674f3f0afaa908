/**
 * Pillow's `Image.resize(size, Image.BICUBIC)` for 8-bit RGB, bit for bit.
 *
 * The PS3 processor squashes every image with PIL, and PIL resamples 8-bit images in fixed point:
 * coefficients are rounded to 22 fractional bits and each of the two passes (horizontal, then
 * vertical) rounds its result to 8 bits and clips. A float implementation of the same filter can
 * land one level away on some pixels; mirroring Pillow's `Resample.c` (`precompute_coeffs`,
 * `normalize_coeffs_8bpc`, `ImagingResampleHorizontal_8bpc` / `Vertical_8bpc`) lands on none.
 *
 * The weights are those of `antialiasBicubicTaps` in resample.ts, but computed here with Pillow's
 * own float steps: those taps answer to PyTorch, these to Pillow, and each must follow its source.
 */

import { cubicKernel } from './resample.js';

/** Pillow's `PRECISION_BITS` for 8-bit images: 32 - 8 - 2, so a sum of 8-bit x coefficient products fits in an int32. */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
/** Accumulators start at one half so that the final `>> PRECISION_BITS` rounds to nearest. */
const HALF = 1 << (PRECISION_BITS - 1);
/** Anything at or above 256 << PRECISION_BITS clips to 255. */
const CLIP_HIGH = ONE * 256;

/** Bicubic filter taps for one axis: output index o reads `count[o]` inputs from `first[o]` with `coeff[o * ksize + t]`. */
export interface PilCoefficients {
  readonly inSize: number;
  readonly outSize: number;
  readonly ksize: number;
  readonly first: Int32Array; // [outSize]
  readonly count: Int32Array; // [outSize]
  readonly coeff: Int32Array; // [outSize * ksize], fixed point with PRECISION_BITS fractional bits
}

/**
 * Pillow's `precompute_coeffs` for the bicubic filter (support 2, a = -0.5) followed by
 * `normalize_coeffs_8bpc`. The float steps follow Pillow's exactly (multiply by 1 / filterscale
 * rather than divide, truncate the bounds like C's `(int)` cast) so the rounded coefficients match.
 */
export function pilBicubicCoefficients(inSize: number, outSize: number): PilCoefficients {
  if (!Number.isInteger(inSize) || inSize < 1 || !Number.isInteger(outSize) || outSize < 1) {
    throw new RangeError(`PIL resize sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const invFilterScale = 1 / filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const coeff = new Int32Array(outSize * ksize);
  const weights = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const n = Math.min(Math.trunc(centre + support + 0.5), inSize) - lo;
    let total = 0;
    for (let t = 0; t < n; t++) {
      const w = cubicKernel((t + lo - centre + 0.5) * invFilterScale, -0.5);
      weights[t] = w;
      total += w;
    }
    for (let t = 0; t < n; t++) {
      const w = total !== 0 ? weights[t]! / total : weights[t]!;
      // C's (int) cast truncates toward zero, hence the signed half.
      coeff[o * ksize + t] = Math.trunc(w < 0 ? w * ONE - 0.5 : w * ONE + 0.5);
    }
    first[o] = lo;
    count[o] = n;
  }
  return { inSize, outSize, ksize, first, count, coeff };
}

/** Pillow's `clip8`: drop the fractional bits of a rounded fixed-point sum, clipped to [0, 255]. */
function clip8(sum: number): number {
  if (sum >= CLIP_HIGH) return 255;
  if (sum <= 0) return 0;
  return sum >> PRECISION_BITS;
}

/**
 * Horizontal pass over rows `top`..`top + height` of an image `stride` pixels wide, reading the
 * columns from `left` on (a crop window, read in place): [height, outW, 3]; written into the start
 * of `into` when given.
 */
function resampleRows(src: Uint8Array, stride: number, top: number, left: number, height: number, taps: PilCoefficients, into?: Uint8Array): Uint8Array {
  const { outSize: outW, ksize, first, count, coeff } = taps;
  const out = into ? into.subarray(0, height * outW * 3) : new Uint8Array(height * outW * 3);
  for (let y = 0; y < height; y++) {
    const rowIn = ((top + y) * stride + left) * 3;
    let p = y * outW * 3;
    for (let o = 0; o < outW; o++) {
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      let q = rowIn + first[o]! * 3;
      const end = o * ksize + count[o]!;
      // int32 sums, as Pillow's (they fit by its choice of PRECISION_BITS): `| 0` keeps the JIT on
      // integer arithmetic, a quarter faster than doubles here
      for (let t = o * ksize; t < end; t++, q += 3) {
        const k = coeff[t]!;
        s0 = (s0 + src[q]! * k) | 0;
        s1 = (s1 + src[q + 1]! * k) | 0;
        s2 = (s2 + src[q + 2]! * k) | 0;
      }
      out[p++] = clip8(s0);
      out[p++] = clip8(s1);
      out[p++] = clip8(s2);
    }
  }
  return out;
}

/**
 * Output row o of the vertical pass as Pillow sums it, before rounding: the rows it reads, tap by
 * tap over whole rows (sequential reads), into the int32 accumulator `acc` (one row of `rowLen`
 * values). `src` holds the input rows from `srcTop` on.
 */
function sumRows(src: Uint8Array, srcTop: number, rowLen: number, taps: PilCoefficients, o: number, acc: Int32Array): void {
  const { ksize, first, count, coeff } = taps;
  acc.fill(HALF);
  for (let t = 0; t < count[o]!; t++) {
    const k = coeff[o * ksize + t]!;
    const row = (first[o]! + t - srcTop) * rowLen;
    for (let i = 0; i < rowLen; i++) acc[i] += src[row + i]! * k;
  }
}

/**
 * Vertical pass: [inH, width, 3] -> [outH, width, 3]. Each output row is a weighted sum of a few
 * whole input rows, so the sum runs tap by tap over whole rows (sequential reads) into an int32
 * row accumulator. The partial sums are Pillow's, in Pillow's order, so they fit an int32 as
 * Pillow's own accumulator does.
 */
function resampleColumns(src: Uint8Array, width: number, taps: PilCoefficients): Uint8Array {
  const outH = taps.outSize;
  const rowLen = width * 3;
  const out = new Uint8Array(outH * rowLen);
  const acc = new Int32Array(rowLen);
  for (let o = 0; o < outH; o++) {
    sumRows(src, 0, rowLen, taps, o, acc);
    const dst = o * rowLen;
    for (let i = 0; i < rowLen; i++) out[dst + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * The vertical pass for output rows o0..o1 written straight into three float planes
 * [3, outH, width]: each 8-bit result goes through its channel's 256-entry table (the processor's
 * normalisation), so the resized bytes are never stored. `src` holds the input rows from `srcTop`
 * on.
 */
function resampleColumnsToPlanes(
  src: Uint8Array,
  srcTop: number,
  width: number,
  taps: PilCoefficients,
  o0: number,
  o1: number,
  tables: readonly [Float32Array, Float32Array, Float32Array],
  out: Float32Array,
  acc: Int32Array,
): void {
  const rowLen = width * 3;
  const plane = taps.outSize * width;
  const [t0, t1, t2] = tables;
  for (let o = o0; o < o1; o++) {
    sumRows(src, srcTop, rowLen, taps, o, acc);
    const dst = o * width;
    for (let x = 0, i = 0; x < width; x++, i += 3) {
      out[dst + x] = t0[clip8(acc[i]!)]!;
      out[plane + dst + x] = t1[clip8(acc[i + 1]!)]!;
      out[2 * plane + dst + x] = t2[clip8(acc[i + 2]!)]!;
    }
  }
}

/** Output rows per band of `pilResizeBicubicRgbToPlanes`: its horizontal rows stay in cache, and a band's edge rows, computed twice, are a few percent. */
const BAND_ROWS = 128;

/** Interleaved bytes [n, 3] through the channels' tables into three planes of n values. */
function bytesToPlanes(src: Uint8Array, tables: readonly [Float32Array, Float32Array, Float32Array], planes: readonly [Float32Array, Float32Array, Float32Array]): void {
  const n = src.length / 3;
  const [t0, t1, t2] = tables;
  const [a, b, c] = planes;
  for (let p = 0, q = 0; p < n; p++, q += 3) {
    a[p] = t0[src[q]!]!;
    b[p] = t1[src[q + 1]!]!;
    c[p] = t2[src[q + 2]!]!;
  }
}

/**
 * `pilResizeBicubicRgb` followed by a per-channel byte -> float table, written as planes
 * [3, outHeight, outWidth] into `out`: the same values as resizing and then looking up every
 * byte, without the resized bytes (a 4K squash is 43 MB of them) or a second pass over them.
 * Only output rows `rows[0]`..`rows[1]` (all by default) are written, so threads can share the work.
 * With `window`, that part of the image is resized, read in place: the same values as cutting it
 * out first (a training sample's random crop, resized and normalised in one pass).
 */
export function pilResizeBicubicRgbToPlanes(
  src: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  tables: readonly [Float32Array, Float32Array, Float32Array],
  out: Float32Array,
  rows: readonly [number, number] = [0, outHeight],
  window: { readonly left: number; readonly top: number; readonly width: number; readonly height: number } = { left: 0, top: 0, width, height },
): Float32Array {
  const { left, top: wTop, width: w, height: h } = window;
  if (![w, h, outWidth, outHeight].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError(`PIL resize sizes must be positive integers, got ${w}x${h} -> ${outWidth}x${outHeight}`);
  }
  if (!(Number.isInteger(left) && Number.isInteger(wTop) && left >= 0 && wTop >= 0 && left + w <= width && wTop + h <= height)) {
    throw new RangeError(`PIL resize: window ${w}x${h} at (${left}, ${wTop}) of a ${width}x${height} image`);
  }
  if (src.length !== width * height * 3) throw new RangeError(`PIL resize: ${src.length} bytes do not hold a ${width}x${height} RGB image`);
  if (out.length !== 3 * outWidth * outHeight) throw new RangeError(`PIL resize: out holds ${out.length} values, expected ${3 * outWidth * outHeight}`);
  if (tables.some((t) => t.length !== 256)) throw new RangeError('PIL resize: each channel table needs 256 entries');
  const [r0, r1] = rows;
  if (!(Number.isInteger(r0) && Number.isInteger(r1) && r0 >= 0 && r0 <= r1 && r1 <= outHeight)) throw new RangeError(`PIL resize: rows ${r0}..${r1} of ${outHeight}`);
  // rows y0..y1 of the window, interleaved, as they are: a view when the window spans the image's width
  const windowRows = (y0: number, y1: number, into?: Uint8Array): Uint8Array => {
    if (left === 0 && w === width) return src.subarray((wTop + y0) * width * 3, (wTop + y1) * width * 3);
    const cut = into && into.length >= (y1 - y0) * w * 3 ? into.subarray(0, (y1 - y0) * w * 3) : new Uint8Array((y1 - y0) * w * 3);
    for (let y = y0; y < y1; y++) cut.set(src.subarray(((wTop + y) * width + left) * 3, ((wTop + y) * width + left + w) * 3), (y - y0) * w * 3);
    return cut;
  };
  if (outHeight === h) {
    const plane = outWidth * outHeight;
    const part = outWidth !== w ? resampleRows(src, width, wTop + r0, left, r1 - r0, pilBicubicCoefficients(w, outWidth)) : windowRows(r0, r1);
    const planes = [0, 1, 2].map((c) => out.subarray(c * plane + r0 * outWidth, c * plane + r1 * outWidth)) as [Float32Array, Float32Array, Float32Array];
    bytesToPlanes(part, tables, planes);
    return out;
  }
  const vertical = pilBicubicCoefficients(h, outHeight);
  const horizontal = outWidth !== w ? pilBicubicCoefficients(w, outWidth) : null;
  const acc = new Int32Array(outWidth * 3);
  let band: Uint8Array | undefined;
  // band by band: the horizontal pass makes only the input rows the band's output rows read
  for (let o0 = r0; o0 < r1; o0 += BAND_ROWS) {
    const o1 = Math.min(r1, o0 + BAND_ROWS);
    let top = h;
    let bottom = 0;
    for (let o = o0; o < o1; o++) {
      top = Math.min(top, vertical.first[o]!);
      bottom = Math.max(bottom, vertical.first[o]! + vertical.count[o]!);
    }
    if (!band || band.length < (bottom - top) * outWidth * 3) band = new Uint8Array(Math.max(bottom - top, 2 * BAND_ROWS) * outWidth * 3);
    const rowsIn = horizontal ? resampleRows(src, width, wTop + top, left, bottom - top, horizontal, band) : windowRows(top, bottom, band);
    resampleColumnsToPlanes(rowsIn, top, outWidth, vertical, o0, o1, tables, out, acc);
  }
  return out;
}

/**
 * Resize interleaved 8-bit RGB [height, width, 3] to [outHeight, outWidth, 3] as Pillow's
 * `Image.resize((outWidth, outHeight), Image.BICUBIC)` does on an RGB image: horizontal pass,
 * then vertical, each skipped when its size does not change (as Pillow skips it).
 */
export function pilResizeBicubicRgb(
  src: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  if (![width, height, outWidth, outHeight].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError(`PIL resize sizes must be positive integers, got ${width}x${height} -> ${outWidth}x${outHeight}`);
  }
  if (src.length !== width * height * 3) {
    throw new RangeError(`PIL resize: ${src.length} bytes do not hold a ${width}x${height} RGB image`);
  }
  const rows = outWidth !== width ? resampleRows(src, width, 0, 0, height, pilBicubicCoefficients(width, outWidth)) : src;
  if (outHeight !== height) return resampleColumns(rows, outWidth, pilBicubicCoefficients(height, outHeight));
  return rows === src ? src.slice() : rows;
}
