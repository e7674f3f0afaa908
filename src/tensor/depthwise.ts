/**
 * The two gradients of a depthwise 2-D convolution (channels last), which the WASM backend lacks:
 * with them the selection ConvNeXt's 7 x 7 depthwise conv runs on the backend's own forward kernel
 * instead of a gather of every window (9 M floats written and scattered back per image at 54 x 54).
 *
 * Shapes: x [B, H, W, C], filter [fh, fw, C, m], dy [B, oh, ow, C * m] (output channel c * m + q
 * comes from input channel c); stride (sh, sw), dilation 1, `top` / `left` zero padding.
 */

export interface DepthwiseGeometry {
  readonly batch: number;
  readonly inHeight: number;
  readonly inWidth: number;
  readonly inChannels: number;
  /** channel multiplier m */
  readonly multiplier: number;
  readonly filterHeight: number;
  readonly filterWidth: number;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly strideHeight: number;
  readonly strideWidth: number;
  readonly top: number;
  readonly left: number;
}

/**
 * One of the two gradients; they share the walk over every (output position, tap) pair that reads
 * an input pixel, and differ in what they accumulate there:
 *  - input:  dx [B, H, W, C] += dy * filter (from `dy` and `filter`);
 *  - filter: dfilter [fh, fw, C, m] += x * dy (from `x` and `dy`).
 */
function depthwiseGradient(kind: 'input' | 'filter', a: ArrayLike<number>, b: ArrayLike<number>, g: DepthwiseGeometry): Float32Array {
  const { batch, inHeight: H, inWidth: W, inChannels: C, multiplier: m, filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = g;
  const O = C * m;
  const toInput = kind === 'input';
  const [dy, other] = toInput ? [a, b] : [b, a];
  const out = new Float32Array(toInput ? batch * H * W * C : fh * fw * O);
  for (let n = 0; n < batch; n++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const dyAt = ((n * oh + oy) * ow + ox) * O;
        for (let ky = 0; ky < fh; ky++) {
          const y = oy * g.strideHeight - g.top + ky;
          if (y < 0 || y >= H) continue;
          for (let kx = 0; kx < fw; kx++) {
            const x = ox * g.strideWidth - g.left + kx;
            if (x < 0 || x >= W) continue;
            const xAt = ((n * H + y) * W + x) * C;
            const fAt = (ky * fw + kx) * O;
            for (let c = 0; c < C; c++) {
              if (toInput) {
                let s = 0;
                for (let q = 0; q < m; q++) s += dy[dyAt + c * m + q]! * other[fAt + c * m + q]!;
                out[xAt + c]! += s;
              } else {
                const v = other[xAt + c]!;
                for (let q = 0; q < m; q++) out[fAt + c * m + q]! += v * dy[dyAt + c * m + q]!;
              }
            }
          }
        }
      }
    }
  }
  return out;
}

/** dx [B, H, W, C] = the sum over every output position and tap that read x[b, y, x, c]. */
export function depthwiseInputGradient(dy: ArrayLike<number>, filter: ArrayLike<number>, g: DepthwiseGeometry): Float32Array {
  return depthwiseGradient('input', dy, filter, g);
}

/** dfilter [fh, fw, C, m] = the sum over every output position of input times output gradient. */
export function depthwiseFilterGradient(xs: ArrayLike<number>, dy: ArrayLike<number>, g: DepthwiseGeometry): Float32Array {
  return depthwiseGradient('filter', xs, dy, g);
}
