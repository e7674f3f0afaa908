/**
 * The hard-negative term (not the reference's): each local (box, caption) pair also meets K
 * captions that differ from its own by one word of a group — another colour, shape, letter or
 * digit ("an orange sign reading o 5" against "… reading o 3") — and the box's feature must
 * score its own caption above them. In a batch of a few images the contrastive term's negatives
 * are other objects, which nearly always differ in colour, so colour alone wins it and the shape
 * and characters the questions ask about are never needed; a caption one word away makes them
 * the whole difference (NegCLIP's swapped captions, Yuksekgonul et al., ICLR 2023).
 *
 * The negatives are drawn when the batch is collated, by a generator seeded from the batch's own
 * token ids, so a run draws the same ones again on --resume and whatever its --threads.
 */
import { tf } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { fnv1a, Rng } from '../rng.js';
import type { TextTokenizer } from '../io/tokenizer.js';

/** The term's settings, ids resolved: groups of token ids whose members stand in for each other. */
export interface HardNegativeSpec {
  /** weight of the term in the total loss */
  readonly weight: number;
  /** negatives a pair (K) */
  readonly count: number;
  readonly groups: readonly (readonly number[])[];
}

/** A batch's negatives: K captions a row, rows in the order of the captions they perturb (K = valid.length / rows). */
export interface HardNegativeLabels {
  /** [B * K, N] ids for the batch's own captions, and whether each could be drawn [B * K] */
  readonly text: Int32Array;
  readonly valid: Float32Array;
  /** [R * K, N] and [R * K] for the other regions' captions */
  readonly regionText?: Int32Array;
  readonly regionValid?: Float32Array;
}

/**
 * Word groups to token ids: each word must be one id of the tokenizer's vocabulary, not its
 * unknown id. The ids an empty text gets (padding, end-of-text) are not a word's.
 */
export function resolveGroups(tokenizer: TextTokenizer, words: readonly (readonly string[])[]): number[][] {
  const special = new Set(tokenizer.encode(['']));
  const content = (text: string): number[] => [...tokenizer.encode([text])].filter((id) => !special.has(id));
  // a word tokenizer maps any word it does not know to one id: this one
  const nonsense = content('qxzqxzqxz');
  const unknown = nonsense.length === 1 ? nonsense[0] : undefined;
  const groups = words.map((group) =>
    group.map((word) => {
      const ids = content(word);
      if (ids.length !== 1 || ids[0] === unknown) throw new UserError(`--hard-negatives: the word "${word}" is not one known token of the tokenizer (ids ${ids.join(' ') || 'none'})`);
      return ids[0]!;
    }),
  );
  for (const g of groups) if (new Set(g).size < 2) throw new UserError(`--hard-negatives: a word group needs two or more distinct tokens, got ${new Set(g).size}`);
  return groups;
}

/**
 * K negatives of each caption row of `ids` [rows, N]: each swaps one position whose id is in a
 * group for another id of that group; the K negatives of a row take different positions while the
 * caption has enough. A row with no position in any group gets its own caption back, marked
 * invalid (the term skips it), as do the rows `skip` marks (global captions).
 */
export function perturbCaptions(ids: Int32Array, N: number, count: number, groups: readonly (readonly number[])[], rng: Rng, skip?: Float32Array): { text: Int32Array; valid: Float32Array } {
  const rows = ids.length / N;
  const groupOf = new Map<number, readonly number[]>();
  for (const g of groups) for (const id of g) groupOf.set(id, g);
  const text = new Int32Array(rows * count * N);
  const valid = new Float32Array(rows * count);
  for (let r = 0; r < rows; r++) {
    const row = ids.subarray(r * N, (r + 1) * N);
    const positions = skip?.[r] ? [] : [...row.keys()].filter((i) => groupOf.has(row[i]!));
    // a fresh order of the positions, taken in turn (and again from the start past its end)
    rng.shuffle(positions);
    for (let k = 0; k < count; k++) {
      const out = text.subarray((r * count + k) * N, (r * count + k + 1) * N);
      out.set(row);
      if (!positions.length) continue;
      const at = positions[k % positions.length]!;
      const group = groupOf.get(row[at]!)!;
      out[at] = rng.pick(group.filter((id) => id !== row[at]));
      valid[r * count + k] = 1;
    }
  }
  return { text, valid };
}

/** A batch's negatives: its own captions' (global rows skipped) and its regions'. */
export function drawNegatives(spec: HardNegativeSpec, text: Int32Array, isGlobal: Float32Array, regionText?: Int32Array): HardNegativeLabels {
  const N = text.length / isGlobal.length;
  // seeded by the batch's own ids: the same batch draws the same negatives
  const rng = new Rng(fnv1a(regionText ? [...text, ...regionText] : text));
  const own = perturbCaptions(text, N, spec.count, spec.groups, rng, isGlobal);
  const regions = regionText ? perturbCaptions(regionText, N, spec.count, spec.groups, rng) : null;
  return { ...own, ...(regions ? { regionText: regions.text, regionValid: regions.valid } : {}) };
}

/**
 * The term: for each pair p with a valid negative, -log of its own caption's softmax share
 * among itself and its negatives, the logits e^t cos as the contrastive term's (its bias cancels).
 * `image` and `text` [P, D] L2-normalised pairs; `negatives` [P * K, D] L2-normalised, pair-major;
 * `valid` [P * K]. A batch without a valid negative gives 0.
 */
export function hardNegativeLoss(image: tf.Tensor, text: tf.Tensor, negatives: tf.Tensor, valid: Float32Array, logitScale: tf.Tensor): tf.Tensor {
  const P = image.shape[0]!;
  const K = valid.length / P;
  const rows = [...Array(P).keys()].filter((p) => valid.subarray(p * K, (p + 1) * K).some((v) => v > 0));
  if (!rows.length) return tf.scalar(0);
  return tf.tidy(() => {
    const scale = tf.exp(tf.reshape(logitScale, []));
    const pick = tf.tensor1d(rows, 'int32');
    const x = tf.gather(image, pick); // [P', D]
    const own = tf.sum(tf.mul(x, tf.gather(text, pick)), 1, true); // [P', 1]
    const neg = tf.gather(tf.reshape(negatives, [P, K, -1]), pick); // [P', K, D]
    const negCos = tf.squeeze(tf.matMul(neg, tf.expandDims(x, 2)), [2]); // [P', K]
    // an invalid negative is left out of the softmax
    const mask = tf.tensor2d(Float32Array.from(rows.flatMap((p) => [...valid.subarray(p * K, (p + 1) * K)].map((v) => (v > 0 ? 0 : -1e9)))), [rows.length, K]);
    const logits = tf.concat([tf.mul(own, scale), tf.add(tf.mul(negCos, scale), mask)], 1); // [P', 1 + K]
    return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.squeeze(tf.slice(logits, [0, 0], [-1, 1]), [1])));
  });
}
