/**
 * Resampling weights exactly as PyTorch's `F.interpolate` defines them, for one axis at a time.
 *
 * Every resize PS3 uses is separable, so each is described by `Taps`: for every output index a
 * fixed number of (input index, weight) pairs. The same taps drive two implementations:
 * `resizePlanes` (plain arrays, for images, no gradients needed) and `resampleMatrix` (a dense
 * [out, in] matrix, so small differentiable tensors such as position embeddings can be resized
 * with a matmul and get exact gradients for free).
 */

/** Per-output-index taps along one axis: `index[o * width + t]`, `weight[o * width + t]`. */
export interface Taps {
  readonly inSize: number;
  readonly outSize: number;
  readonly width: number;
  readonly index: Int32Array;
  readonly weight: Float64Array;
}

function makeTaps(inSize: number, outSize: number, width: number): Taps {
  if (!Number.isInteger(inSize) || inSize < 1 || !Number.isInteger(outSize) || outSize < 1) {
    throw new RangeError(`resample sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  return { inSize, outSize, width, index: new Int32Array(outSize * width), weight: new Float64Array(outSize * width) };
}

/** Keys' cubic convolution kernel with parameter `a` (-0.75 in PyTorch's bicubic, -0.5 in PIL's and antialiased). */
export function cubicKernel(x: number, a: number): number {
  const t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/**
 * `F.interpolate(mode='bicubic', align_corners=False, antialias=False)`: source coordinate
 * (o + 0.5) * in/out - 0.5 (not clamped for cubic), four taps with a = -0.75, indices clamped to
 * the border. PyTorch computes the scale in float32; so do we. The coordinate itself must NOT be
 * rounded to float32: measured against torch 1.13 (test/data/numerics.json), its fractional part t
 * is that of float32(scale) * (o + 0.5) - 0.5 evaluated in float64 (e.g. 28 -> 40, o = 28:
 * t = 0.44999966, where a float32 coordinate would give 0.44999886 and weights off by 1.2e-6).
 */
export function bicubicTaps(inSize: number, outSize: number): Taps {
  const taps = makeTaps(inSize, outSize, 4);
  const scale = Math.fround(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    const src = scale * (o + 0.5) - 0.5;
    const i0 = Math.floor(src);
    const t = src - i0;
    const w = [cubicKernel(t + 1, -0.75), cubicKernel(t, -0.75), cubicKernel(1 - t, -0.75), cubicKernel(2 - t, -0.75)];
    for (let k = 0; k < 4; k++) {
      taps.index[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      taps.weight[o * 4 + k] = w[k]!;
    }
  }
  return taps;
}

/**
 * Antialiased cubic resampling (a = -0.5), as PIL's `Image.resize(BICUBIC)` and PyTorch's
 * `F.interpolate(mode='bicubic', antialias=True)` define it: centre (o + 0.5) * scale, support
 * 2 * max(scale, 1), taps clipped to the image and normalised to sum 1.
 */
export function antialiasBicubicTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const width = Math.ceil(support) * 2 + 1;
  const taps = makeTaps(inSize, outSize, width);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let total = 0;
    for (let j = lo; j < hi; j++) total += cubicKernel((j - centre + 0.5) / filterScale, -0.5);
    for (let k = 0; k < width; k++) {
      const j = lo + k;
      taps.index[o * width + k] = Math.min(j, inSize - 1);
      taps.weight[o * width + k] = j < hi && total !== 0 ? cubicKernel((j - centre + 0.5) / filterScale, -0.5) / total : 0;
    }
  }
  return taps;
}

/**
 * `F.interpolate(mode='nearest')`: source index floor(o * scale) with scale = in/out in float32,
 * clamped to the last index (PyTorch's `nearest_idx`).
 */
export function nearestIndex(inSize: number, outSize: number): Int32Array {
  const index = new Int32Array(outSize);
  const scale = Math.fround(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    if (outSize === inSize) index[o] = o;
    else if (outSize === 2 * inSize) index[o] = o >> 1;
    else index[o] = Math.min(Math.floor(Math.fround(o * scale)), inSize - 1);
  }
  return index;
}

export function nearestTaps(inSize: number, outSize: number): Taps {
  const taps = makeTaps(inSize, outSize, 1);
  taps.index.set(nearestIndex(inSize, outSize));
  taps.weight.fill(1);
  return taps;
}

/** Adaptive pooling bins (PyTorch): [floor(o * in / out), ceil((o + 1) * in / out)). */
export function adaptiveBins(inSize: number, outSize: number): Array<[number, number]> {
  const bins: Array<[number, number]> = [];
  for (let o = 0; o < outSize; o++) {
    bins.push([Math.floor((o * inSize) / outSize), Math.ceil(((o + 1) * inSize) / outSize)]);
  }
  return bins;
}

/** `F.interpolate(mode='area')`, which is adaptive average pooling. */
export function areaTaps(inSize: number, outSize: number): Taps {
  const bins = adaptiveBins(inSize, outSize);
  const width = Math.max(...bins.map(([s, e]) => e - s));
  const taps = makeTaps(inSize, outSize, width);
  bins.forEach(([s, e], o) => {
    for (let k = 0; k < width; k++) {
      taps.index[o * width + k] = Math.min(s + k, inSize - 1);
      taps.weight[o * width + k] = s + k < e ? 1 / (e - s) : 0;
    }
  });
  return taps;
}

export type ResampleMode = 'bicubic' | 'bicubic-antialias' | 'nearest' | 'area';

export function tapsFor(mode: ResampleMode, inSize: number, outSize: number): Taps {
  switch (mode) {
    case 'bicubic':
      return bicubicTaps(inSize, outSize);
    case 'bicubic-antialias':
      return antialiasBicubicTaps(inSize, outSize);
    case 'nearest':
      return nearestTaps(inSize, outSize);
    case 'area':
      return areaTaps(inSize, outSize);
  }
}

/** Dense [outSize, inSize] row-major matrix of the taps (rows may be cropped to the first `rows`). */
export function resampleMatrix(taps: Taps, rows = taps.outSize): Float32Array {
  const m = new Float64Array(rows * taps.inSize);
  for (let o = 0; o < rows; o++) {
    for (let k = 0; k < taps.width; k++) {
      m[o * taps.inSize + taps.index[o * taps.width + k]!] += taps.weight[o * taps.width + k]!;
    }
  }
  return Float32Array.from(m);
}

/**
 * Resize `planes` stacked [P, H, W] (row-major float32) to [P, outH, outW], rows first then
 * columns. The intermediate is kept in float64 so the result is the exact separable sum rounded
 * once to float32. Written into `out` when given.
 *
 * Every output row sums its taps' input rows in tap order, skipping zero weights; four taps (every
 * plain bicubic row and column) take an unrolled path that writes each value once instead of
 * adding into it four times: about twice as fast at 3780 -> 1512, with the same sums in the same
 * order, so the same bits.
 */
export function resizePlanes(
  planes: Float32Array,
  count: number,
  height: number,
  width: number,
  rowTaps: Taps,
  colTaps: Taps,
  out?: Float32Array,
): Float32Array {
  if (rowTaps.inSize !== height || colTaps.inSize !== width || planes.length !== count * height * width) {
    throw new RangeError(`resizePlanes: taps ${rowTaps.inSize}x${colTaps.inSize} do not fit planes ${count}x${height}x${width}`);
  }
  const outH = rowTaps.outSize;
  const outW = colTaps.outSize;
  if (out && out.length !== count * outH * outW) throw new RangeError(`resizePlanes: out holds ${out.length} values, expected ${count * outH * outW}`);
  out ??= new Float32Array(count * outH * outW);
  const rowBuf = new Float64Array(width);
  // the current output row's nonzero taps: flat offsets of their input rows, and weights
  const rowStart = new Int32Array(rowTaps.width);
  const rowWeight = new Float64Array(rowTaps.width);
  for (let p = 0; p < count; p++) {
    const src = p * height * width;
    const dst = p * outH * outW;
    for (let oy = 0; oy < outH; oy++) {
      let n = 0;
      for (let k = 0; k < rowTaps.width; k++) {
        const w = rowTaps.weight[oy * rowTaps.width + k]!;
        if (w === 0) continue;
        rowWeight[n] = w;
        rowStart[n++] = src + rowTaps.index[oy * rowTaps.width + k]! * width;
      }
      if (n === 4) sumFourRows(planes, rowStart, rowWeight, rowBuf);
      else sumRows(planes, rowStart, rowWeight, n, rowBuf);
      if (colTaps.width === 4) sumFourColumns(rowBuf, colTaps, out, dst + oy * outW);
      else sumColumns(rowBuf, colTaps, out, dst + oy * outW);
    }
  }
  return out;
}

function sumFourRows(planes: Float32Array, start: Int32Array, weight: Float64Array, row: Float64Array): void {
  const [w0, w1, w2, w3] = [weight[0]!, weight[1]!, weight[2]!, weight[3]!];
  const [s0, s1, s2, s3] = [start[0]!, start[1]!, start[2]!, start[3]!];
  for (let x = 0; x < row.length; x++) row[x] = 0 + w0 * planes[s0 + x]! + w1 * planes[s1 + x]! + w2 * planes[s2 + x]! + w3 * planes[s3 + x]!;
}

function sumRows(planes: Float32Array, start: Int32Array, weight: Float64Array, n: number, row: Float64Array): void {
  row.fill(0);
  for (let k = 0; k < n; k++) {
    const w = weight[k]!;
    const s = start[k]!;
    for (let x = 0; x < row.length; x++) row[x]! += w * planes[s + x]!;
  }
}

function sumFourColumns(row: Float64Array, taps: Taps, out: Float32Array, at: number): void {
  const { index, weight, outSize } = taps;
  for (let ox = 0, j = 0; ox < outSize; ox++, j += 4) {
    out[at + ox] = 0 + weight[j]! * row[index[j]!]! + weight[j + 1]! * row[index[j + 1]!]! + weight[j + 2]! * row[index[j + 2]!]! + weight[j + 3]! * row[index[j + 3]!]!;
  }
}

function sumColumns(row: Float64Array, taps: Taps, out: Float32Array, at: number): void {
  const { index, weight, width, outSize } = taps;
  for (let ox = 0; ox < outSize; ox++) {
    let acc = 0;
    for (let k = 0; k < width; k++) acc += weight[ox * width + k]! * row[index[ox * width + k]!]!;
    out[at + ox] = acc;
  }
}

/** Resize [P, H, W] planes with one of PyTorch's modes (into `out` when given). */
export function resize(
  planes: Float32Array,
  count: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
  mode: ResampleMode,
  out?: Float32Array,
): Float32Array {
  return resizePlanes(planes, count, height, width, tapsFor(mode, height, outH), tapsFor(mode, width, outW), out);
}

/**
 * For each `F.adaptive_max_pool2d` output over data laid out [pre, H, W, post] (the pooled axes
 * need not be the last two), the flat index of the input element it takes; output order
 * [pre, outH, outW, post]. PyTorch's rule, which also decides where the gradient goes: scanning
 * the window in row-major order, an element wins if it is greater than the best so far or NaN (so
 * the first of tied maxima wins, and the last NaN); a window of -Infinity keeps its first element.
 */
export function adaptiveMaxPoolIndex(
  values: ArrayLike<number>,
  pre: number,
  height: number,
  width: number,
  post: number,
  outH: number,
  outW: number,
): Int32Array {
  if (values.length !== pre * height * width * post) {
    throw new RangeError(`adaptiveMaxPoolIndex: ${values.length} values do not fit ${pre}x${height}x${width}x${post}`);
  }
  const rows = adaptiveBins(height, outH);
  const cols = adaptiveBins(width, outW);
  const index = new Int32Array(pre * outH * outW * post);
  let o = 0;
  for (let p = 0; p < pre; p++) {
    for (let oy = 0; oy < outH; oy++) {
      const [y0, y1] = rows[oy]!;
      for (let ox = 0; ox < outW; ox++) {
        const [x0, x1] = cols[ox]!;
        for (let c = 0; c < post; c++) {
          let bestIndex = ((p * height + y0) * width + x0) * post + c;
          let best = -Infinity;
          for (let y = y0; y < y1; y++) {
            for (let x = x0; x < x1; x++) {
              const i = ((p * height + y) * width + x) * post + c;
              const v = values[i]!;
              if (v > best || Number.isNaN(v)) {
                best = v;
                bestIndex = i;
              }
            }
          }
          index[o++] = bestIndex;
        }
      }
    }
  }
  return index;
}

/** `F.adaptive_max_pool2d` on [P, H, W] planes (plain arrays; see `ops.adaptiveMaxPool2d` for tensors). */
export function adaptiveMaxPool(
  planes: Float32Array,
  count: number,
  height: number,
  width: number,
  outH: number,
  outW: number,
): Float32Array {
  const index = adaptiveMaxPoolIndex(planes, count, height, width, 1, outH, outW);
  return Float32Array.from(index, (i) => planes[i]!);
}
