/**
 * Models for the browser page: a model folder given by URL (`config.json` + `model.safetensors`,
 * tokenizer files optional), fetched and then checked key by key exactly as `load.ts` checks a
 * folder on disk; or a config with reproducible random weights, the same weights `randomModel`
 * makes in Node for the same seed.
 *
 * `modelFromBytes` is the pure part (bytes in, checked weights out) and runs anywhere;
 * `fetchModel` adds `fetch` with progress. Unlike `load.ts`, nothing here reads files.
 */
import { parseConfig, type PS3Config } from '../io/config.js';
import { parseSafetensors } from '../io/safetensorsFormat.js';
import { UserError } from '../errors.js';
import type { ModelParts, PS3Model } from './load.js';
import { paramTable, textParams, visionParams, WRAPPER_KEYS, type ParamTable } from './params.js';
import { checkAndLoad, randomWeights } from './weights.js';

/** The tokenizer files a Hugging Face folder may hold; `tokenizer.json` is the one that is needed. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

function tableFor(config: PS3Config, parts: ModelParts): { table: ParamTable; extra: ParamTable } {
  if (parts === 'all') return { table: paramTable(config), extra: WRAPPER_KEYS };
  const other = parts === 'vision' ? textParams(config) : visionParams(config);
  return { table: parts === 'vision' ? visionParams(config) : textParams(config), extra: new Map([...WRAPPER_KEYS, ...other]) };
}

/** `config.json` text to a typed config; errors name `where`. */
export function configFromText(text: string, where: string): PS3Config {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, where);
}

/**
 * A model from the bytes of its two files. `parts` 'auto' loads the text tower too when the
 * checkpoint has one (any `text_model.` key), else the vision tower alone.
 */
export function modelFromBytes(
  configText: string,
  safetensors: Uint8Array,
  options: { source: string; parts?: ModelParts | 'auto' },
): PS3Model & { readonly parts: ModelParts } {
  const { source } = options;
  const config = configFromText(configText, `${source}/config.json`);
  const where = `${source}/model.safetensors`;
  const arrays = parseSafetensors(safetensors, where);
  const parts = options.parts === undefined || options.parts === 'auto' ? ([...arrays.keys()].some((k) => k.startsWith('text_model.')) ? 'all' : 'vision') : options.parts;
  const { table, extra } = tableFor(config, parts);
  const weights = checkAndLoad(
    { keys: () => arrays.keys(), shapeOf: (k) => arrays.get(k)!.shape, read: (k) => arrays.get(k)! },
    table,
    where,
    extra,
    (k) => WRAPPER_KEYS.has(k),
  );
  return { config, weights, source, parts };
}

/** The same model `randomModel(config, seed)` makes in Node (`load.ts`), without its file imports. */
export function randomModelBrowser(config: PS3Config, seed = 0): PS3Model {
  const table = new Map([...paramTable(config), ...WRAPPER_KEYS]);
  return { config, weights: randomWeights(table, seed, { logitScale: config.initLogitScale, logitBias: config.initLogitBias }), source: `random weights (seed ${seed})` };
}

export interface FetchProgress {
  readonly file: string;
  readonly loaded: number;
  /** from Content-Length; undefined when the server does not say */
  readonly total: number | undefined;
}

export interface FetchModelOptions {
  readonly fetch?: typeof fetch;
  readonly onProgress?: (p: FetchProgress) => void;
  readonly parts?: ModelParts | 'auto';
}

export interface FetchedModel {
  readonly model: PS3Model & { readonly parts: ModelParts };
  /** the tokenizer files the folder has (text), by name; empty when it has none */
  readonly tokenizerFiles: ReadonlyMap<string, string>;
}

/** `base` with exactly one '/' before `name`. */
export function fileUrl(base: string, name: string): string {
  return `${base.replace(/\/+$/, '')}/${name}`;
}

async function fetchBytes(url: string, file: string, get: typeof fetch, onProgress?: (p: FetchProgress) => void): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await get(url);
  } catch (e) {
    throw new UserError(`${url}: cannot fetch (${(e as Error).message})`);
  }
  if (!res.ok) throw new UserError(`${url}: HTTP ${res.status}${res.status === 404 ? ' (not found)' : ''}`);
  const header = res.headers.get('content-length');
  const total = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
  if (!res.body || !onProgress) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  let out = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > out.length) {
      const grown = new Uint8Array(Math.max(out.length * 2, loaded + value.length));
      grown.set(out.subarray(0, loaded));
      out = grown;
    }
    out.set(value, loaded);
    loaded += value.length;
    onProgress({ file, loaded, total });
  }
  return loaded === out.length ? out : out.slice(0, loaded);
}

async function fetchOptionalText(url: string, get: typeof fetch): Promise<string | null> {
  try {
    const res = await get(url);
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

/** Fetch a model folder by URL: config, weights (checked as `loadModel` checks them), tokenizer files if present. */
export async function fetchModel(base: string, options: FetchModelOptions = {}): Promise<FetchedModel> {
  const get = options.fetch ?? fetch;
  const configBytes = await fetchBytes(fileUrl(base, 'config.json'), 'config.json', get);
  const weightBytes = await fetchBytes(fileUrl(base, 'model.safetensors'), 'model.safetensors', get, options.onProgress);
  const tokenizerFiles = new Map<string, string>();
  const texts = await Promise.all(TOKENIZER_FILES.map((name) => fetchOptionalText(fileUrl(base, name), get)));
  TOKENIZER_FILES.forEach((name, i) => {
    const text = texts[i];
    if (text !== null && text !== undefined) tokenizerFiles.set(name, text);
  });
  const model = modelFromBytes(new TextDecoder().decode(configBytes), weightBytes, { source: base.replace(/\/+$/, ''), parts: options.parts ?? 'auto' });
  return { model, tokenizerFiles };
}
