/**
 * What a model folder is, read from its config and the safetensors headers only (no tensor is
 * read): scales and per-scale budgets, trunk, text tower, parameter counts and storage dtypes.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { PS3Config } from '../io/config.js';
import { numel } from '../io/safetensors.js';
import { baseBudgets } from './selection.js';
import { INDEX_FILE, openStoredWeights, readConfigFile, readWeightIndex } from './load.js';
import { textParams, visionParams, countParams } from './params.js';

export interface ModelInfo {
  readonly folder: string;
  readonly modelName: string;
  readonly scales: readonly number[];
  /** patches chosen per look at each high-res scale */
  readonly budgetsPerLook: readonly number[];
  readonly maxSelectNum: number;
  readonly trunk: { readonly width: number; readonly depth: number; readonly heads: number; readonly patchSize: number; readonly mlpHidden: number };
  readonly text: { readonly width: number; readonly layers: number; readonly heads: number; readonly vocabSize: number; readonly contextLength: number; readonly clean: string };
  /** the tokenizer's files: the folder's own tokenizer.json, or the Hub repo the config names */
  readonly tokenizer: { readonly own: boolean; readonly repo: string | null; readonly tokenizerClass: string | null };
  readonly params: { readonly vision: number; readonly text: number; readonly stored: number };
  /** stored parameters by dtype */
  readonly dtypes: Readonly<Record<string, number>>;
  /** weight files and their bytes on disk */
  readonly files: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
  readonly bytes: number;
}

function tokenizerConfig(folder: string): Record<string, unknown> {
  try {
    const json = JSON.parse(fs.readFileSync(path.join(folder, 'tokenizer_config.json'), 'utf8')) as unknown;
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Parameters stored, in all and by dtype, from safetensors header entries. */
export function storedParams(entries: Iterable<{ readonly shape: readonly number[]; readonly dtype: string }>): { stored: number; dtypes: Record<string, number> } {
  const dtypes: Record<string, number> = {};
  let stored = 0;
  for (const e of entries) {
    const n = numel(e.shape);
    dtypes[e.dtype] = (dtypes[e.dtype] ?? 0) + n;
    stored += n;
  }
  return { stored, dtypes };
}

export function modelInfo(folder: string): ModelInfo {
  const config: PS3Config = readConfigFile(path.join(folder, 'config.json'));
  const { stored: storedCount, dtypes } = storedParams(openStoredWeights(folder).entries.values());
  const indexFile = path.join(folder, INDEX_FILE);
  const names = fs.existsSync(indexFile) ? [INDEX_FILE, ...[...new Set(readWeightIndex(indexFile).values())].sort()] : ['model.safetensors'];
  const files = names.map((name) => ({ name, bytes: fs.statSync(path.join(folder, name)).size }));
  const v = config.vision;
  const t = config.text;
  const tokConfig = tokenizerConfig(folder);
  const own = fs.existsSync(path.join(folder, 'tokenizer.json'));
  const named = t.hfTokenizerName ?? (typeof tokConfig['tokenizer_name'] === 'string' ? tokConfig['tokenizer_name'] : null);
  return {
    folder,
    modelName: v.modelName,
    scales: v.scales,
    budgetsPerLook: baseBudgets(v),
    maxSelectNum: v.maxSelectNum,
    trunk: { width: v.trunk.width, depth: v.trunk.depth, heads: v.trunk.heads, patchSize: v.trunk.patchSize, mlpHidden: v.trunk.mlpHidden },
    text: { width: t.width, layers: t.layers, heads: t.heads, vocabSize: t.vocabSize, contextLength: t.contextLength, clean: t.tokenizerClean },
    tokenizer: { own, repo: own ? null : named, tokenizerClass: typeof tokConfig['tokenizer_class'] === 'string' ? tokConfig['tokenizer_class'] : null },
    params: { vision: countParams(visionParams(config)), text: countParams(textParams(config)), stored: storedCount },
    dtypes,
    files,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
  };
}
