/**
 * The language model's tokenizer: the synthetic captions' word tokenizer (src/data/wordTokenizer.ts)
 * with the words of 4KPro-lite questions and of the prompt template added. Written as a Hugging
 * Face `tokenizer.json` (WordLevel) in the model folder; read back here without padding or
 * truncation, since the LM takes sequences of any length up to its context.
 *
 * A question reaches the LM as `question: Q options: A or B or C or D answer:` (cleaned like the
 * captions: lower case, no punctuation, digits split off one by one); an answer is the option's
 * text followed by [EOS].
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { COLOURS } from '../data/scene/colours.js';
import { SHAPES } from '../data/scene/shapes.js';
import { EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, UNK_TOKEN, synthVocabulary, wordPieces, wordTokenizerIds, writeWordTokenizer } from '../data/wordTokenizer.js';

/** Words of the question templates (src/data/qa/generate.ts) and of the prompt template. */
const QUESTION_WORDS = [
  'question', 'options', 'answer', 'or', 'what', 'does', 'the', 'sign', 'read', 'reading', 'colour', 'is', 'marked', 'with', 'digit', 'letter',
  'shape', 'object', 'how', 'many', 'are', 'there', 'in', 'image', 'which', 'of', 'these', 'a', 'an', 'one', 'two', 'three', 'four', 'five',
  'six', 'seven', 'eight', 'nine', 'zero',
];

/** Every word a 4KPro-lite question, its options or the prompt template can hold, sorted. */
export function lmVocabulary(): string[] {
  const words = new Set(synthVocabulary());
  for (const w of QUESTION_WORDS) words.add(w);
  for (const c of COLOURS) for (const w of wordPieces(c.name)) words.add(w);
  for (const s of SHAPES) {
    words.add(s);
    words.add(s === 'cross' ? 'crosses' : `${s}s`);
  }
  return [...words].sort();
}

export class LmTokenizer {
  readonly padId: number;
  readonly unkId: number;
  readonly eosId: number;
  private readonly words: string[];

  constructor(private readonly vocab: ReadonlyMap<string, number>) {
    const id = (t: string): number => {
      const v = vocab.get(t);
      if (v === undefined) throw new UserError(`tokenizer: no id for "${t}"`);
      return v;
    };
    this.padId = id(PAD_TOKEN);
    this.unkId = id(UNK_TOKEN);
    this.eosId = id(EOS_TOKEN);
    this.words = [];
    for (const [w, i] of vocab) this.words[i] = w;
  }

  get size(): number {
    return this.words.length;
  }

  /** word -> id, as the tokenizer was made from */
  vocabulary(): ReadonlyMap<string, number> {
    return this.vocab;
  }

  /** Ids of a text, no [EOS]. */
  encode(text: string): Int32Array {
    return Int32Array.from(wordPieces(text), (w) => this.vocab.get(w) ?? this.unkId);
  }

  /** Words of ids, up to the first [EOS]. */
  decode(ids: ArrayLike<number>): string {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === this.eosId) break;
      out.push(this.words[ids[i]!] ?? UNK_TOKEN);
    }
    return out.join(' ');
  }

  /** Words of a text the vocabulary does not have. */
  unknownWords(text: string): string[] {
    return wordPieces(text).filter((w) => !this.vocab.has(w));
  }
}

/** The prompt the LM reads after the visual tokens. */
export function questionText(question: string, options?: readonly string[]): string {
  return options && options.length ? `question: ${question} options: ${options.join(' or ')} answer:` : `question: ${question} answer:`;
}

/** The LM tokenizer in memory, with the ids `writeLmTokenizer` writes. */
export function newLmTokenizer(): LmTokenizer {
  return new LmTokenizer(wordTokenizerIds(lmVocabulary()));
}

export async function writeLmTokenizer(dir: string, contextLength: number): Promise<void> {
  await writeWordTokenizer(dir, lmVocabulary(), { contextLength });
}

/** Reads `dir/tokenizer.json` (a WordLevel model with [PAD], [UNK] and [EOS]). */
export function loadLmTokenizer(dir: string): LmTokenizer {
  const file = path.join(dir, 'tokenizer.json');
  let json: { model?: { type?: string; vocab?: Record<string, number> } };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof json;
  } catch (e) {
    throw new UserError(`${file}: cannot read a tokenizer (${(e as Error).message})`);
  }
  const vocab = json.model?.vocab;
  if (json.model?.type !== 'WordLevel' || !vocab || typeof vocab !== 'object') throw new UserError(`${file}: field model: expected a WordLevel model with a vocab`);
  const map = new Map<string, number>();
  const seen = new Set<number>();
  for (const [w, i] of Object.entries(vocab)) {
    if (!Number.isInteger(i) || i < 0 || seen.has(i)) throw new UserError(`${file}: field model.vocab.${w}: id ${String(i)} is not a distinct non-negative integer`);
    seen.add(i);
    map.set(w, i);
  }
  for (let i = 0; i < map.size; i++) if (!seen.has(i)) throw new UserError(`${file}: field model.vocab: ids are not 0..${map.size - 1} (${i} is missing)`);
  for (const t of SPECIAL_TOKENS) if (!map.has(t)) throw new UserError(`${file}: field model.vocab: no "${t}"`);
  return new LmTokenizer(map);
}
