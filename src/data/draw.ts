/**
 * A tiny software rasteriser for the synthetic scenes: an RGB canvas, scan-line polygon fills
 * (every shape, circles included, is a polygon) and rectangles, each optionally blended with an
 * alpha. No anti-aliasing: hard edges keep every object's pixels exactly its colour, so the tight
 * box of an object is simply the extent of the pixels its fills touched, which each fill reports
 * into an `Extent`.
 *
 * Coordinates are continuous with pixel (x, y) covering [x, x+1) x [y, y+1); a pixel is filled
 * when its centre (x + 0.5, y + 0.5) lies inside the shape (even-odd rule).
 */

export type Rgb = readonly [number, number, number];
export type Point = readonly [number, number];

/**
 * [x0, y0, x1, y1] in pixel-edge coordinates: the box covers pixels x0..x1-1 and y0..y1-1, so an
 * object touching columns 10..19 has x0 = 10, x1 = 20 (the reference's "pixels of the image").
 */
export type Box = [number, number, number, number];

export interface Canvas {
  readonly width: number;
  readonly height: number;
  /** [height, width, 3] row-major, what sharp takes as raw input */
  readonly rgb: Uint8Array;
}

export function createCanvas(width: number, height: number): Canvas {
  return { width, height, rgb: new Uint8Array(width * height * 3) };
}

/** The bounding box of every pixel the fills given it touched (empty until one touches a pixel). */
export class Extent {
  x0 = Infinity;
  y0 = Infinity;
  x1 = -Infinity;
  y1 = -Infinity;

  /** pixels [xa, xb) of row y */
  addSpan(xa: number, xb: number, y: number): void {
    if (xa < this.x0) this.x0 = xa;
    if (xb > this.x1) this.x1 = xb;
    if (y < this.y0) this.y0 = y;
    if (y + 1 > this.y1) this.y1 = y + 1;
  }

  get empty(): boolean {
    return this.x1 < this.x0;
  }

  box(): Box {
    if (this.empty) throw new RangeError('Extent.box: nothing was drawn');
    return [this.x0, this.y0, this.x1, this.y1];
  }
}

/** Fills pixels [xa, xb) of row y (already clipped) with colour at opacity alpha. */
function span(canvas: Canvas, xa: number, xb: number, y: number, colour: Rgb, alpha: number): void {
  const { rgb } = canvas;
  const [r, g, b] = colour;
  let i = (y * canvas.width + xa) * 3;
  const end = (y * canvas.width + xb) * 3;
  if (alpha >= 1) {
    for (; i < end; i += 3) {
      rgb[i] = r;
      rgb[i + 1] = g;
      rgb[i + 2] = b;
    }
    return;
  }
  for (; i < end; i += 3) {
    rgb[i] = rgb[i]! + Math.round((r - rgb[i]!) * alpha);
    rgb[i + 1] = rgb[i + 1]! + Math.round((g - rgb[i + 1]!) * alpha);
    rgb[i + 2] = rgb[i + 2]! + Math.round((b - rgb[i + 2]!) * alpha);
  }
}

export interface FillStyle {
  readonly colour: Rgb;
  /** opacity in (0, 1], default 1 (replace) */
  readonly alpha?: number;
  /** grows to include every pixel filled */
  readonly extent?: Extent;
}

/** Fills the axis-aligned rectangle [x0, x1) x [y0, y1) (pixel centres inside, clipped). */
export function fillRect(canvas: Canvas, x0: number, y0: number, x1: number, y1: number, style: FillStyle): void {
  const xa = Math.max(0, Math.ceil(x0 - 0.5));
  const xb = Math.min(canvas.width, Math.ceil(x1 - 0.5));
  const ya = Math.max(0, Math.ceil(y0 - 0.5));
  const yb = Math.min(canvas.height, Math.ceil(y1 - 0.5));
  if (xa >= xb) return;
  const alpha = style.alpha ?? 1;
  for (let y = ya; y < yb; y++) {
    span(canvas, xa, xb, y, style.colour, alpha);
    style.extent?.addSpan(xa, xb, y);
  }
}

/**
 * Fills one or more closed rings under the even-odd rule (a ring inside another is a hole), by
 * scan lines through the pixel centres.
 */
export function fillPolygon(canvas: Canvas, rings: readonly (readonly Point[])[], style: FillStyle): void {
  let minY = Infinity;
  let maxY = -Infinity;
  // edges as flat [x0, y0, x1, y1] with y0 < y1; horizontal edges never cross a scan line
  const edges: number[] = [];
  for (const ring of rings) {
    for (let i = 0; i < ring.length; i++) {
      const [ax, ay] = ring[i]!;
      const [bx, by] = ring[(i + 1) % ring.length]!;
      if (ay === by) continue;
      if (ay < by) edges.push(ax, ay, bx, by);
      else edges.push(bx, by, ax, ay);
      minY = Math.min(minY, ay, by);
      maxY = Math.max(maxY, ay, by);
    }
  }
  const ya = Math.max(0, Math.ceil(minY - 0.5));
  const yb = Math.min(canvas.height, Math.ceil(maxY - 0.5));
  const alpha = style.alpha ?? 1;
  const xs: number[] = [];
  for (let y = ya; y < yb; y++) {
    const yc = y + 0.5;
    xs.length = 0;
    for (let e = 0; e < edges.length; e += 4) {
      const y0 = edges[e + 1]!;
      const y1 = edges[e + 3]!;
      if (yc < y0 || yc >= y1) continue;
      const x0 = edges[e]!;
      xs.push(x0 + ((yc - y0) * (edges[e + 2]! - x0)) / (y1 - y0));
    }
    xs.sort((p, q) => p - q);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const xa = Math.max(0, Math.ceil(xs[k]! - 0.5));
      const xb = Math.min(canvas.width, Math.ceil(xs[k + 1]! - 0.5));
      if (xa >= xb) continue;
      span(canvas, xa, xb, y, style.colour, alpha);
      style.extent?.addSpan(xa, xb, y);
    }
  }
}

/** Points of a regular polygon (or, with enough sides, a circle) of radius r around (cx, cy). */
export function regularPolygon(cx: number, cy: number, r: number, sides: number, rotation = 0): Point[] {
  const points: Point[] = [];
  for (let i = 0; i < sides; i++) {
    const a = rotation + (2 * Math.PI * i) / sides;
    points.push([cx + r * Math.sin(a), cy - r * Math.cos(a)]);
  }
  return points;
}

/** Enough sides that a circle of radius r is off by under a quarter pixel anywhere. */
function circleSides(r: number): number {
  return Math.max(12, Math.ceil(Math.PI / Math.acos(Math.max(0, 1 - 0.25 / Math.max(r, 1)))));
}

/** An ellipse with radii (rx, ry) turned by `rotation` radians. */
export function ellipse(cx: number, cy: number, rx: number, ry: number, rotation = 0): Point[] {
  const sides = circleSides(Math.max(rx, ry));
  const c = Math.cos(rotation);
  const s = Math.sin(rotation);
  const points: Point[] = [];
  for (let i = 0; i < sides; i++) {
    const a = (2 * Math.PI * i) / sides;
    const x = rx * Math.cos(a);
    const y = ry * Math.sin(a);
    points.push([cx + x * c - y * s, cy + x * s + y * c]);
  }
  return points;
}

/** A thick straight stroke from a to b as a quadrilateral. */
export function strokeQuad(a: Point, b: Point, thickness: number): Point[] {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len = Math.hypot(dx, dy) || 1;
  const nx = (-dy / len) * (thickness / 2);
  const ny = (dx / len) * (thickness / 2);
  return [
    [a[0] + nx, a[1] + ny],
    [b[0] + nx, b[1] + ny],
    [b[0] - nx, b[1] - ny],
    [a[0] - nx, a[1] - ny],
  ];
}

/** Points turned by `angle` radians around (cx, cy). */
export function rotate(points: readonly Point[], cx: number, cy: number, angle: number): Point[] {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  return points.map(([x, y]) => [cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c]);
}

/** The colour at pixel (x, y). */
export function pixel(canvas: Canvas, x: number, y: number): Rgb {
  const i = (y * canvas.width + x) * 3;
  return [canvas.rgb[i]!, canvas.rgb[i + 1]!, canvas.rgb[i + 2]!];
}
