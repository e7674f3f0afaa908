/**
 * `format_features_into_feature_maps`: scatter the encoder's tokens back into per-scale maps,
 * channels first — the low-res grid (always full), then each high-res grid with zeros where no
 * patch was chosen.
 */
import { tf } from '../tensor/engine.js';
import type { SelectionMap } from './encoder.js';

/** tokens [B, N0 + chosen, C] -> [[B, C, g0, g0], [B, C, gh_1, gw_1], ...] */
export function featureMaps(tokens: tf.Tensor, maps: readonly SelectionMap[], lowResGrid: number): tf.Tensor[] {
  const [B, N, C] = tokens.shape as [number, number, number];
  const grids = [{ height: lowResGrid, width: lowResGrid, data: new Uint8Array(B * lowResGrid * lowResGrid).fill(1) }, ...maps];
  const perImage = grids.reduce((a, g) => a + g.height * g.width, 0);
  // for every slot of the full layout, the token row that fills it (or -1 for a zero)
  const rows = new Int32Array(B * perImage).fill(-1);
  for (let b = 0; b < B; b++) {
    let next = b * N;
    let slot = b * perImage;
    for (const g of grids) {
      const size = g.height * g.width;
      for (let j = 0; j < size; j++, slot++) if (g.data[b * size + j]) rows[slot] = next++;
    }
    if (next !== (b + 1) * N) throw new RangeError(`featureMaps: image ${b} has ${N} tokens but its maps choose ${next - b * N}`);
  }
  return tf.tidy(() => {
    const padded = tf.concat([tf.reshape(tokens, [B * N, C]), tf.zeros([1, C])], 0);
    const full = tf.reshape(tf.gather(padded, tf.tensor1d(rows.map((r) => (r < 0 ? B * N : r)), 'int32')), [B, perImage, C]);
    let at = 0;
    return grids.map((g) => {
      const part = tf.slice(full, [0, at, 0], [B, g.height * g.width, C]);
      at += g.height * g.width;
      return tf.transpose(tf.reshape(part, [B, g.height, g.width, C]), [0, 3, 1, 2]);
    });
  });
}
