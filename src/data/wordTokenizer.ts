/**
 * A word-level tokenizer for the synthetic captions, written as a Hugging Face tokenizer folder
 * that `loadTokenizer` (src/io/tokenizer.ts) and transformers both read. Nothing can be
 * downloaded, and the caption grammar is closed, so one id per word covers every caption.
 *
 * Texts reach the model as the reference cleans them (`canonicalize`: lower case, no ASCII
 * punctuation, single spaces); the pre-tokenizer then splits on whitespace and splits digits off
 * one by one, so sign codes ("K3", "B17") and counts ("23") become single characters and the
 * vocabulary needs only the 36 characters, not every code. Ids: [PAD] 0, [UNK] 1, the words in
 * sorted order, then [EOS] (appended to every text by the post-processor) with the highest id, as
 * CLIP's end-of-text token has: a text tower that pools at the highest id (`pool_type: argmax`)
 * with a causal mask reads the whole caption and no padding there.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalize } from '../io/tokenizer.js';
import { GLYPH_CHARS } from './glyphs.js';
import { CAPTION_GRAMMAR } from './scene/grammar.js';

export const PAD_TOKEN = '[PAD]';
export const UNK_TOKEN = '[UNK]';
export const EOS_TOKEN = '[EOS]';
/** the special tokens: [PAD] and [UNK] take ids 0 and 1, before the vocabulary; [EOS] the id after it */
export const SPECIAL_TOKENS = [PAD_TOKEN, UNK_TOKEN, EOS_TOKEN] as const;

/** The words a text is looked up as: what the written tokenizer's normalizer and pre-tokenizer
 * make of the canonicalised text. */
export function wordPieces(text: string): string[] {
  return canonicalize(text)
    .split(' ')
    .flatMap((word) => word.split(/(\d)/))
    .filter((piece) => piece.length > 0);
}

/** Every word the caption grammar can produce, plus each digit and letter, sorted. */
export function synthVocabulary(): string[] {
  const words = new Set<string>();
  const { slots, ...templates } = CAPTION_GRAMMAR;
  for (const list of [...Object.values(templates), ...Object.values(slots)]) {
    for (const text of list) for (const word of wordPieces(text.replace(/\{\w+\}/g, ' '))) words.add(word);
  }
  for (const ch of GLYPH_CHARS) words.add(ch.toLowerCase());
  return [...words].sort();
}

/**
 * The ids a written word tokenizer gives: [PAD] 0, [UNK] 1, `vocabulary` in order from 2, then
 * [EOS] with the highest id. Anything that tokenizes in memory must use these ids, or what it
 * trains would not match the tokenizer.json written beside it.
 */
export function wordTokenizerIds(vocabulary: readonly string[]): Map<string, number> {
  const ids = new Map<string, number>();
  [PAD_TOKEN, UNK_TOKEN, ...vocabulary, EOS_TOKEN].forEach((token, id) => {
    if (ids.has(token)) throw new RangeError(`writeWordTokenizer: "${token}" appears twice in the vocabulary`);
    if (token !== EOS_TOKEN && id >= 2 && token !== token.toLowerCase()) {
      throw new RangeError(`writeWordTokenizer: "${token}" is not lower case, so the normalizer would never produce it`);
    }
    ids.set(token, id);
  });
  return ids;
}

export interface WordTokenizerOptions {
  /** ids per text: written as model_max_length */
  readonly contextLength: number;
}

/**
 * Writes `tokenizer.json` (WordLevel over [PAD], [UNK], [EOS] and `vocabulary`; Lowercase
 * normalizer; Whitespace then individual-Digits pre-tokenizer; "$A [EOS]" post-processor) and
 * `tokenizer_config.json` (pad/unk/eos tokens, model_max_length, right padding) into `dir`.
 */
export async function writeWordTokenizer(dir: string, vocabulary: readonly string[], options: WordTokenizerOptions): Promise<void> {
  const { contextLength } = options;
  if (!Number.isInteger(contextLength) || contextLength < 2) throw new RangeError(`writeWordTokenizer: contextLength must be an integer >= 2, got ${contextLength}`);
  const vocab: Record<string, number> = Object.fromEntries(wordTokenizerIds(vocabulary));
  const addedToken = (content: string): Record<string, unknown> => ({
    id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  const sequence = (id: 'A' | 'B'): Record<string, unknown> => ({ Sequence: { id, type_id: 0 } });
  const eos = { SpecialToken: { id: EOS_TOKEN, type_id: 0 } };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map(addedToken),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, { type: 'Digits', individual_digits: true }] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [sequence('A'), eos],
      pair: [sequence('A'), eos, sequence('B'), eos],
      special_tokens: { [EOS_TOKEN]: { id: EOS_TOKEN, ids: [vocab[EOS_TOKEN]], tokens: [EOS_TOKEN] } },
    },
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: UNK_TOKEN },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: contextLength,
    pad_token: PAD_TOKEN,
    unk_token: UNK_TOKEN,
    eos_token: EOS_TOKEN,
    padding_side: 'right',
    truncation_side: 'right',
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((t) => {
      const { id, ...rest } = addedToken(t);
      return [String(id), rest];
    })),
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), `${JSON.stringify(tokenizerJson, null, 2)}\n`);
  await writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
