/**
 * Analytic FLOP counts (multiply-adds count 2) of PS3's stages, for effective-throughput reports.
 * Only matmul-shaped work is counted: norms, softmax and elementwise ops are a few percent.
 */
import type { VisionConfig } from '../io/config.js';

/** All blocks for `n` query tokens attending to `m` keys (m = n for the low-res pass). */
export function trunkFlops(cfg: VisionConfig, n: number, m: number): number {
  const t = cfg.trunk;
  const D = t.width;
  const perLayer = 2 * n * D * 3 * D + 2 * n * D * D + 2 * 2 * n * D * t.mlpHidden + 2 * 2 * n * m * D;
  return t.depth * perLayer;
}

/** The shallow convnet on the 1512 x 1512 image. */
export function convnetFlops(cfg: VisionConfig): number {
  if (!cfg.highresSelectionFeature) return 0;
  const c = cfg.convnet;
  const g = Math.floor(1512 / c.kernel) ** 2;
  const blocks = c.depth * (2 * g * 49 * c.hidden + 2 * 2 * g * c.hidden * 4 * c.hidden);
  return 2 * g * 3 * c.kernel * c.kernel * c.hidden + blocks + 2 * g * c.hidden * c.out;
}

/** Patch embedding of `n` patches. */
export function embedFlops(cfg: VisionConfig, n: number): number {
  return 2 * n * 3 * cfg.trunk.patchSize ** 2 * cfg.trunk.width;
}

/** The selection head: its MLP over the low-res tokens. */
export function selectionFlops(cfg: VisionConfig): number {
  const n0 = (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
  const L = cfg.trunk.width * cfg.selectBasedOnLayer.length;
  // the projection's fc2 is computed for the first scale's D outputs only (the reference uses them for every scale)
  return 2 * n0 * L * L + 2 * n0 * L * cfg.trunk.width;
}

/**
 * S² (Shi et al., 2024), the baseline PS3 is compared with: the image at every scale cut into
 * tiles of the low-res size, every tile through the whole trunk. Returns the tile count and the
 * trunk FLOPs, which grow with resolution².
 */
export function s2Flops(cfg: VisionConfig): { tiles: number; flops: number } {
  const s0 = cfg.scales[0]!;
  const tiles = cfg.scales.reduce((a, s) => a + Math.ceil(s / s0) ** 2, 0);
  const n0 = (s0 / cfg.trunk.patchSize) ** 2;
  return { tiles, flops: tiles * (trunkFlops(cfg, n0, n0) + embedFlops(cfg, n0)) };
}
