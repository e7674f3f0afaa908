/**
 * What a VILA-HD folder is, read from its config, its tokenizer and the safetensors header only
 * (no tensor is read): the PS3 it stands on (`modelInfo` of that folder), the LM's shape and each
 * method's context, the tiling methods' resolutions, parameters per method, storage dtypes and
 * files. A weight the config expects but the file lacks, or one of another shape, is named.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { openSafetensors } from '../io/safetensors.js';
import { readConfigFile } from '../model/load.js';
import { modelInfo, storedParams, type ModelInfo } from '../model/info.js';
import { countParams } from '../model/params.js';
import type { EncodeMethod } from '../model/baselines.js';
import { lmConfigOf, readVilaConfig, type LmConfig } from './config.js';
import { ps3PathOf } from './model.js';
import { methodParams } from './params.js';
import { loadLmTokenizer } from './tokenizer.js';

export interface VilaMethodInfo {
  readonly method: EncodeMethod;
  readonly contextLength: number;
  /** the tiling methods' training resolution (answering's default); null for the others */
  readonly resolution: number | null;
  readonly params: number;
}

export interface VilaInfo {
  readonly kind: 'vila-hd';
  readonly folder: string;
  /** `ps3_model` as the config gives it, and the folder it names */
  readonly ps3Model: string;
  readonly ps3Folder: string;
  readonly ps3: ModelInfo;
  readonly lm: Omit<LmConfig, 'contextLength'> & { readonly contextLength: number };
  readonly promptHidden: number;
  readonly projectorHidden: number;
  readonly selectionWeight: number;
  readonly methods: readonly VilaMethodInfo[];
  /** words in the LM's tokenizer */
  readonly vocabulary: number;
  readonly params: { readonly total: number; readonly stored: number };
  readonly dtypes: Readonly<Record<string, number>>;
  readonly files: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
  readonly bytes: number;
}

export function vilaInfo(folder: string): VilaInfo {
  const configFile = path.join(folder, 'config.json');
  const config = readVilaConfig(configFile);
  const ps3Folder = ps3PathOf(folder, config);
  if (!fs.existsSync(path.join(ps3Folder, 'config.json'))) throw new UserError(`${configFile}: field ps3_model: ${ps3Folder} is not a PS3 model folder (no config.json)`);
  const ps3Config = readConfigFile(path.join(ps3Folder, 'config.json'));
  const tokenizer = loadLmTokenizer(folder);
  const file = openSafetensors(path.join(folder, 'model.safetensors'));
  const methods = config.methods.map((method): VilaMethodInfo => {
    const table = methodParams(method, config, ps3Config);
    for (const [key, shape] of table) {
      const e = file.entries.get(key);
      if (!e) throw new UserError(`${file.where}: missing key "${key}" (the ${method} LM)`);
      if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
        throw new UserError(`${file.where}: key "${key}" has shape ${JSON.stringify(e.shape)}, expected ${JSON.stringify(shape)}`);
      }
    }
    return { method, contextLength: lmConfigOf(config, method).contextLength, resolution: config.resolutions[method] ?? null, params: countParams(table) };
  });
  const { stored, dtypes } = storedParams(file.entries.values());
  const files = ['model.safetensors', 'tokenizer.json'].map((name) => ({ name, bytes: fs.statSync(path.join(folder, name)).size }));
  return {
    kind: 'vila-hd',
    folder,
    ps3Model: config.ps3Model,
    ps3Folder,
    ps3: modelInfo(ps3Folder),
    lm: config.lm,
    promptHidden: config.promptHidden,
    projectorHidden: config.projectorHidden,
    selectionWeight: config.selectionWeight,
    methods,
    vocabulary: tokenizer.size,
    params: { total: methods.reduce((a, m) => a + m.params, 0), stored },
    dtypes,
    files,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
  };
}
