/**
 * Text for the evaluations: the model folder's tokenizer, or — for a model without tokenizer
 * files, e.g. random weights of a preset — the word tokenizer of the synthetic captions
 * (src/data/wordTokenizer.ts), which is what `ps3 train` on synthetic data uses.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { loadTokenizer, type TextTokenizer } from '../../io/tokenizer.js';
import type { PS3Model } from '../../model/load.js';
import { SPECIAL_TOKENS, synthVocabulary, writeWordTokenizer } from '../../data/wordTokenizer.js';

export interface EvalTokenizer {
  readonly tokenizer: TextTokenizer;
  /** where it came from: a folder, or "synthetic word tokenizer" */
  readonly source: string;
}

/** The tokenizer in `dir` when it has `tokenizer.json`, else the synthetic captions' word tokenizer. */
export async function evalTokenizer(model: PS3Model, dir?: string): Promise<EvalTokenizer> {
  const text = model.config.text;
  const options = { contextLength: text.contextLength, clean: text.tokenizerClean, padId: text.padId };
  if (dir && fs.existsSync(path.join(dir, 'tokenizer.json'))) return { tokenizer: await loadTokenizer(dir, options), source: dir };
  const vocabulary = synthVocabulary();
  if (SPECIAL_TOKENS.length + vocabulary.length > text.vocabSize) {
    throw new UserError(`${dir ?? 'the model'} has no tokenizer.json, and the synthetic word tokenizer (${SPECIAL_TOKENS.length + vocabulary.length} ids) does not fit its vocabulary of ${text.vocabSize}`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-tok-'));
  try {
    await writeWordTokenizer(tmp, vocabulary, { contextLength: text.contextLength });
    return { tokenizer: await loadTokenizer(tmp, { ...options, padId: 0 }), source: 'synthetic word tokenizer' };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
