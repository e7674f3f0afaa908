/**
 * Vision tokens for the LM, per method, as merged rows [m, 4 Dv] ready for the projector
 * (projector.ts). Every method's tokens are the trunk's final-normed last hidden states.
 *
 *  - `ps3`: low-res tokens (merged over the full low-res grid), then the chosen high-res tokens,
 *    scale by scale, merged where a whole 2 x 2 cell was chosen;
 *  - `lowres`: the low-res tokens only;
 *  - `anyres`: every tile's tokens (each tile's grid merged), then the global low-res view's;
 *  - `s2`: S²'s multi-scale map: at each scale the tiles' feature maps are stitched, area-pooled
 *    to the low-res grid, and the scales' channels put side by side ([g0², D x scales]; a scale
 *    above the resolution asked for is zeros), then merged.
 */
import { tf } from '../tensor/engine.js';
import { resize2d } from '../tensor/ops.js';
import { UserError } from '../errors.js';
import { encodeImage, lowRes, type EncodeOptions, type EncodeOutput, type Pixels, type SelectionMap } from '../model/encoder.js';
import type { PS3Model } from '../model/load.js';
import { finalNorm } from '../model/vit.js';
import { anyresGrid, cutTiles, defaultTileBatch, s2Grids, tileTokens, type EncodeMethod } from '../model/baselines.js';
import { mergeTokens, type TokenGrid } from './projector.js';

export interface VisualTokens {
  /** [m, 4 Dv], for the method's projector */
  readonly merged: tf.Tensor;
  /** tokens through the PS3 trunk */
  readonly trunkTokens: number;
}

/** The low-res grid side. */
export function lowResGrid(model: PS3Model): number {
  return model.config.vision.scales[0]! / model.config.vision.trunk.patchSize;
}

/** Final-normed low-res tokens [N0, D] of one image; `keep` hidden states come back too (layer -> [1, N0, D]). */
export function lowResTokens(model: PS3Model, pixels: Pixels, keep: readonly number[] = []): { tokens: tf.Tensor; kept: Map<number, tf.Tensor> } {
  const cfg = model.config.vision;
  const low = lowRes(model.weights, cfg, pixels, false);
  const last = low.hiddenStates[low.hiddenStates.length - 1]!;
  const tokens = tf.tidy(() => tf.reshape(finalNorm(model.weights, cfg.trunk, last), [-1, cfg.trunk.width]));
  const kept = new Map<number, tf.Tensor>();
  low.hiddenStates.forEach((h, i) => (keep.includes(i) ? kept.set(i, h) : h.dispose()));
  return { tokens, kept };
}

/** The token grids of a PS3 output: the low-res grid, then each scale's chosen cells. */
export function ps3Grids(model: PS3Model, maps: readonly SelectionMap[]): TokenGrid[] {
  const g0 = lowResGrid(model);
  const grids: TokenGrid[] = [{ height: g0, width: g0, offset: 0, ids: null }];
  let offset = g0 * g0;
  for (const m of maps) {
    const ids: number[] = [];
    for (let j = 0; j < m.height * m.width; j++) if (m.data[j]) ids.push(j);
    grids.push({ height: m.height, width: m.width, offset, ids });
    offset += ids.length;
  }
  return grids;
}

/** Only the high-res grids of `ps3Grids`, offsets counted from the first high-res token. */
export function highResGrids(model: PS3Model, maps: readonly SelectionMap[]): TokenGrid[] {
  const n0 = lowResGrid(model) ** 2;
  return ps3Grids(model, maps).slice(1).map((g) => ({ ...g, offset: g.offset - n0 }));
}

/** A look cut to a region: of the chosen cells, those inside the region's per-scale box targets (`boxTargets`). */
export function regionMaps(chosen: readonly SelectionMap[], targets: readonly Float32Array[]): SelectionMap[] {
  return chosen.map((m, s) => ({ ...m, data: m.data.map((v, j) => (v && targets[s]![j]! > 0 ? 1 : 0)) }));
}

/** Rows of a look's high-res tokens (chosen cells, scale by scale, row-major) whose cells `kept` keeps. */
export function keptRows(chosen: readonly SelectionMap[], kept: readonly SelectionMap[]): Int32Array {
  const rows: number[] = [];
  let row = 0;
  chosen.forEach((m, s) => {
    for (let j = 0; j < m.data.length; j++) {
      if (!m.data[j]) continue;
      if (kept[s]!.data[j]) rows.push(row);
      row += 1;
    }
  });
  return Int32Array.from(rows);
}

/**
 * PS3's encode with a prompt, merged for the LM; the encode's output is returned for its maps and
 * probabilities (the caller disposes it). `region` (per-scale box targets) keeps only the look's
 * tokens inside that box, after the low-res ones, as the captions task reads a region.
 */
export async function ps3Visual(model: PS3Model, pixels: Pixels, options: EncodeOptions, region?: readonly Float32Array[]): Promise<VisualTokens & { out: EncodeOutput }> {
  const cfg = model.config.vision;
  const out = await encodeImage(model.weights, model.config, pixels, { ...options, outputHiddenStates: false });
  const n0 = lowResGrid(model) ** 2;
  const maps = region ? regionMaps(out.selectionMaps, region) : out.selectionMaps;
  const merged = tf.tidy(() => {
    const all = tf.reshape(finalNorm(model.weights, cfg.trunk, out.lastHiddenState), [-1, cfg.trunk.width]);
    // [n0 + chosen, D] -> [n0 + kept, D]
    const tokens = region ? tf.gather(all, tf.tensor1d(Int32Array.from([...Array(n0).keys(), ...[...keptRows(out.selectionMaps, maps)].map((r) => n0 + r)]), 'int32')) : all;
    return mergeTokens(tokens, ps3Grids(model, maps));
  });
  return { merged, trunkTokens: out.lastHiddenState.shape[1]!, out };
}

/** Merged tokens of a method that does not depend on the question (lowres, anyres, s2). */
export async function baselineVisual(model: PS3Model, pixels: Pixels, method: Exclude<EncodeMethod, 'ps3'>, options: { resolution?: number; tileBatch?: number } = {}): Promise<VisualTokens> {
  const cfg = model.config.vision;
  const s0 = cfg.scales[0]!;
  const g0 = lowResGrid(model);
  const D = cfg.trunk.width;
  const R = options.resolution ?? Math.max(pixels.height, pixels.width);
  if (R < s0) throw new UserError(`resolution ${R} is below the low-res scale ${s0}`);
  const batch = options.tileBatch ?? defaultTileBatch(cfg);
  const full = (n: number): TokenGrid[] => Array.from({ length: n }, (_, t) => ({ height: g0, width: g0, offset: t * g0 * g0, ids: null }));
  const low = lowResTokens(model, pixels).tokens;
  if (method === 'lowres') {
    const merged = mergeTokens(low, full(1));
    low.dispose();
    return { merged, trunkTokens: g0 * g0 };
  }
  if (method === 'anyres') {
    const grid = anyresGrid(cfg, pixels.height, pixels.width, R);
    const tiles = grid.rows * grid.cols;
    const local = await tileTokens(model, cutTiles(pixels, s0, grid), tiles, batch);
    const merged = tf.tidy(() => mergeTokens(tf.concat([tf.reshape(local, [-1, D]), low], 0), full(tiles + 1)));
    tf.dispose([local, low]);
    return { merged, trunkTokens: (tiles + 1) * g0 * g0 };
  }
  // s2
  const perScale: tf.Tensor[] = [];
  let trunkTokens = 0;
  const grids = new Map(s2Grids(cfg, pixels.height, pixels.width, R).map((s) => [s.scale, s.grid]));
  for (const scale of cfg.scales) {
    const grid = grids.get(scale);
    if (!grid) {
      perScale.push(tf.zeros([g0 * g0, D]));
      continue;
    }
    const count = grid.rows * grid.cols;
    trunkTokens += count * g0 * g0;
    if (scale === s0 && count === 1) {
      perScale.push(low.clone());
      continue;
    }
    const t = await tileTokens(model, cutTiles(pixels, s0, grid), count, batch); // [1, count * N0, D]
    perScale.push(
      tf.tidy(() => {
        // tiles row-major, each g0 x g0 -> one map [rows * g0, cols * g0, D] -> area-pooled to g0 x g0
        const stitched = tf.reshape(tf.transpose(tf.reshape(t, [grid.rows, grid.cols, g0, g0, D]), [0, 2, 1, 3, 4]), [grid.rows * g0, grid.cols * g0, D]);
        return tf.reshape(resize2d(stitched, 0, g0, g0, 'area'), [g0 * g0, D]);
      }),
    );
    t.dispose();
  }
  const merged = tf.tidy(() => mergeTokens(tf.concat(perScale, 1), full(1)));
  tf.dispose([...perScale, low]);
  return { merged, trunkTokens };
}
