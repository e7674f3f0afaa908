/**
 * Does a VILA-HD LM read the image? On held-out scenes, each of a few local captions (the captions
 * task's samples, src/mllm/trainData.ts: ps3's look is the caption's region) is scored by the
 * method's LM teacher-forced, once with its own scene's visual tokens and once with another
 * scene's (the next scene's sample of the same index): the mean negative log-likelihood of its
 * words, and the share of words whose next-token guess is right — over all words and over the
 * words that name what is seen (colours, shapes, characters, counts). An LM that ignores the
 * image scores the same on both; the gap is what it reads. With the glyphs task the samples are
 * the scenes' one-character labels and their signs, each asked of its block's tokens (trainData.ts
 * `glyphSamples`): a label's first word, the character, is what is read, and a sign is read when
 * every character of its code is.
 */
import { tf } from '../tensor/engine.js';
import type { NamedArray } from '../io/safetensors.js';
import type { EncodeMethod } from '../model/baselines.js';
import { COLOUR_NAMES } from '../data/scene/colours.js';
import { SHAPES, PLURAL } from '../data/scene/shapes.js';
import { NUMBER_WORDS } from '../data/scene/grammar.js';
import { wordPieces } from '../data/wordTokenizer.js';
import type { VilaHd } from '../mllm/model.js';
import { lmConfigOf } from '../mllm/config.js';
import { answerRows, sampleVisual } from '../mllm/objective.js';
import { lmLogits, logSoftmax } from '../mllm/lm.js';
import { imageSamples, type Scratch, type TrainQuestion } from '../mllm/trainData.js';

export interface CaptionScores {
  /** mean over captions of the mean negative log-likelihood of its words and [EOS] */
  readonly nll: number;
  /** share of all caption words (and [EOS]) the LM's top next-token guess gets right */
  readonly word_accuracy: number;
  /** the same over the words that name what is seen */
  readonly content_accuracy: number;
  /** the same for each kind of those words (NaN for a kind the captions never name) */
  readonly by_kind: Record<ContentKind, number>;
  /** share of captions whose first word the LM guesses (glyphs: the character read) */
  readonly first_word_accuracy: number;
  /** share of captions whose every word (not [EOS]) the LM guesses: a sign's whole code */
  readonly exact_accuracy: number;
  /** the first-word and exact shares of each category of sample (glyphs: labels and signs) */
  readonly by_category: Record<string, { readonly count: number; readonly first_word_accuracy: number; readonly exact_accuracy: number }>;
}

export const CONTENT_KINDS = ['colour', 'shape', 'character', 'count'] as const;
export type CaptionTask = 'captions' | 'glyphs';
export type ContentKind = (typeof CONTENT_KINDS)[number];

export interface CaptionReadingReport {
  readonly method: EncodeMethod;
  readonly task: CaptionTask;
  readonly seed: number;
  readonly images: number;
  readonly captions: number;
  readonly words: number;
  readonly content_words: number;
  readonly content_words_by_kind: Record<ContentKind, number>;
  /** each caption with its own scene's visual tokens */
  readonly own_image: CaptionScores;
  /** with another scene's */
  readonly other_image: CaptionScores;
  /** own minus other: content accuracy, and other minus own NLL (both > 0 when the LM reads the image) */
  readonly reading: { readonly content_accuracy: number; readonly nll: number };
  readonly examples: ReadonlyArray<{ readonly image: number; readonly caption: string; readonly own: string; readonly other: string }>;
}

export interface CaptionReadingOptions {
  readonly method: EncodeMethod;
  /** held-out scenes' seed */
  readonly seed: number;
  readonly images: number;
  /** captions per scene (the captions task) */
  readonly captions: number;
  /** default 'captions'; 'glyphs' (ps3): every one-character label of each scene */
  readonly task?: CaptionTask;
  /** glyphs: also the colour and shape of each labelled or tiny shape (trainData.ts `objectBlocks`) */
  readonly objects?: boolean;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Words that name what a caption's region shows, with their kind (a bare "a" is left out: it is mostly the article). */
export function contentKinds(): Map<string, ContentKind> {
  const words = new Map<string, ContentKind>();
  for (const c of COLOUR_NAMES) for (const w of wordPieces(c)) words.set(w, 'colour');
  for (const s of SHAPES) {
    words.set(s, 'shape');
    for (const w of wordPieces(PLURAL[s])) words.set(w, 'shape');
  }
  for (const n of NUMBER_WORDS) words.set(n, 'count');
  for (const ch of 'bcdefghijklmnopqrstuvwxyz0123456789') words.set(ch, 'character');
  return words;
}

export function contentWords(): Set<string> {
  return new Set(contentKinds().keys());
}

interface Tally {
  nll: number;
  right: number;
  first: number;
  exact: number;
  kindRight: Record<ContentKind, number>;
  byCategory: Map<string, { count: number; first: number; exact: number }>;
}

const newTally = (): Tally => ({ nll: 0, right: 0, first: 0, exact: 0, kindRight: { colour: 0, shape: 0, character: 0, count: 0 }, byCategory: new Map() });

/** One caption teacher-forced over `arrays`: its NLL, its ids (words and [EOS]) and the LM's guess of each. */
function score(model: VilaHd, method: EncodeMethod, q: TrainQuestion, arrays: ReadonlyMap<string, NamedArray>): { nll: number; ids: Int32Array; guess: Int32Array } {
  const lm = lmConfigOf(model.config, method);
  return tf.tidy(() => {
    const { visual } = sampleVisual(model.weights, method, { question: q, arrays });
    const { rows, ids } = answerRows(model.weights, method, lm, model.tokenizer, q, visual);
    const lp = logSoftmax(lmLogits(model.weights, `${method}.lm`, lm, rows)); // [n, V]
    const picked = tf.sum(tf.mul(lp, tf.oneHot(tf.tensor1d(ids, 'int32'), lm.vocabSize)), -1);
    return { nll: -tf.mean(picked).dataSync()[0]!, ids, guess: tf.argMax(lp, -1).dataSync() as Int32Array };
  });
}

/** Adds a scored caption of category `category` to a tally. */
function add(t: Tally, category: string, s: { nll: number; ids: Int32Array; guess: Int32Array }, content: ReadonlyMap<number, ContentKind>): void {
  t.nll += s.nll;
  const first = s.guess[0] === s.ids[0] ? 1 : 0;
  // the last id is [EOS]
  const exact = s.ids.subarray(0, -1).every((id, i) => s.guess[i] === id) ? 1 : 0;
  t.first += first;
  t.exact += exact;
  const c = t.byCategory.get(category) ?? { count: 0, first: 0, exact: 0 };
  t.byCategory.set(category, { count: c.count + 1, first: c.first + first, exact: c.exact + exact });
  s.ids.forEach((id, i) => {
    if (s.guess[i] !== id) return;
    t.right += 1;
    const kind = content.get(id);
    if (kind !== undefined) t.kindRight[kind] += 1;
  });
}

export async function evaluateCaptionReading(model: VilaHd, o: CaptionReadingOptions): Promise<CaptionReadingReport> {
  const method = o.method;
  const resolution = model.config.resolutions[method];
  const task = o.task ?? 'captions';
  const spec = { method, seed: o.seed, images: o.images, looks: 1, task, captions: o.captions, ...(o.objects ? { objects: true } : {}), ...(resolution !== undefined ? { resolution } : {}) };
  const vocabulary = model.tokenizer.vocabulary();
  const contentIds = new Map([...contentKinds()].flatMap(([w, kind]): Array<[number, ContentKind]> => (vocabulary.has(w) ? [[vocabulary.get(w)!, kind]] : [])));
  const scenes: Array<{ questions: TrainQuestion[]; arrays: Map<string, NamedArray> }> = [];
  const scratch: Scratch = {};
  for (let i = 0; i < o.images; i++) {
    const { questions, arrays } = await imageSamples(model.ps3, spec, i, scratch);
    scenes.push({ questions, arrays });
    o.onProgress?.(i + 1, 2 * o.images);
  }
  const own = newTally();
  const other = newTally();
  let captions = 0;
  let words = 0;
  const kindCount: Record<ContentKind, number> = { colour: 0, shape: 0, character: 0, count: 0 };
  const examples: Array<{ image: number; caption: string; own: string; other: string }> = [];
  scenes.forEach((scene, i) => {
    // the next scene that has a sample of each index (every scene has at least one region; a
    // scene may have no one-character label)
    const next = scenes.slice(i + 1).concat(scenes.slice(0, i + 1)).find((n) => n.questions.length > 0)!;
    for (const q of scene.questions) {
      // of the same category where the other scene has one (a sign's tokens for a sign)
      const rank = scene.questions.filter((c) => c.category === q.category).indexOf(q);
      const same = next.questions.filter((c) => c.category === q.category);
      const swapped = same.length ? same[rank % same.length]! : next.questions[q.index % next.questions.length]!;
      // the other scene's tokens under this caption's index
      const otherArrays = method === 'ps3' ? new Map([['low', next.arrays.get('low')!], [`high.${q.index}`, next.arrays.get(`high.${swapped.index}`)!]]) : next.arrays;
      const mine = score(model, method, q, scene.arrays);
      const theirs = score(model, method, q, otherArrays);
      add(own, q.category, mine, contentIds);
      add(other, q.category, theirs, contentIds);
      captions += 1;
      words += mine.ids.length;
      for (const id of mine.ids) {
        const kind = contentIds.get(id);
        if (kind !== undefined) kindCount[kind] += 1;
      }
      if (examples.length < 8 && q.index === 0) examples.push({ image: i, caption: q.target!, own: model.tokenizer.decode(mine.guess), other: model.tokenizer.decode(theirs.guess) });
    }
    o.onProgress?.(o.images + i + 1, 2 * o.images);
  });
  const contentCount = CONTENT_KINDS.reduce((n, k) => n + kindCount[k], 0);
  const scores = (t: Tally): CaptionScores => ({
    nll: t.nll / captions,
    word_accuracy: t.right / words,
    content_accuracy: contentCount ? CONTENT_KINDS.reduce((n, k) => n + t.kindRight[k], 0) / contentCount : 0,
    by_kind: Object.fromEntries(CONTENT_KINDS.map((k) => [k, t.kindRight[k] / kindCount[k]])) as Record<ContentKind, number>,
    first_word_accuracy: captions ? t.first / captions : NaN,
    exact_accuracy: captions ? t.exact / captions : NaN,
    by_category: Object.fromEntries([...t.byCategory].map(([c, v]) => [c, { count: v.count, first_word_accuracy: v.first / v.count, exact_accuracy: v.exact / v.count }])),
  });
  const a = scores(own);
  const b = scores(other);
  return {
    method, task, seed: o.seed, images: o.images, captions, words, content_words: contentCount, content_words_by_kind: kindCount,
    own_image: a, other_image: b,
    reading: { content_accuracy: a.content_accuracy - b.content_accuracy, nll: b.nll - a.nll },
    examples,
  };
}
