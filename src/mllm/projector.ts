/**
 * The projector from vision tokens to the LM: 2 x 2 token merging (four neighbours' channels
 * side by side, [m, 4 Dv]), then LayerNorm -> Linear -> GELU -> Linear to the LM width.
 *
 * Merging follows VILA-HD: on a high-res scale a 2 x 2 cell is kept only when all four of its
 * patches were chosen (a partly chosen cell is dropped); on a fully seen grid (low-res, a tile,
 * S²'s pooled map) every cell is kept and the cells past an odd edge are zero-filled.
 */
import { tf } from '../tensor/engine.js';
import { layerNorm, mlp } from '../model/layers.js';
import type { Weights } from '../model/weights.js';
import type { Box } from '../io/shards.js';

/** Tokens on one grid: `ids[j]` is the row-major grid cell of token `offset + j`. */
export interface TokenGrid {
  readonly height: number;
  readonly width: number;
  readonly offset: number;
  /** grid cells of the tokens, ascending; all cells in order when null */
  readonly ids: ArrayLike<number> | null;
}

/**
 * The gather plan of a 2 x 2 merge: for each kept cell the rows of its four tokens (top-left,
 * top-right, bottom-left, bottom-right), `zeroRow` where a fully seen grid runs past its edge.
 */
export function mergePlan(grids: readonly TokenGrid[], zeroRow: number): Int32Array {
  const rows: number[] = [];
  for (const g of grids) {
    const at = new Int32Array(g.height * g.width).fill(-1);
    if (g.ids === null) for (let c = 0; c < at.length; c++) at[c] = g.offset + c;
    else for (let j = 0; j < g.ids.length; j++) at[g.ids[j]!] = g.offset + j;
    const full = g.ids === null;
    for (let r = 0; r < g.height; r += 2) {
      for (let c = 0; c < g.width; c += 2) {
        const cell = [[r, c], [r, c + 1], [r + 1, c], [r + 1, c + 1]].map(([y, x]) => (y! < g.height && x! < g.width ? at[y! * g.width + x!]! : -2));
        if (full) rows.push(...cell.map((i) => (i < 0 ? zeroRow : i)));
        else if (cell.every((i) => i >= 0)) rows.push(...cell);
      }
    }
  }
  return Int32Array.from(rows);
}

/** A span [a, b) of grid cells widened to whole 2 x 2 merge cells, within `size`. */
export function mergeSpan([a, b]: readonly [number, number], size = Infinity): [number, number] {
  return [a - (a % 2), Math.min(size, b + (b % 2))];
}

/**
 * The cells of a gh x gw grid of `patch`-px patches that a pixel box touches, widened to whole
 * 2 x 2 merge cells: the block whose every token reaches the LM when all of it is chosen.
 */
export function mergeBlock(box: Box, patch: number, gh: number, gw: number): { rows: [number, number]; cols: [number, number] } {
  return {
    rows: mergeSpan([Math.max(0, Math.floor(box[1] / patch)), Math.ceil(box[3] / patch)], gh),
    cols: mergeSpan([Math.max(0, Math.floor(box[0] / patch)), Math.ceil(box[2] / patch)], gw),
  };
}

/** The pixel box of a block of cells [rows) x [cols) of `patch`-px patches. */
export function blockBox(block: { readonly rows: readonly [number, number]; readonly cols: readonly [number, number] }, patch: number): [number, number, number, number] {
  return [block.cols[0] * patch, block.rows[0] * patch, block.cols[1] * patch, block.rows[1] * patch];
}

/** tokens [n, Dv] -> merged [m, 4 Dv] by `mergePlan`. */
export function mergeTokens(tokens: tf.Tensor, grids: readonly TokenGrid[]): tf.Tensor {
  return tf.tidy(() => {
    const [n, D] = tokens.shape as [number, number];
    const plan = mergePlan(grids, n);
    if (plan.length === 0) return tf.zeros([0, 4 * D]);
    const padded = tf.concat([tokens, tf.zeros([1, D])], 0);
    return tf.reshape(tf.gather(padded, tf.tensor1d(plan, 'int32')), [plan.length / 4, 4 * D]);
  });
}

/** merged [m, 4 Dv] -> LM inputs [m, W]. */
export function project(w: Weights, method: string, merged: tf.Tensor): tf.Tensor {
  return tf.tidy(() => mlp(w, `${method}.projector`, layerNorm(w, `${method}.projector.pre_norm`, merged, 1e-5)));
}

/** The prompt head: LM state [1, W] at the end of the question -> PS3's top-down prompt [1, D]. */
export function promptHead(w: Weights, state: tf.Tensor): tf.Tensor {
  return tf.tidy(() => mlp(w, 'ps3.prompt_head', layerNorm(w, 'ps3.prompt_head.pre_norm', state, 1e-5)));
}
