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

/** dx [B, H, W, C] = the sum over every output position and tap that read x[b, y, x, c]. */
export function depthwiseInputGradient(dy: ArrayLike<number>, filter: ArrayLike<number>, g: DepthwiseGeometry): Float32Array {
  const { batch, inHeight: H, inWidth: W, inChannels: C, multiplier: m, filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = g;
  const O = C * m;
  const dx = new Float32Array(batch * H * W * C);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const dyAt = ((b * oh + oy) * ow + ox) * O;
        for (let ky = 0; ky < fh; ky++) {
          const y = oy * g.strideHeight - g.top + ky;
          if (y < 0 || y >= H) continue;
          for (let kx = 0; kx < fw; kx++) {
            const x = ox * g.strideWidth - g.left + kx;
            if (x < 0 || x >= W) continue;
            const dxAt = ((b * H + y) * W + x) * C;
            const fAt = (ky * fw + kx) * O;
            if (m === 1) {
              for (let c = 0; c < C; c++) dx[dxAt + c]! += dy[dyAt + c]! * filter[fAt + c]!;
            } else {
              for (let c = 0; c < C; c++) {
                let s = 0;
                for (let q = 0; q < m; q++) s += dy[dyAt + c * m + q]! * filter[fAt + c * m + q]!;
                dx[dxAt + c]! += s;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

/** dfilter [fh, fw, C, m] = the sum over every output position of input times output gradient. */
export function depthwiseFilterGradient(xs: ArrayLike<number>, dy: ArrayLike<number>, g: DepthwiseGeometry): Float32Array {
  const { batch, inHeight: H, inWidth: W, inChannels: C, multiplier: m, filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = g;
  const O = C * m;
  const df = new Float32Array(fh * fw * O);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const dyAt = ((b * oh + oy) * ow + ox) * O;
        for (let ky = 0; ky < fh; ky++) {
          const y = oy * g.strideHeight - g.top + ky;
          if (y < 0 || y >= H) continue;
          for (let kx = 0; kx < fw; kx++) {
            const x = ox * g.strideWidth - g.left + kx;
            if (x < 0 || x >= W) continue;
            const xAt = ((b * H + y) * W + x) * C;
            const fAt = (ky * fw + kx) * O;
            for (let c = 0; c < C; c++) {
              const v = xs[xAt + c]!;
              for (let q = 0; q < m; q++) df[fAt + c * m + q]! += v * dy[dyAt + c * m + q]!;
            }
          }
        }
      }
    }
  }
  return df;
}
