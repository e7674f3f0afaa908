/**
 * The reading head on the tokens of a real look. `sceneReadingSet` reads each glyph's block alone
 * (its tokens attend only to each other, as the reading stage trains them); in the encoder's own
 * pass the same cells also attend to the low-res tokens and to the rest of the look, and those are
 * the tokens an LM is given. Here each held-out scene is encoded with a look whose first cells are
 * forced onto its glyphs' blocks on the top scale (as a caption's region is forced; as many blocks
 * a look as its top-scale budget takes, more looks where a scene has more), the rest of the budget
 * filled as the look fills it, and each glyph's block is read from its look's final tokens.
 */
import { tf } from '../tensor/engine.js';
import { normalise } from '../io/pixels.js';
import { imageProcessor, type PS3Model } from '../model/load.js';
import { encodeImage, withResizes, type SelectionMap } from '../model/encoder.js';
import { gridAtScale, packForced, topBudget, topCellsForced } from '../model/selection.js';
import { linear } from '../model/layers.js';
import { finalNorm } from '../model/vit.js';
import type { Weights } from '../model/weights.js';
import { renderScene } from '../data/scene/render.js';
import { sceneRng } from '../data/synth.js';
import { sceneGlyphs, type SceneGlyph } from '../data/sceneGlyphs.js';
import { blockCells, READING_HEAD } from './reading.js';

export interface LookReading {
  readonly accuracy: number;
  /** whether each glyph was read right, in `sceneReadingSet`'s order (scene by scene, as `sceneGlyphs` lists them) */
  readonly correct: boolean[];
  readonly glyphs: number;
  /** high-res tokens in each look (the median) */
  readonly lookTokens: number;
}

/** Rows of the cells `cells` of high-res scale `scale` (0 = the first high-res scale) among a look's high-res tokens (scale by scale, row-major). */
export function lookRows(maps: readonly SelectionMap[], scale: number, cells: Int32Array): Int32Array {
  let offset = 0;
  for (let s = 0; s < scale; s++) offset += maps[s]!.data.reduce((a, v) => a + (v ? 1 : 0), 0);
  const m = maps[scale]!;
  const rank = new Int32Array(m.data.length).fill(-1);
  let row = offset;
  for (let j = 0; j < m.data.length; j++) if (m.data[j]) rank[j] = row++;
  return cells.map((c) => {
    if (rank[c]! < 0) throw new Error(`lookRows: cell ${c} of scale ${scale + 1} is not in the look`);
    return rank[c]!;
  });
}

/**
 * Scenes `seed`, 0 .. scenes - 1, each encoded with a look forced onto its one-character labels'
 * blocks of `side` px on the top scale; the head reads each block's mean final token.
 */
export async function sceneReadingInLook(model: PS3Model, w: Weights, seed: number, scenes: number, side: number, onScene?: (done: number) => void): Promise<LookReading> {
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const P = cfg.trunk.patchSize;
  const cells = side / P;
  const top = cfg.scales.length - 2;
  const [, gw] = gridAtScale(cfg, S, S, cfg.scales.length - 1);
  const n0 = gridAtScale(cfg, S, S, 0).reduce((a, b) => a * b, 1);
  const { mean, std } = imageProcessor(model);
  const scratch = new Float32Array(3 * S * S);
  const correct: boolean[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < scenes; i++) {
    const scene = renderScene(sceneRng(seed, i), { width: S, height: S });
    const glyphs: SceneGlyph[] = sceneGlyphs(scene, P, cells);
    const blocks = glyphs.map((g) => blockCells(g.row0, g.col0, cells, gw));
    const pixels = glyphs.length ? withResizes(cfg, { data: normalise({ data: scene.rgb, width: S, height: S }, mean, std, scratch), batch: 1, height: S, width: S }) : null;
    const predicted = new Int32Array(glyphs.length);
    for (const group of packForced(blocks.map((b) => b.length), topBudget(cfg))) {
      const out = await encodeImage(w, model.config, pixels!, { gtPerScale: topCellsForced(cfg, S, group.flatMap((k) => [...blocks[k]!])) });
      const best = tf.tidy(() => {
        const all = tf.reshape(finalNorm(w, cfg.trunk, out.lastHiddenState), [-1, cfg.trunk.width]); // [n0 + chosen, D]
        const means = group.map((k) => tf.mean(tf.gather(all, tf.tensor1d(lookRows(out.selectionMaps, top, blocks[k]!).map((r) => n0 + r), 'int32')), 0));
        return tf.argMax(linear(w, READING_HEAD, tf.stack(means)), 1); // [group, D] -> [group]
      });
      const read = best.dataSync();
      group.forEach((k, j) => (predicted[k] = read[j]!));
      best.dispose();
      sizes.push(out.lastHiddenState.shape[1]! - n0);
      tf.dispose([out.lastHiddenState, out.pooledOutput, ...out.hiddenStates, ...out.selectionProbs, ...out.bottomupSelectionProbs, ...(out.topdownSelectionProbs ?? [])]);
    }
    glyphs.forEach((g, k) => correct.push(predicted[k] === g.char));
    onScene?.(i + 1);
  }
  sizes.sort((a, b) => a - b);
  return {
    accuracy: correct.length ? correct.filter(Boolean).length / correct.length : NaN,
    correct,
    glyphs: correct.length,
    lookTokens: sizes.length ? sizes[Math.floor(sizes.length / 2)]! : 0,
  };
}
