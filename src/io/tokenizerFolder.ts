/**
 * The tokenizer files of a model folder, laid out so both readers take them as written:
 *
 * - the reference's `PS3Tokenizer.from_pretrained(dir)` passes `tokenizer_config.json`'s keys to
 *   its constructor: `tokenizer_name` (loaded with `AutoTokenizer.from_pretrained`),
 *   `context_length` and `clean`. Here `tokenizer_name` is the folder itself, whose
 *   `tokenizer.json` and `tokenizer_class` let AutoTokenizer build the fast tokenizer.
 * - transformers' loader compares the added tokens it finds (tokenizer_config.json's
 *   `added_tokens_decoder`, else tokenizer.json's `added_tokens`) with `vocab_size`, which
 *   `PS3Tokenizer` does not define; so the written files list none. The special tokens stay in
 *   the vocabulary and are named in tokenizer_config.json, where transformers (and
 *   `loadTokenizer`) find them.
 * - `model_max_length` equals the text tower's context length.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

export interface TokenizerFolderOptions {
  readonly contextLength: number;
  /** open_clip's clean mode name ('canonicalize', 'lower' or 'whitespace') */
  readonly clean: string;
  /** where the folder will be read from: what `tokenizer_name` names */
  readonly folder: string;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Json;
  } catch (e) {
    throw new UserError(`${file}: not a readable tokenizer file (${(e as Error).message})`);
  }
}

/**
 * Writes the tokenizer of `from` (a folder with `tokenizer.json`, or a reference export whose
 * `tokenizer_config.json` names a Hub tokenizer) into `to`. Nothing is written when `from` has
 * neither.
 */
export function writeTokenizerFolder(from: string, to: string, o: TokenizerFolderOptions): void {
  const jsonFile = path.join(from, 'tokenizer.json');
  const configFile = path.join(from, 'tokenizer_config.json');
  const source = fs.existsSync(configFile) ? readJson(configFile) : {};
  const ps3 = { context_length: o.contextLength, clean: o.clean, model_max_length: o.contextLength };
  if (!fs.existsSync(jsonFile)) {
    if (typeof source['tokenizer_name'] !== 'string') return;
    // a reference export: the tokenizer lives under its Hub name
    fs.writeFileSync(path.join(to, 'tokenizer_config.json'), `${JSON.stringify({ ...source, ...ps3 }, null, 2)}\n`);
    return;
  }
  const tokenizerJson = readJson(jsonFile);
  const strip = addedTokensInVocab(tokenizerJson);
  fs.writeFileSync(path.join(to, 'tokenizer.json'), `${JSON.stringify(strip ? { ...tokenizerJson, added_tokens: [] } : tokenizerJson, null, 2)}\n`);
  // special_tokens_map.json entries win over the config's on transformers' load path taken here
  const specialMapFile = path.join(from, 'special_tokens_map.json');
  const specialMap = fs.existsSync(specialMapFile) ? readJson(specialMapFile) : {};
  const kept = { ...source };
  if (strip) delete kept['added_tokens_decoder'];
  const config: Json = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    ...kept,
    ...specialTokens(specialMap),
    tokenizer_name: path.resolve(o.folder),
    ...ps3,
  };
  fs.writeFileSync(path.join(to, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Whether every added token is also in the model's own vocabulary under the same id, so listing
 * none loses nothing (transformers re-adds the named special tokens at load).
 */
function addedTokensInVocab(tokenizerJson: Json): boolean {
  const added = tokenizerJson['added_tokens'];
  if (!Array.isArray(added)) return true;
  const model = tokenizerJson['model'] as Json | undefined;
  const vocab = model?.['vocab'];
  const idOf = (content: string): number | undefined => {
    if (Array.isArray(vocab)) {
      // Unigram: [piece, score] pairs, the id is the position
      const at = vocab.findIndex((entry) => Array.isArray(entry) && entry[0] === content);
      return at < 0 ? undefined : at;
    }
    if (typeof vocab === 'object' && vocab !== null) {
      const id = (vocab as Json)[content];
      return typeof id === 'number' ? id : undefined;
    }
    return undefined;
  };
  return added.every((t: unknown) => {
    const token = t as Json;
    return typeof token['content'] === 'string' && idOf(token['content']) === token['id'];
  });
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/** special_tokens_map.json's tokens as plain strings (it may hold AddedToken objects). */
function specialTokens(map: Json): Json {
  const out: Json = {};
  for (const key of SPECIAL_KEYS) {
    const v = map[key];
    if (typeof v === 'string') out[key] = v;
    else if (typeof v === 'object' && v !== null && typeof (v as Json)['content'] === 'string') out[key] = (v as Json)['content'];
  }
  return out;
}
