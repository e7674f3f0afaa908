/**
 * A VILA-HD model folder: `config.json` (config.ts), `model.safetensors` (every method's LM,
 * projector and, for `ps3`, prompt head; params.ts), `tokenizer.json` (tokenizer.ts), and the PS3
 * model it stands on — a folder named by `ps3_model`, relative to this one (or `ps3/` inside).
 * Loading checks the PS3 folder as `loadModel` does, and every VILA-HD key and shape.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { openSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors.js';
import type { PS3Config } from '../io/config.js';
import { UserError } from '../errors.js';
import { loadModel, type PS3Model } from '../model/load.js';
import { checkAndLoad, randomWeights, Weights } from '../model/weights.js';
import type { EncodeMethod } from '../model/baselines.js';
import { contextFieldOf, lmConfigOf, LM_PRESETS, longestContext, parseVilaConfig, readVilaConfig, type VilaConfig, type VilaConfigJson } from './config.js';
import { methodParams, positionsKey, vilaParams } from './params.js';
import { LmTokenizer, lmVocabulary, loadLmTokenizer, writeLmTokenizer } from './tokenizer.js';
import { SPECIAL_TOKENS } from '../data/wordTokenizer.js';

export interface VilaHd {
  readonly config: VilaConfig;
  readonly ps3: PS3Model;
  /** every method's weights, keys prefixed by the method */
  readonly weights: Weights;
  readonly tokenizer: LmTokenizer;
  /** where it came from */
  readonly source: string;
}

/** The PS3 folder a VILA-HD folder names. */
export function ps3PathOf(dir: string, config: VilaConfig): string {
  return path.resolve(dir, config.ps3Model);
}

/**
 * Load a VILA-HD folder; `methods` (default all it holds) limits which weights are read. `ps3`:
 * the folder's PS3, already loaded by the caller, who keeps it (one copy of its weights serves
 * both; dispose only the VILA-HD's own `weights` then, not `disposeVilaHd`). `withText`: PS3's text
 * tower too.
 */
export function loadVilaHd(dir: string, options: { methods?: readonly EncodeMethod[]; ps3?: PS3Model; withText?: boolean } = {}): VilaHd {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir}: model folder not found`);
  const configFile = path.join(dir, 'config.json');
  const config = readVilaConfig(configFile);
  const ps3Dir = ps3PathOf(dir, config);
  if (!fs.existsSync(path.join(ps3Dir, 'config.json'))) throw new UserError(`${configFile}: field ps3_model: ${ps3Dir} is not a PS3 model folder (no config.json)`);
  for (const m of options.methods ?? []) {
    if (!config.methods.includes(m)) throw new UserError(`${dir}: holds no LM for method "${m}" (it has ${config.methods.join(', ')})`);
  }
  // the text tower only for a caller that makes PS3 prompts from text (eval qa --hint-prompts)
  const ps3 = options.ps3 ?? loadModel(ps3Dir, options.withText ? 'all' : 'vision');
  try {
    const tokenizer = loadLmTokenizer(dir);
    if (tokenizer.size > config.lm.vocabSize) throw new UserError(`${path.join(dir, 'tokenizer.json')}: ${tokenizer.size} ids do not fit the LM's vocab_size ${config.lm.vocabSize}`);
    const file = openSafetensors(path.join(dir, 'model.safetensors'));
    checkPositions(file.where, configFile, config, (k) => file.entries.get(k)?.shape);
    const wanted = options.methods ?? config.methods;
    const table = new Map([...wanted].flatMap((m) => [...methodParams(m, config, ps3.config)]));
    const other = new Map([...vilaParams(config, ps3.config)].filter(([k]) => !table.has(k)));
    const weights = checkAndLoad(
      { keys: () => file.entries.keys(), shapeOf: (k) => file.entries.get(k)!.shape, read: (k) => file.read(k) },
      table,
      file.where,
      other,
      () => false,
    );
    return { config, ps3, weights, tokenizer, source: dir };
  } catch (e) {
    if (!options.ps3) ps3.weights.dispose();
    throw e;
  }
}

/**
 * Each method's learned positions must be as long as that method's context: a folder whose
 * `context_lengths` (or `lm.context_length`) disagrees with its weights is named with both shapes.
 */
function checkPositions(where: string, configFile: string, config: VilaConfig, shapeOf: (key: string) => readonly number[] | undefined): void {
  for (const m of config.methods) {
    const got = shapeOf(positionsKey(m));
    if (!got) continue; // a missing key is named by checkAndLoad
    const { contextLength, width } = lmConfigOf(config, m);
    if (got.length !== 2 || got[0] !== contextLength || got[1] !== width) {
      throw new UserError(`${where}: key "${positionsKey(m)}" has shape ${JSON.stringify(got)}, expected ${JSON.stringify([contextLength, width])} (the ${m} LM's context ${contextLength}, field ${contextFieldOf(config, m)} of ${configFile})`);
    }
  }
}

export interface NewVilaOptions {
  /** an LM preset (config.ts LM_PRESETS), default `tiny` */
  readonly preset?: string;
  readonly methods: readonly EncodeMethod[];
  readonly seed?: number;
  /** written as `ps3_model` */
  readonly ps3Model: string;
  readonly selectionWeight?: number;
  /** the LM's context length instead of the preset's */
  readonly contextLength?: number;
  /** the projector's hidden width instead of the LM width */
  readonly projectorHidden?: number;
}

/** The config of a new VILA-HD on a PS3 model. */
export function newVilaConfig(o: NewVilaOptions): VilaConfig {
  const name = o.preset ?? 'tiny';
  const p = LM_PRESETS[name];
  if (!p) throw new UserError(`unknown LM preset "${name}" (known: ${Object.keys(LM_PRESETS).join(', ')})`);
  const { prompt_hidden, ...lm } = p;
  const json: VilaConfigJson = {
    model_type: 'vila-hd', ps3_model: o.ps3Model,
    lm: { ...lm, vocab_size: SPECIAL_TOKENS.length + lmVocabulary().length, ...(o.contextLength !== undefined ? { context_length: o.contextLength } : {}) },
    projector: { merge: 2, ...(o.projectorHidden !== undefined ? { hidden: o.projectorHidden } : {}) }, prompt_head: { hidden: prompt_hidden }, methods: [...o.methods], selection_weight: o.selectionWeight ?? 1,
  };
  return parseVilaConfig(json, `LM preset ${name}`);
}

/** Random weights for `methods` of a config (timm-style init, seeded). */
export function randomVilaWeights(config: VilaConfig, ps3: PS3Config, methods: readonly EncodeMethod[], seed: number): Weights {
  const table = new Map([...methods].flatMap((m) => [...methodParams(m, config, ps3)]));
  return randomWeights(table, seed, { logitScale: 0, logitBias: 0 });
}

/** A config with `methods` listed (in the canonical order); context lengths and resolutions of methods not listed are dropped. */
export function withMethods(config: VilaConfig, methods: readonly EncodeMethod[]): VilaConfig {
  const order = ['ps3', 'lowres', 'anyres', 's2'] as const;
  const list = order.filter((m) => methods.includes(m));
  const { context_lengths: _lengths, resolutions: _resolutions, ...rest } = config.raw;
  const listed = (table: Readonly<Partial<Record<EncodeMethod, number>>>): Record<string, number> | null => {
    const kept = Object.entries(table).filter(([m]) => (list as readonly string[]).includes(m));
    return kept.length ? Object.fromEntries(kept) : null;
  };
  const lengths = listed(config.contextLengths);
  const resolutions = listed(config.resolutions);
  return parseVilaConfig({ ...rest, methods: list, ...(lengths ? { context_lengths: lengths } : {}), ...(resolutions ? { resolutions } : {}) }, 'VILA-HD config');
}

async function toArrays(tensors: Iterable<[string, tf.Tensor]>): Promise<Map<string, NamedArray>> {
  const out = new Map<string, NamedArray>();
  for (const [k, t] of tensors) out.set(k, { shape: t.shape, data: (await t.data()) as Float32Array });
  return out;
}

/**
 * Write a VILA-HD folder's files into `dir` (which exists): config.json, model.safetensors,
 * tokenizer.json. `extra` arrays (other methods' weights kept as they were) are written too.
 */
export async function writeVilaFiles(dir: string, config: VilaConfig, weights: Iterable<[string, tf.Tensor]>, extra: ReadonlyMap<string, NamedArray> = new Map()): Promise<void> {
  const arrays = await toArrays(weights);
  for (const [k, a] of extra) if (!arrays.has(k)) arrays.set(k, a);
  writeSafetensors(path.join(dir, 'model.safetensors'), arrays, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(config.raw, null, 2)}\n`);
  // one tokenizer for every method: the longest sequence any of them takes
  await writeLmTokenizer(dir, longestContext(config));
}

/** Copy a PS3 folder's model files into `to` (an embedded copy). */
export function copyPs3Folder(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const name of ['config.json', 'model.safetensors', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    const src = path.join(from, name);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(to, name));
  }
}

export function disposeVilaHd(model: VilaHd): void {
  model.weights.dispose();
  model.ps3.weights.dispose();
}
