/**
 * Decoy looks: training questions that read another question's look of the same scene.
 *
 * Every cached look of the qa task has its question's evidence box forced first, so an LM
 * trained on them alone learns that the look always shows what is asked about, and at test time,
 * when the prompt head's look misses the evidence, it answers from what the look does show. A
 * decoy sample keeps its question, options, answer and selection targets, but its high-res tokens
 * are those of another question of the same scene: a look aimed at another object, as a look that
 * misses is. The LM then has to tell whether the look shows the object it is asked about, and
 * fall back on the low-res tokens when it does not. Decoys cost no cache: the looks are there.
 *
 * Whether sample k of a run is a decoy, and whose look it reads, are functions of the seed and k,
 * so a resumed run draws the same decoys.
 */
import { sampleSeed } from '../train/sampleStream.js';
import type { TrainQuestion } from './trainData.js';

/** image -> indices of its qa questions (those with options: a caption has no evidence look to swap) */
export function qaLooksByImage(questions: readonly TrainQuestion[]): Map<number, number[]> {
  const byImage = new Map<number, number[]>();
  for (const q of questions) {
    if (q.target !== undefined) continue;
    const list = byImage.get(q.image) ?? [];
    list.push(q.index);
    byImage.set(q.image, list);
  }
  return byImage;
}

/**
 * Sample k's question, reading another question's look (`look`) with probability `fraction` when
 * its scene has another qa question; otherwise the question as it is.
 */
export function withDecoyLook(q: TrainQuestion, looks: ReadonlyMap<number, readonly number[]>, seed: number, k: number, fraction: number): TrainQuestion {
  if (fraction <= 0 || q.target !== undefined || sampleSeed(seed ^ 0x6465636f, k) / 2 ** 32 >= fraction) return q;
  const others = (looks.get(q.image) ?? []).filter((i) => i !== q.index);
  if (others.length === 0) return q;
  return { ...q, look: others[sampleSeed(seed ^ 0x6c6f6f6b, k) % others.length]! };
}
