/**
 * Text tokenizers for PS3 text towers, loaded from a Hugging Face tokenizer folder
 * (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`).
 *
 * What the reference does (PS3's `PS3Tokenizer`, adapted from open_clip's `HFTokenizer`):
 *   1. clean each text: `clean='canonicalize'` → `canonicalize_text(basic_clean(text))`,
 *      `'lower'` → `whitespace_clean(basic_clean(text)).lower()`, `'whitespace'` (open_clip's
 *      default) → `whitespace_clean(basic_clean(text))`;
 *   2. `AutoTokenizer(texts, max_length=context_length, padding='max_length', truncation=True).input_ids`
 *      (transformers 4.x fast tokenizer, `add_special_tokens=True`). `strip_sep_token` (ids of the
 *      SEP token zeroed afterwards) is not supported: PS3's SigLIP/SigLIP2 configs only set `clean`.
 *
 * Step 2 is reproduced here on top of `@huggingface/tokenizers` (which has no truncation or
 * padding of its own):
 *   - truncation mirrors the Rust `Tokenizer::post_process`: with special tokens on, the text's
 *     own ids are cut to `max_length - <number of tokens the post-processor adds>` first, and the
 *     post-processor's tokens are added after, so a final `</s>`/`<eos>` (or a leading `<bos>`)
 *     always survives truncation;
 *   - padding uses transformers' `pad_token` (see `resolvePadToken`), appended on the
 *     `padding_side` (transformers' class default: left for Gemma, right otherwise); truncation
 *     keeps the first ids unless `truncation_side` is 'left';
 *   - `GemmaTokenizer` configs get their post-processor rebuilt from `add_bos_token` /
 *     `add_eos_token`, as `GemmaTokenizerFast.update_post_processor` does at load; that is how
 *     open_clip's SigLIP2 export (`add_bos_token=False, add_eos_token=True`) ends in `<eos>`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.js';

/**
 * How texts are cleaned before tokenizing. `'none'` stands for open_clip's `'whitespace'` mode
 * (its default, which `config.ts` maps here): no case or punctuation change, but still the basic
 * clean and whitespace collapse every open_clip mode applies.
 */
export type CleanMode = 'canonicalize' | 'lower' | 'none';

export interface TextTokenizer {
  readonly contextLength: number;
  readonly padId: number;
  /** token ids, `[texts.length * contextLength]`, row-major */
  encode(texts: readonly string[]): Int32Array;
}

export interface LoadTokenizerOptions {
  /** ids per text (the text tower's `context_length`, 64 for released PS3 models) */
  readonly contextLength: number;
  /** default `'canonicalize'`, what every released PS3 checkpoint uses */
  readonly clean?: CleanMode;
  /** pad id when the tokenizer files name no pad token (PS3's `text_config.pad_id`) */
  readonly padId?: number;
}

// ---------------------------------------------------------------------------------------------
// Text cleaning

// Python's str.isspace() set: str.split() / str.strip() in the reference split on exactly these,
// which differs from JS \s (Python adds U+001C-U+001F and U+0085, and leaves out U+FEFF).
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'g');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

/** Python's string.punctuation: the 32 ASCII punctuation characters, nothing beyond ASCII. */
const ASCII_PUNCTUATION = /[!-/:-@[-`{-~]/g;

// The parts of ftfy.fix_text (ftfy 6 defaults) that are fixed tables, read from ftfy's
// chardata.py/fixes.py and applied in its order. Mojibake repair (fix_encoding) and surrogate
// fixing are heuristics that are not reproduced: text that needs them tokenizes differently.
const LIGATURES: Readonly<Record<string, string>> = {
  '\u0132': 'IJ', '\u0133': 'ij', '\ufb00': 'ff', '\ufb01': 'fi', '\ufb02': 'fl', '\ufb03': 'ffi', '\ufb04': 'ffl', '\ufb05': '\u017ft', '\ufb06': 'st',
};
const LIGATURE_RE = /[\u0132\u0133\ufb00-\ufb06]/g;
const WIDE_RE = /[\uff01-\uffef]/g; // ftfy's WIDTH_MAP: NFKC of each char in U+FF01..U+FFEF
const SINGLE_QUOTE_RE = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTE_RE = /[\u201c-\u201f]/g;
const LINE_BREAK_RE = /\r\n|[\r\u2028\u2029\x85]/g;
const TERMINAL_ESCAPE_RE = /\x1b\[(?:\d|;)*[a-zA-Z]/g;
const CONTROL_RE = /[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc\u{1d173}-\u{1d17a}\u{e0000}-\u{e007f}]/gu;
const C1_RE = /[\x80-\x9f]/g;
/** U+0080..U+009F read as windows-1252 bytes (undefined bytes stay as they are), as both ftfy's
 * fix_c1_controls and Python's html.unescape (for &#128;..&#159;) do. */
const CP1252_C1 = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f'
  + '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/** Python's html.unescape of one numeric character reference. */
function charRef(code: number): string {
  if (code === 0) return '\ufffd';
  if (code === 0x0d) return '\r';
  if (code >= 0x80 && code <= 0x9f) return CP1252_C1.charAt(code - 0x80);
  if ((code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return '\ufffd';
  const dropped = (code >= 0x1 && code <= 0x8) || code === 0xb || (code >= 0xe && code <= 0x1f) || code === 0x7f
    || (code >= 0xfdd0 && code <= 0xfdef) || (code & 0xfffe) === 0xfffe;
  return dropped ? '' : String.fromCodePoint(code);
}

// Numeric references and the named entities captions actually contain; other named entities
// are left as they are. Python's html.unescape also takes the legacy forms without ';' (for
// names it has no longer match for), ftfy's own pass only takes them with ';'.
const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
const PYTHON_ENTITY_RE = /&(?:#(?<dec>[0-9]+);?|#[xX](?<hex>[0-9a-fA-F]+);?|(?<name>amp|lt|gt|quot|apos|nbsp);|(?<legacy>amp|lt|gt|quot|nbsp)(?![0-9A-Za-z]))/g;
const FTFY_ENTITY_RE = /&(?:#(?<dec>[0-9]+);|#[xX](?<hex>[0-9a-fA-F]+);|(?<name>amp|lt|gt|quot|apos|nbsp);)/g;

interface EntityGroups { dec?: string; hex?: string; name?: string; legacy?: string }

function unescapeHtml(text: string, pattern: RegExp): string {
  return text.replace(pattern, (whole: string, ...rest: unknown[]) => {
    // with named groups, the replacer's last argument is the groups object
    const { dec, hex, name, legacy } = rest[rest.length - 1] as EntityGroups;
    const named = name ?? legacy;
    if (named !== undefined) return NAMED_ENTITIES[named] ?? whole;
    return charRef(dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex ?? '', 16));
  });
}

/** One round of ftfy's fix loop over a segment. */
function fixPass(text: string, unescape: boolean): string {
  let t = unescape ? unescapeHtml(text, FTFY_ENTITY_RE) : text;
  t = t.replace(C1_RE, (c) => CP1252_C1.charAt(c.charCodeAt(0) - 0x80));
  t = t.replace(LIGATURE_RE, (c) => LIGATURES[c] ?? c);
  t = t.replace(WIDE_RE, (c) => c.normalize('NFKC')).replaceAll('\u3000', ' ');
  t = t.replace(SINGLE_QUOTE_RE, "'").replace(DOUBLE_QUOTE_RE, '"');
  t = t.replace(LINE_BREAK_RE, '\n').replace(TERMINAL_ESCAPE_RE, '').replace(CONTROL_RE, '');
  return t.normalize('NFC');
}

/** ftfy.fix_text: line by line, each line fixed until nothing changes. Entities are unescaped
 * (unescape_html='auto') only until the first line with a '<', which may be HTML markup. */
function fixText(text: string): string {
  let unescape = true;
  return text.split(/(?<=\n)/).map((segment) => {
    if (segment.includes('<')) unescape = false;
    let t = segment;
    for (let next = fixPass(t, unescape); next !== t; next = fixPass(t, unescape)) t = next;
    return t;
  }).join('');
}

/** open_clip's `basic_clean`: `ftfy.fix_text`, `html.unescape` twice, strip. */
function basicClean(text: string): string {
  return unescapeHtml(unescapeHtml(fixText(text), PYTHON_ENTITY_RE), PYTHON_ENTITY_RE).replace(PY_STRIP, '');
}

/** open_clip's `whitespace_clean`: `" ".join(text.split())`. */
function whitespaceClean(text: string): string {
  return text.replace(PY_SPACE_RUN, ' ').replace(PY_STRIP, '');
}

/**
 * open_clip's `clean='canonicalize'` (`canonicalize_text(basic_clean(text))`, from big_vision's
 * SigLIP prompt engineering): basic clean, '_' → ' ', drop ASCII punctuation, lower-case,
 * collapse whitespace runs to one space, strip.
 */
export function canonicalize(text: string): string {
  const t = basicClean(text).replaceAll('_', ' ').replace(ASCII_PUNCTUATION, '').toLowerCase();
  return whitespaceClean(t);
}

function cleaner(mode: CleanMode): (text: string) => string {
  switch (mode) {
    case 'canonicalize':
      return canonicalize;
    case 'lower':
      return (text) => whitespaceClean(basicClean(text)).toLowerCase();
    case 'none':
      return (text) => whitespaceClean(basicClean(text));
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errorCode(e: unknown): string | undefined {
  return isObject(e) && typeof e['code'] === 'string' ? e['code'] : undefined;
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
}

/** Reads a JSON object file; `null` when the file does not exist. */
async function readJsonObject(path: string): Promise<JsonObject | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return null;
    throw new UserError(`${path}: cannot read (${errorCode(e) ?? oneLine(e)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: malformed JSON (${oneLine(e)})`);
  }
  if (!isObject(value)) throw new UserError(`${path}: expected a JSON object`);
  return value;
}

/** A special token as saved by transformers: a string, or an AddedToken dict with `content`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/**
 * The special tokens transformers ends up with. tokenizer_config.json's values are the init
 * kwargs; special_tokens_map.json overrides them only on the legacy load path, which
 * transformers takes when tokenizer_config.json has no `added_tokens_decoder`.
 */
function resolveSpecialTokens(config: JsonObject, specialMap: JsonObject | null): Map<string, string> {
  const legacy = !('added_tokens_decoder' in config);
  const out = new Map<string, string>();
  for (const key of SPECIAL_TOKEN_KEYS) {
    const fromMap = legacy && specialMap !== null ? tokenContent(specialMap[key]) : undefined;
    const token = fromMap ?? tokenContent(config[key]);
    if (token !== undefined) out.set(key, token);
  }
  return out;
}

/** Hugging Face tokenizer.json's `padding`/`truncation` direction ('Left'/'Right'). */
function jsonDirection(params: unknown): 'left' | 'right' | undefined {
  if (!isObject(params) || typeof params['direction'] !== 'string') return undefined;
  const d = params['direction'].toLowerCase();
  return d === 'left' || d === 'right' ? d : undefined;
}

function configSide(config: JsonObject, key: string, path: string): 'left' | 'right' | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (v !== 'left' && v !== 'right') throw new UserError(`${path}: ${key} must be "left" or "right", got ${JSON.stringify(v)}`);
  return v;
}

// transformers' GemmaTokenizerFast: class defaults, and the post-processor it rebuilds at load.
const GEMMA_CLASSES = new Set(['GemmaTokenizer', 'GemmaTokenizerFast']);
const GEMMA_DEFAULTS = { bos: '<bos>', eos: '<eos>', addBos: true, addEos: false } as const;

// Stands in for the text's tokens when asking the post-processor what it adds around them.
const SEQUENCE_SENTINEL = '\u0000ps3:sequence\u0000';

interface SpecialLayout {
  readonly prefix: readonly number[];
  readonly suffix: readonly number[];
}

/** Special tokens named anywhere must be in tokenizer.json's vocabulary (`path`). */
function idOf(tokenizer: Tokenizer, token: string, path: string, role: string): number {
  const id = tokenizer.token_to_id(token);
  if (id === undefined) throw new UserError(`${path}: ${role} "${token}" is not in the vocabulary`);
  return id;
}

function specialLayout(
  tokenizer: Tokenizer,
  config: JsonObject,
  specials: Map<string, string>,
  paths: { json: string; config: string },
): SpecialLayout {
  if (typeof config['tokenizer_class'] === 'string' && GEMMA_CLASSES.has(config['tokenizer_class'])) {
    const flag = (key: string, fallback: boolean): boolean => {
      const v = config[key];
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'boolean') throw new UserError(`${paths.config}: ${key} must be true or false`);
      return v;
    };
    const bos = specials.get('bos_token') ?? GEMMA_DEFAULTS.bos;
    const eos = specials.get('eos_token') ?? GEMMA_DEFAULTS.eos;
    return {
      prefix: flag('add_bos_token', GEMMA_DEFAULTS.addBos) ? [idOf(tokenizer, bos, paths.json, 'bos_token')] : [],
      suffix: flag('add_eos_token', GEMMA_DEFAULTS.addEos) ? [idOf(tokenizer, eos, paths.json, 'eos_token')] : [],
    };
  }
  const post = tokenizer.post_processor;
  if (post === null) return { prefix: [], suffix: [] };
  let tokens: string[];
  try {
    // The library checks a post-processor's contents only when it runs.
    tokens = post([SEQUENCE_SENTINEL], null, true).tokens;
  } catch (e) {
    throw new UserError(`${paths.json}: unsupported post_processor (${oneLine(e)})`);
  }
  const at = tokens.indexOf(SEQUENCE_SENTINEL);
  if (at < 0) throw new UserError(`${paths.json}: the post_processor does not keep the text's tokens`);
  const ids = (part: string[]): number[] => part.map((t) => idOf(tokenizer, t, paths.json, 'post_processor token'));
  return { prefix: ids(tokens.slice(0, at)), suffix: ids(tokens.slice(at + 1)) };
}

/**
 * transformers' `pad_token`: the init kwargs (see `resolveSpecialTokens`), else tokenizer.json's
 * `padding.pad_token` (PreTrainedTokenizerFast uses it as a default). Class defaults
 * (`"<pad>"` for T5/Gemma) are not guessed: the caller's pad id is used instead.
 */
function resolvePadToken(specials: Map<string, string>, tokenizerJson: JsonObject): string | undefined {
  const padding = tokenizerJson['padding'];
  return specials.get('pad_token') ?? (isObject(padding) && typeof padding['pad_token'] === 'string' ? padding['pad_token'] : undefined);
}

/** tokenizer_config.json as @huggingface/tokenizers reads it: special tokens as plain strings. */
function libraryConfig(config: JsonObject, specials: Map<string, string>): JsonObject {
  const out: JsonObject = { ...config, ...Object.fromEntries(specials) };
  const extra = config['additional_special_tokens'];
  if (Array.isArray(extra)) out['additional_special_tokens'] = extra.map(tokenContent).filter((t) => t !== undefined);
  return out;
}

/**
 * Loads the tokenizer in `dir`. Needs `tokenizer.json`; `tokenizer_config.json` and
 * `special_tokens_map.json` are read when present, as transformers does.
 */
export async function loadTokenizer(dir: string, options: LoadTokenizerOptions): Promise<TextTokenizer> {
  const { contextLength } = options;
  if (!Number.isInteger(contextLength) || contextLength <= 0) {
    throw new UserError(`context length must be a positive integer, got ${contextLength}`);
  }
  const clean = cleaner(options.clean ?? 'canonicalize');
  const paths = {
    json: join(dir, 'tokenizer.json'),
    config: join(dir, 'tokenizer_config.json'),
    specialMap: join(dir, 'special_tokens_map.json'),
  };

  const config = (await readJsonObject(paths.config)) ?? {};
  const specialMap = await readJsonObject(paths.specialMap);
  const tokenizerJson = await readJsonObject(paths.json);
  if (tokenizerJson === null) {
    // PS3Tokenizer.save_pretrained writes only its own init kwargs, naming the HF tokenizer.
    const named = typeof config['tokenizer_name'] === 'string' ? ` (tokenizer_config.json names "${config['tokenizer_name']}": copy its tokenizer.json here)` : '';
    throw new UserError(`${paths.json}: not found${named}`);
  }
  if (!isObject(tokenizerJson['model'])) throw new UserError(`${paths.json}: has no "model" object`);

  const specials = resolveSpecialTokens(config, specialMap);
  let tokenizer: Tokenizer;
  try {
    // The library insists on these keys; Hugging Face writes them as null when unused.
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizerJson };
    tokenizer = new Tokenizer(full, libraryConfig(config, specials));
  } catch (e) {
    throw new UserError(`${paths.json}: unsupported tokenizer (${oneLine(e)})`);
  }

  const layout = specialLayout(tokenizer, config, specials, paths);
  const room = contextLength - layout.prefix.length - layout.suffix.length;
  if (room < 0) {
    throw new UserError(`${paths.json}: context length ${contextLength} is shorter than the ${contextLength - room} special tokens every text gets`);
  }

  const padToken = resolvePadToken(specials, tokenizerJson);
  let padId: number;
  if (padToken !== undefined) {
    padId = idOf(tokenizer, padToken, paths.json, 'pad_token');
  } else if (options.padId !== undefined) {
    if (!Number.isInteger(options.padId) || options.padId < 0) throw new UserError(`pad id must be a non-negative integer, got ${options.padId}`);
    padId = options.padId;
  } else {
    throw new UserError(`${paths.config}: no pad_token, and no pad id was given`);
  }

  const padLeft = (configSide(config, 'padding_side', paths.config) ?? jsonDirection(tokenizerJson['padding'])
    ?? (GEMMA_CLASSES.has(String(config['tokenizer_class'])) ? 'left' : 'right')) === 'left';
  const cutLeft = (configSide(config, 'truncation_side', paths.config) ?? jsonDirection(tokenizerJson['truncation']) ?? 'right') === 'left';

  return {
    contextLength,
    padId,
    encode(texts: readonly string[]): Int32Array {
      const out = new Int32Array(texts.length * contextLength).fill(padId);
      texts.forEach((text, row) => {
        const ids = tokenizer.encode(clean(text), { add_special_tokens: false }).ids;
        const kept = cutLeft ? ids.slice(Math.max(0, ids.length - room)) : ids.slice(0, room);
        const seq = [...layout.prefix, ...kept, ...layout.suffix];
        out.set(seq, row * contextLength + (padLeft ? contextLength - seq.length : 0));
      });
      return out;
    },
  };
}
