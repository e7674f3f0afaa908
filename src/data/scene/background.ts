/** The background of a synthetic scene: a smooth textured field, translucent blobs and grid lines. */
import type { Rng } from '../../rng.js';
import { ellipse, fillPolygon, fillRect, pixel, type Canvas, type Rgb } from '../draw.js';
import { clampByte } from './colours.js';

export interface Background {
  /** mean colour, for the global caption's tone */
  readonly mean: Rgb;
  readonly grid: boolean;
}

/** Random muted colour: grey pulled a little toward a random hue. */
export function mutedColour(rng: Rng, lightness: number): Rgb {
  const sat = rng.uniform(0.1, 0.45);
  const channel = (): number => clampByte(lightness + (rng.uniform(0, 255) - 128) * sat);
  return [channel(), channel(), channel()];
}

/**
 * Linear gradient between two muted colours plus smooth value noise (bilinear over a coarse grid
 * of random offsets), then large translucent blobs and, often, grid lines. Everything here is
 * smooth or flat, which keeps PNGs small; the fine-grained clutter comes later.
 */
export function paintBackground(canvas: Canvas, rng: Rng, long: number): Background {
  const { width, height, rgb } = canvas;
  const lightness = rng.uniform(50, 210);
  const a = mutedColour(rng, lightness);
  const b = mutedColour(rng, clampByte(lightness + rng.uniform(-50, 50)));
  const angle = rng.uniform(0, 2 * Math.PI);
  const ux = Math.cos(angle) / Math.hypot(width, height);
  const uy = Math.sin(angle) / Math.hypot(width, height);
  const amp = rng.uniform(8, 28);
  const cells = rng.int(3, 10);
  const cellPx = long / cells;
  const gw = Math.ceil(width / cellPx) + 2;
  const gh = Math.ceil(height / cellPx) + 2;
  const grid = Float32Array.from({ length: gw * gh }, () => rng.uniform(-1, 1) * amp);
  const rowNoise = new Float32Array(gw); // the grid interpolated to this row, per grid column
  const smooth = (t: number): number => t * t * (3 - 2 * t);
  // per column: the grid cell and the weight of its right neighbour, the same for every row
  const cellOf = new Int32Array(width);
  const weightOf = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const gx = (x + 0.5) / cellPx;
    cellOf[x] = Math.floor(gx);
    weightOf[x] = smooth(gx - cellOf[x]!);
  }
  // a clamped view rounds and clips on store, which is the hot loop's clampByte
  const out = new Uint8ClampedArray(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  const [dr, dg, db] = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  for (let y = 0; y < height; y++) {
    const gy = (y + 0.5) / cellPx;
    const j = Math.floor(gy);
    const ty = smooth(gy - j);
    for (let i = 0; i < gw; i++) rowNoise[i] = grid[j * gw + i]! * (1 - ty) + grid[(j + 1) * gw + i]! * ty;
    const t0 = 0.5 + (0.5 - width / 2) * ux + (y + 0.5 - height / 2) * uy;
    let o = y * width * 3;
    for (let x = 0; x < width; x++) {
      const i = cellOf[x]!;
      const left = rowNoise[i]!;
      const n = left + (rowNoise[i + 1]! - left) * weightOf[x]!;
      const tr = t0 + x * ux;
      const t = tr < 0 ? 0 : tr > 1 ? 1 : tr;
      out[o] = a[0] + dr * t + n;
      out[o + 1] = a[1] + dg * t + n;
      out[o + 2] = a[2] + db * t + n;
      o += 3;
    }
  }
  for (let k = rng.int(4, 9); k > 0; k--) {
    const r = long * rng.uniform(0.04, 0.15);
    const shape = ellipse(rng.uniform(0, width), rng.uniform(0, height), r, r * rng.uniform(0.4, 1), rng.uniform(0, Math.PI));
    fillPolygon(canvas, [shape], { colour: mutedColour(rng, rng.uniform(40, 220)), alpha: rng.uniform(0.1, 0.3) });
  }
  const hasGrid = rng.next() < 0.7;
  if (hasGrid) {
    const spacing = long * rng.uniform(0.03, 0.1);
    const thick = Math.max(1, long * rng.uniform(0.0008, 0.002));
    const style = { colour: lightness > 128 ? ([40, 40, 40] as const) : ([220, 220, 220] as const), alpha: rng.uniform(0.2, 0.45) };
    const offset = rng.uniform(0, spacing);
    for (let x = offset; x < width; x += spacing) fillRect(canvas, x, 0, x + thick, height, style);
    for (let y = offset; y < height; y += spacing) fillRect(canvas, 0, y, width, y + thick, style);
  }
  let [sumR, sumG, sumB, count] = [0, 0, 0, 0];
  const step = Math.max(1, Math.floor(Math.min(width, height) / 32));
  for (let y = step >> 1; y < height; y += step) {
    for (let x = step >> 1; x < width; x += step) {
      const p = pixel(canvas, x, y);
      sumR += p[0];
      sumG += p[1];
      sumB += p[2];
      count++;
    }
  }
  return { mean: [sumR / count, sumG / count, sumB / count], grid: hasGrid };
}
