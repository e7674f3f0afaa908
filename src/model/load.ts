/**
 * A PS3 model folder (Hugging Face layout: `config.json` + `model.safetensors`, or
 * `model.safetensors.index.json` + its shards), checked against the parameter table the config
 * implies; or a model of any config with random weights.
 *
 * Tensors are read and converted to float32 one at a time, straight into the engine, so a BF16
 * or F16 checkpoint never has its raw bytes and its float32 copy held whole at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseConfig, type PS3Config } from '../io/config.js';
import { openSafetensors, type HeaderEntry, type NamedArray } from '../io/safetensors.js';
import { readPreprocessor, type ImageProcessorConfig } from '../io/preprocessor.js';
import { UserError } from '../errors.js';
import { readJsonFile } from '../io/jsonFile.js';
import { tf, WASM_HEAP_BYTES } from '../tensor/engine.js';
import { paramTable, textParams, visionParams, WRAPPER_KEYS, type ParamTable } from './params.js';
import { checkAndLoad, randomWeights, type Weights } from './weights.js';

export interface PS3Model {
  readonly config: PS3Config;
  readonly weights: Weights;
  /** where it came from: a folder, or "random (seed N)" */
  readonly source: string;
  /** the folder's `preprocessor_config.json` (either layout); absent for random weights */
  readonly preprocessor?: ImageProcessorConfig;
  /** the folder it was loaded from (absent for random weights) */
  readonly folder?: string;
}

/** How images are prepared for `model`: its folder's processor, else PS3's at the top scale. */
export function imageProcessor(model: PS3Model): ImageProcessorConfig {
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  return model.preprocessor ?? { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
}

export type ModelParts = 'all' | 'vision' | 'text';

export function readConfigFile(file: string): PS3Config {
  return parseConfig(readJsonFile(file), file);
}

function tableFor(config: PS3Config, parts: ModelParts): { table: ParamTable; extra: ParamTable } {
  if (parts === 'all') return { table: paramTable(config), extra: WRAPPER_KEYS };
  // a partial load tolerates the other tower's keys
  const other = parts === 'vision' ? textParams(config) : visionParams(config);
  return { table: parts === 'vision' ? visionParams(config) : textParams(config), extra: new Map([...WRAPPER_KEYS, ...other]) };
}

/**
 * Refuse, before any tensor is made, a model whose weights alone cannot fit the WASM engine's
 * heap (float32 in the engine, whatever the file's dtype), naming the memory it needs.
 */
export function checkFitsEngine(table: ParamTable, what: string): void {
  if (tf.getBackend() !== 'wasm') return;
  let bytes = 0;
  for (const shape of table.values()) bytes += shape.reduce((a, c) => a * c, 1) * 4;
  if (bytes >= WASM_HEAP_BYTES) {
    throw new UserError(
      `${what}: the weights need ${(bytes / 1024 ** 3).toFixed(1)} GiB as float32, more than the WASM engine's ${WASM_HEAP_BYTES / 1024 ** 3} GiB heap; use --backend cpu or a smaller model`,
    );
  }
}

/** The stored tensors of a model folder, single-file or sharded, read one key at a time. */
export interface StoredWeights {
  /** what errors name: the file, or the index */
  readonly where: string;
  readonly entries: ReadonlyMap<string, HeaderEntry>;
  read(key: string): NamedArray;
  /** rows of a float tensor seen as [-1, last dim], read alone (see `SafetensorsFile.readRows`) */
  readRows(key: string, rows: Int32Array): Float32Array;
}

export const INDEX_FILE = 'model.safetensors.index.json';

/** The `weight_map` of a sharded checkpoint's index: key -> shard file name. */
export function readWeightIndex(file: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not a readable JSON index (${(e as Error).message.split('\n')[0]})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new UserError(`${file}: has no "weight_map" object`);
  const out = new Map<string, string>();
  for (const [key, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '' || shard.includes('..') || path.isAbsolute(shard)) {
      throw new UserError(`${file}: key "${key}" maps to ${JSON.stringify(shard)}, not a shard file name`);
    }
    out.set(key, shard);
  }
  return out;
}

/**
 * Opens `dir/model.safetensors.index.json` and its shards when the index is there, else
 * `dir/model.safetensors`. Every key of the index must be in the shard it names, and every key
 * of a shard in the index.
 */
export function openStoredWeights(dir: string): StoredWeights {
  const indexFile = path.join(dir, INDEX_FILE);
  if (!fs.existsSync(indexFile)) return openSafetensors(path.join(dir, 'model.safetensors'));
  const index = readWeightIndex(indexFile);
  const shards = new Map<string, ReturnType<typeof openSafetensors>>();
  for (const shard of new Set(index.values())) shards.set(shard, openSafetensors(path.join(dir, shard)));
  const entries = new Map<string, HeaderEntry>();
  const owner = new Map<string, string>();
  for (const [shard, file] of shards) {
    for (const [key, entry] of file.entries) {
      const named = index.get(key);
      if (named === undefined) throw new UserError(`${file.where}: key "${key}" is not in ${INDEX_FILE}`);
      if (named !== shard) continue; // a stray copy in another shard: the index says where it is
      entries.set(key, entry);
      owner.set(key, shard);
    }
  }
  for (const [key, shard] of index) {
    if (!owner.has(key)) throw new UserError(`${path.join(dir, shard)}: key "${key}" is in ${INDEX_FILE} but not in this shard`);
  }
  const shardOf = (key: string): ReturnType<typeof openSafetensors> => shards.get(owner.get(key)!)!;
  return { where: indexFile, entries, read: (key) => shardOf(key).read(key), readRows: (key, rows) => shardOf(key).readRows(key, rows) };
}

/**
 * Load `dir/config.json` and the weights (`model.safetensors`, or the sharded index and its
 * shards); every key is checked before any tensor is made.
 */
export function loadModel(dir: string, parts: ModelParts = 'all'): PS3Model {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir}: model folder not found`);
  const config = readConfigFile(path.join(dir, 'config.json'));
  const preprocessor = readPreprocessor(dir, config.vision.scales[config.vision.scales.length - 1]!);
  const file = openStoredWeights(dir);
  const { table, extra } = tableFor(config, parts);
  checkFitsEngine(table, dir);
  const weights = checkAndLoad(
    { keys: () => file.entries.keys(), shapeOf: (k) => file.entries.get(k)!.shape, read: (k) => file.read(k), readRows: (k, rows) => file.readRows(k, rows) },
    table,
    file.where,
    extra,
    (k) => WRAPPER_KEYS.has(k),
  );
  return { config, weights, source: dir, preprocessor, folder: dir };
}

/** A model of `config` with reproducible random weights (and the wrapper's logit scale and bias). */
export function randomModel(config: PS3Config, seed = 0): PS3Model {
  const table = new Map([...paramTable(config), ...WRAPPER_KEYS]);
  checkFitsEngine(table, 'random weights');
  return { config, weights: randomWeights(table, seed, { logitScale: config.initLogitScale, logitBias: config.initLogitBias }), source: `random weights (seed ${seed})` };
}
