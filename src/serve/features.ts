/**
 * What an encode writes as features: the named arrays of `ps3 encode`'s `.safetensors` (last
 * hidden state, pooled output, selection probabilities and maps). Shared by the command, the
 * server's `format=safetensors` and the queue's workers, so all three write the same bytes.
 */
import type { tf } from '../tensor/engine.js';
import type { NamedArray } from '../io/safetensors.js';
import type { EncodeOutput } from '../model/encoder.js';

export async function featureArrays(out: EncodeOutput): Promise<Map<string, NamedArray>> {
  const m = new Map<string, NamedArray>();
  const add = async (name: string, t: tf.Tensor): Promise<void> => void m.set(name, { shape: t.shape, data: (await t.data()) as Float32Array });
  await add('last_hidden_state', out.lastHiddenState);
  await add('pooled_output', out.pooledOutput);
  for (const [i, p] of out.selectionProbs.entries()) await add(`selection_probs.${i}`, p);
  for (const [i, p] of out.bottomupSelectionProbs.entries()) await add(`bottomup_selection_probs.${i}`, p);
  if (out.topdownSelectionProbs) for (const [i, p] of out.topdownSelectionProbs.entries()) await add(`topdown_selection_probs.${i}`, p);
  out.selectionMaps.forEach((s, i) => m.set(`selection_maps.${i}`, { shape: [1, s.height, s.width], data: Int32Array.from(s.data) }));
  return m;
}
