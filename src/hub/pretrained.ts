/**
 * Models by folder or by Hub id, the way transformers users write them: `loadModel('nvidia/PS3-4K-SigLIP2')`
 * downloads into the Hugging Face cache once, then reads the snapshot folder like any other.
 * The tokenizer comes from the model's own files, or from the repo its config names
 * (`text_config.hf_tokenizer_name`, or `tokenizer_name` in tokenizer_config.json: released PS3
 * checkpoints point at the timm SigLIP/SigLIP2 repos this way).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { loadModel as loadModelFolder, type ModelParts, type PS3Model } from '../model/load.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { looksLikeModelId } from './repoId.js';
import { hubSettings } from './settings.js';
import { snapshot, TOKENIZER_PLAN, MODEL_PLAN, type Snapshot, type SnapshotOptions } from './snapshot.js';

export interface ResolvedModel {
  readonly folder: string;
  /** set when the model came from the Hub */
  readonly snapshot?: Snapshot;
}

/** A folder as it is; a Hub id (`ORG/NAME[@REVISION]`) brought into the cache first. */
export async function resolveModelFolder(spec: string, options: SnapshotOptions = {}): Promise<ResolvedModel> {
  if (fs.existsSync(spec)) {
    if (!fs.statSync(spec).isDirectory()) throw new UserError(`${spec}: not a model folder`);
    return { folder: spec };
  }
  if (!looksLikeModelId(spec)) throw new UserError(`${spec}: model folder not found`);
  try {
    const snap = await snapshot(spec, MODEL_PLAN, options);
    return { folder: snap.folder, snapshot: snap };
  } catch (e) {
    // `models/ps3-tny` is a Hub id by its form, but with a folder `models` here a mistyped path is
    // the likelier mistake: say both
    const parent = spec.split('@')[0]!.split('/')[0]!;
    if (e instanceof UserError && fs.existsSync(parent) && fs.statSync(parent).isDirectory()) {
      throw new UserError(`${spec}: model folder not found (${parent}/ has no ${spec.slice(parent.length + 1)}); as a Hub id: ${e.message}`);
    }
    throw e;
  }
}

export interface LoadModelOptions extends SnapshotOptions {
  readonly parts?: ModelParts;
}

/** Loads a model folder or a Hub id (downloaded into the Hugging Face cache on first use). */
export async function loadModel(spec: string, options: LoadModelOptions = {}): Promise<PS3Model> {
  const { folder } = await resolveModelFolder(spec, options);
  return loadModelFolder(folder, options.parts ?? 'all');
}

function namedTokenizer(folder: string, model: PS3Model): string | undefined {
  if (model.config.text.hfTokenizerName) return model.config.text.hfTokenizerName;
  try {
    const json = JSON.parse(fs.readFileSync(path.join(folder, 'tokenizer_config.json'), 'utf8')) as { tokenizer_name?: unknown };
    return typeof json.tokenizer_name === 'string' ? json.tokenizer_name : undefined;
  } catch {
    return undefined;
  }
}

export interface TokenizerSource {
  /** the folder with tokenizer.json */
  readonly folder: string;
  /** the Hub repo it came from, when it is not the model's own */
  readonly repo?: string;
}

/**
 * Where a model's tokenizer files are: its own folder when it has `tokenizer.json`, else the
 * repo it names, from the Hub when `download` is set (the model itself came from the Hub), else
 * from the cache only.
 */
export async function tokenizerSource(folder: string, model: PS3Model, options: SnapshotOptions & { download: boolean }): Promise<TokenizerSource> {
  if (fs.existsSync(path.join(folder, 'tokenizer.json'))) return { folder };
  const repo = namedTokenizer(folder, model);
  if (repo === undefined) return { folder };
  if (!looksLikeModelId(repo)) throw new UserError(`${folder}: the tokenizer it names, "${repo}", is not a Hub id`);
  const settings = options.settings ?? hubSettings();
  try {
    const snap = await snapshot(repo, TOKENIZER_PLAN, { ...options, settings: options.download ? settings : { ...settings, offline: true } });
    return { folder: snap.folder, repo };
  } catch (e) {
    if (options.download || !(e instanceof UserError)) throw e;
    throw new UserError(`${folder}: has no tokenizer.json and its tokenizer ${repo} is not in the cache (load the model by its Hub id, or copy the tokenizer files here)`);
  }
}

/** The model's tokenizer with the reference's cleaning, padding and truncation. */
export async function loadModelTokenizer(folder: string, model: PS3Model, options: SnapshotOptions & { download: boolean }): Promise<TextTokenizer> {
  const source = await tokenizerSource(folder, model, options);
  const t = model.config.text;
  return loadTokenizer(source.folder, { contextLength: t.contextLength, clean: t.tokenizerClean, padId: t.padId });
}
