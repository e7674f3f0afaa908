/**
 * Region proposals: where an image has detail worth a close-up caption. PS3 pre-trains on local
 * captions of high-resolution regions; for a user's own images we need those regions without a
 * detector, so this is a classic, deterministic edge-density method (same pixels, same boxes):
 *
 *  1. Analysis copy: the image downscaled (PIL bicubic) so its long side is at most 1024 px (never
 *     upscaled); grey = Rec. 601 luma.
 *  2. Sobel gradient magnitude (3 x 3, borders replicated).
 *  3. Edge mask: magnitude at or above half of Otsu's threshold of the magnitude histogram, but
 *     never below 32 (a step of 8 grey levels), so JPEG noise and smooth shading are not edges and
 *     a flat image has none.
 *  4. Morphological closing (dilate, then erode) with a square of radius 1 % of the long side:
 *     the edges of one object or one line of text join into one blob.
 *  5. 8-connected components of the closed mask (union-find) and their bounding boxes.
 *  6. A component over 25 % of the image — a textured photo, where detail is everywhere and
 *     closing joins it all — is cut into a grid of tiles of about a quarter of the long side, each
 *     shrunk to the component's pixels inside it. Boxes under 0.1 % of the image, or under 32
 *     original pixels on a side (too small to say anything about), are dropped.
 *  7. Boxes overlapping with IoU > 0.5 are merged into their union until none do.
 *  8. Ranked: whole components before tiles (an object beats a slice of texture), each by edge
 *     density x area (the edge pixels inside the box, as a fraction of the image's pixels), ties
 *     by position (top, then left); the first K are kept.
 *  9. Mapped back to the original image's pixels, rounded outwards.
 *
 * Boxes are [x0, y0, x1, y1] in pixel-edge coordinates (columns x0..x1-1), in the frame of the
 * RgbImage given, i.e. after EXIF orientation when it came from `decodeImage`.
 */
import { resizeImage, type RgbImage } from '../../io/image.js';
import type { Box } from '../../io/shards.js';

export interface ProposalOptions {
  /** K: at most this many regions */
  readonly maxRegions: number;
  /** long side of the analysis copy (default 1024) */
  readonly analysisSide?: number;
  /** smallest box kept, as a fraction of the image's area (default 0.001) */
  readonly minAreaFraction?: number;
  /** shortest side of a box kept, in original pixels (default 32) */
  readonly minSide?: number;
  /** largest component kept whole, as a fraction of the image's area (default 0.25) */
  readonly maxAreaFraction?: number;
  /** boxes overlapping more than this are merged (default 0.5) */
  readonly mergeIou?: number;
}

export interface Region {
  /** in original pixels */
  readonly box: Box;
  /** edge pixels inside the box as a fraction of the image's pixels (edge density x area) */
  readonly score: number;
}

/** A name for the method, recorded with captions so a change of method is noticed on resume. */
export const PROPOSAL_METHOD = 'edge-density-v1';

/**
 * Otsu's threshold on gradient magnitudes splits strong edges from weak ones, but a weak edge (a
 * car against the road) is still an outline: edges start at half of it, as Canny's automatic
 * low threshold does.
 */
const OTSU_FRACTION = 0.5;
/** Sobel magnitude of a step of 8 grey levels: weaker gradients are never edges. */
const MIN_EDGE_MAGNITUDE = 32;
const CLOSING_RADIUS_FRACTION = 0.01;
const TILE_SIDE_FRACTION = 0.25;
/** Candidates kept (best first) before merging, which is cubic in their number at worst. */
const MAX_CANDIDATES = 256;

type MutableBox = [number, number, number, number];

function analysisCopy(image: RgbImage, side: number): RgbImage {
  const long = Math.max(image.width, image.height);
  if (long <= side) return image;
  const s = side / long;
  return resizeImage(image, Math.max(1, Math.round(image.width * s)), Math.max(1, Math.round(image.height * s)));
}

function luma(image: RgbImage): Float32Array {
  const n = image.width * image.height;
  const grey = new Float32Array(n);
  const d = image.data;
  for (let p = 0; p < n; p++) grey[p] = 0.299 * d[p * 3]! + 0.587 * d[p * 3 + 1]! + 0.114 * d[p * 3 + 2]!;
  return grey;
}

function sobelMagnitude(grey: Float32Array, w: number, h: number): Float32Array {
  const mag = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const up = Math.max(0, y - 1) * w;
    const row = y * w;
    const down = Math.min(h - 1, y + 1) * w;
    for (let x = 0; x < w; x++) {
      const l = Math.max(0, x - 1);
      const r = Math.min(w - 1, x + 1);
      const gx = grey[up + r]! + 2 * grey[row + r]! + grey[down + r]! - grey[up + l]! - 2 * grey[row + l]! - grey[down + l]!;
      const gy = grey[down + l]! + 2 * grey[down + x]! + grey[down + r]! - grey[up + l]! - 2 * grey[up + x]! - grey[up + r]!;
      mag[row + x] = Math.sqrt(gx * gx + gy * gy);
    }
  }
  return mag;
}

/** Otsu's threshold over a 256-bin histogram of [0, max]: values at or above it are the upper class. */
function otsuThreshold(values: Float32Array): number {
  const bins = 256;
  let max = 0;
  for (const v of values) if (v > max) max = v;
  if (max === 0) return Infinity;
  const hist = new Float64Array(bins);
  for (const v of values) hist[Math.min(bins - 1, Math.floor((v / max) * bins))]!++;
  let total = 0;
  let sumAll = 0;
  for (let b = 0; b < bins; b++) {
    total += hist[b]!;
    sumAll += b * hist[b]!;
  }
  let below = 0;
  let sumBelow = 0;
  let best = -1;
  let bestSplit = 0;
  for (let t = 0; t < bins - 1; t++) {
    below += hist[t]!;
    sumBelow += t * hist[t]!;
    const above = total - below;
    if (below === 0 || above === 0) continue;
    const diff = sumBelow / below - (sumAll - sumBelow) / above;
    const between = below * above * diff * diff;
    if (between > best) {
      best = between;
      bestSplit = t;
    }
  }
  return ((bestSplit + 1) * max) / bins;
}

/** Binary dilation by a (2r+1)-square, separably with running counts; outside the image counts as 0. */
function dilate(mask: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const rows = new Uint8Array(w * h);
  const prefix = new Int32Array(Math.max(w, h) + 1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) prefix[x + 1] = prefix[x]! + mask[y * w + x]!;
    for (let x = 0; x < w; x++) rows[y * w + x] = prefix[Math.min(w, x + r + 1)]! > prefix[Math.max(0, x - r)]! ? 1 : 0;
  }
  const out = new Uint8Array(w * h);
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) prefix[y + 1] = prefix[y]! + rows[y * w + x]!;
    for (let y = 0; y < h; y++) out[y * w + x] = prefix[Math.min(h, y + r + 1)]! > prefix[Math.max(0, y - r)]! ? 1 : 0;
  }
  return out;
}

/** Closing; the erosion is the complement's dilation, so blobs touching the border are not eaten. */
function close(mask: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const grown = dilate(mask, w, h, r);
  const eroded = dilate(grown.map((v) => 1 - v), w, h, r);
  return eroded.map((v) => 1 - v);
}

/** Component label (its root pixel) per set pixel, -1 elsewhere; 8-connected union-find. */
function labelComponents(mask: Uint8Array, w: number, h: number): Int32Array {
  const parent = new Int32Array(w * h).fill(-1);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const union = (a: number, b: number): void => {
    const ra = find(a);
    const rb = find(b);
    // the smaller index is the root, so labels do not depend on the order of unions
    if (ra < rb) parent[rb] = ra;
    else if (rb < ra) parent[ra] = rb;
  };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      parent[i] = i;
      if (x > 0 && mask[i - 1]) union(i, i - 1);
      if (y > 0) {
        if (mask[i - w]) union(i, i - w);
        if (x > 0 && mask[i - w - 1]) union(i, i - w - 1);
        if (x < w - 1 && mask[i - w + 1]) union(i, i - w + 1);
      }
    }
  }
  for (let i = 0; i < w * h; i++) if (parent[i]! >= 0) parent[i] = find(i);
  return parent;
}

/** Bounding box of each component, keyed by label. */
function componentBoxes(labels: Int32Array, w: number, h: number): Map<number, MutableBox> {
  const boxes = new Map<number, MutableBox>();
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const label = labels[y * w + x]!;
      if (label < 0) continue;
      const b = boxes.get(label);
      if (b === undefined) boxes.set(label, [x, y, x + 1, y + 1]);
      else {
        if (x < b[0]) b[0] = x;
        if (x + 1 > b[2]) b[2] = x + 1;
        b[3] = y + 1;
      }
    }
  }
  return boxes;
}

/** A too-large component's box cut into a grid of tiles, each shrunk to the component's pixels in it. */
function tiles(box: MutableBox, labels: Int32Array, label: number, w: number, side: number): MutableBox[] {
  const [bx0, by0, bx1, by1] = box;
  const cols = Math.ceil((bx1 - bx0) / side);
  const rows = Math.ceil((by1 - by0) / side);
  const out: MutableBox[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const tx0 = bx0 + Math.floor(((bx1 - bx0) * c) / cols);
      const tx1 = bx0 + Math.floor(((bx1 - bx0) * (c + 1)) / cols);
      const ty0 = by0 + Math.floor(((by1 - by0) * r) / rows);
      const ty1 = by0 + Math.floor(((by1 - by0) * (r + 1)) / rows);
      const t: MutableBox = [Infinity, Infinity, -Infinity, -Infinity];
      for (let y = ty0; y < ty1; y++) {
        for (let x = tx0; x < tx1; x++) {
          if (labels[y * w + x] !== label) continue;
          t[0] = Math.min(t[0], x);
          t[1] = Math.min(t[1], y);
          t[2] = Math.max(t[2], x + 1);
          t[3] = Math.max(t[3], y + 1);
        }
      }
      if (t[2] > t[0]) out.push(t);
    }
  }
  return out;
}

function area(b: Box): number {
  return (b[2] - b[0]) * (b[3] - b[1]);
}

function iou(a: Box, b: Box): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / (area(a) + area(b) - inter);
}

function byPosition(a: Box, b: Box): number {
  return a[1] - b[1] || a[0] - b[0] || a[3] - b[3] || a[2] - b[2];
}

interface Candidate {
  readonly box: MutableBox;
  /** a slice of a too-large component rather than a whole one */
  readonly tile: boolean;
}

/** Replace any pair overlapping by more than `limit` with its union, until no pair does. */
function mergeOverlapping(candidates: readonly Candidate[], limit: number): Candidate[] {
  const out = [...candidates];
  for (let merged = true; merged; ) {
    merged = false;
    for (let i = 0; i < out.length && !merged; i++) {
      for (let j = i + 1; j < out.length && !merged; j++) {
        const a = out[i]!.box;
        const b = out[j]!.box;
        if (iou(a, b) <= limit) continue;
        const box: MutableBox = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
        out[i] = { box, tile: out[i]!.tile && out[j]!.tile };
        out.splice(j, 1);
        merged = true;
      }
    }
  }
  return out;
}

/** Edge pixels in a box from the summed-area table of the edge mask. */
function edgeCounter(edges: Uint8Array, w: number, h: number): (b: Box) => number {
  const sat = new Int32Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let run = 0;
    for (let x = 0; x < w; x++) {
      run += edges[y * w + x]!;
      sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1]! + run;
    }
  }
  const at = (x: number, y: number): number => sat[y * (w + 1) + x]!;
  return ([x0, y0, x1, y1]) => at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0);
}

/** Up to `maxRegions` boxes of detail in `image`, best first (see the method above). */
export function proposeRegions(image: RgbImage, options: ProposalOptions): Region[] {
  const { maxRegions } = options;
  if (!Number.isInteger(maxRegions) || maxRegions < 0) throw new RangeError(`maxRegions must be a whole number >= 0, got ${maxRegions}`);
  if (maxRegions === 0) return [];
  const small = analysisCopy(image, options.analysisSide ?? 1024);
  const { width: w, height: h } = small;
  const pixels = w * h;
  const magnitude = sobelMagnitude(luma(small), w, h);
  const threshold = Math.max(OTSU_FRACTION * otsuThreshold(magnitude), MIN_EDGE_MAGNITUDE);
  const edgeMask = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) edgeMask[p] = magnitude[p]! >= threshold ? 1 : 0;
  const long = Math.max(w, h);
  const labels = labelComponents(close(edgeMask, w, h, Math.max(1, Math.round(long * CLOSING_RADIUS_FRACTION))), w, h);

  const minArea = (options.minAreaFraction ?? 0.001) * pixels;
  const maxArea = (options.maxAreaFraction ?? 0.25) * pixels;
  const tileSide = Math.max(1, Math.round(long * TILE_SIDE_FRACTION));
  const candidates: Candidate[] = [];
  for (const [label, box] of componentBoxes(labels, w, h)) {
    if (area(box) > maxArea) candidates.push(...tiles(box, labels, label, w, tileSide).map((t) => ({ box: t, tile: true })));
    else candidates.push({ box, tile: false });
  }
  const edgeCount = edgeCounter(edgeMask, w, h);
  const rank = (a: Candidate, b: Candidate): number => Number(a.tile) - Number(b.tile) || edgeCount(b.box) - edgeCount(a.box) || byPosition(a.box, b.box);
  const sx = image.width / w;
  const sy = image.height / h;
  const minSide = options.minSide ?? 32;
  const big = (b: Box): boolean => area(b) >= minArea && (b[2] - b[0]) * sx >= minSide && (b[3] - b[1]) * sy >= minSide;
  const kept = candidates.filter((c) => big(c.box) && edgeCount(c.box) > 0).sort(rank).slice(0, MAX_CANDIDATES);
  const merged = mergeOverlapping(kept.sort((a, b) => byPosition(a.box, b.box)), options.mergeIou ?? 0.5)
    .sort(rank)
    .slice(0, maxRegions)
    .map((c) => c.box);

  return merged.map((b) => ({
    box: [
      Math.max(0, Math.floor(b[0] * sx)),
      Math.max(0, Math.floor(b[1] * sy)),
      Math.min(image.width, Math.ceil(b[2] * sx)),
      Math.min(image.height, Math.ceil(b[3] * sy)),
    ],
    score: edgeCount(b) / pixels,
  }));
}
