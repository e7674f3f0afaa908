/**
 * Brings the files of a model (or of a tokenizer repo) at one revision into the Hugging Face
 * cache and returns the snapshot folder, which reads like any model folder.
 *
 * A complete snapshot already in the cache is used without touching the network (a branch or
 * tag is resolved through refs/). Otherwise the revision is resolved to a commit, every file's
 * ETag and size are asked for, the missing blobs are downloaded (resumed where a previous run
 * stopped) and checked against their ETag, and only when every file has arrived intact are the
 * snapshot links and refs/ written: a failure leaves the cache as it was, plus any whole,
 * verified blobs, which the next run will not download again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { readWeightIndex } from '../model/load.js';
import { blobPath, cachedCommit, linkSnapshotFile, repoFolder, snapshotDir, writeRef } from './cache.js';
import { checkBlob, HubClient, removeFile, type FileMeta } from './client.js';
import { parseModelId, type ModelId } from './repoId.js';
import { hubSettings, type HubSettings } from './settings.js';

export interface DownloadProgress {
  /** the file being downloaded */
  readonly file: string;
  /** bytes of this run's downloads done and in all */
  readonly done: number;
  readonly total: number;
}

export interface SnapshotOptions {
  readonly settings?: HubSettings;
  readonly onProgress?: (p: DownloadProgress) => void;
  readonly fetch?: typeof fetch;
}

export interface Snapshot {
  readonly id: ModelId;
  readonly commit: string;
  readonly folder: string;
  /** the repo's folder in the cache */
  readonly cacheFolder: string;
  /** bytes downloaded by this call (0 for a cache hit) */
  readonly downloaded: number;
}

/** Which files a kind of repo needs, and whether a snapshot folder has them all. */
export interface FilePlan {
  /** always needed */
  readonly required: readonly string[];
  /** taken when the repo has them */
  readonly optional: readonly string[];
  /** the weights: the sharded index and its shards, else the single file (models only) */
  readonly weights: boolean;
}

export const MODEL_PLAN: FilePlan = {
  required: ['config.json'],
  optional: ['preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'],
  weights: true,
};

export const TOKENIZER_PLAN: FilePlan = {
  required: ['tokenizer.json'],
  optional: ['tokenizer_config.json', 'special_tokens_map.json'],
  weights: false,
};

export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX = 'model.safetensors.index.json';

/** The shard files a sharded checkpoint's index names. */
function shardFiles(indexFile: string): string[] {
  return [...new Set(readWeightIndex(indexFile).values())].sort();
}

/** Whether the snapshot folder holds every file of the plan (symlinks to blobs that exist). */
function complete(folder: string, plan: FilePlan): boolean {
  const has = (f: string): boolean => fs.existsSync(path.join(folder, f));
  if (!plan.required.every(has)) return false;
  if (!plan.weights) return true;
  if (has(WEIGHTS_INDEX)) {
    try {
      return shardFiles(path.join(folder, WEIGHTS_INDEX)).every(has);
    } catch {
      return false;
    }
  }
  return has(WEIGHTS_FILE);
}

function cachedSnapshot(settings: HubSettings, id: ModelId, plan: FilePlan): string | undefined {
  const commit = cachedCommit(settings.cacheDir, id.repo, id.revision);
  if (commit === undefined) return undefined;
  const folder = snapshotDir(settings.cacheDir, id.repo, commit);
  return complete(folder, plan) ? commit : undefined;
}

/** Brings `spec` (`ORG/NAME[@REVISION]` or a parsed id) into the cache; returns its snapshot. */
export async function snapshot(spec: string | ModelId, plan: FilePlan = MODEL_PLAN, options: SnapshotOptions = {}): Promise<Snapshot> {
  const id = typeof spec === 'string' ? parseModelId(spec) : spec;
  const settings = options.settings ?? hubSettings();
  const name = `${id.repo}@${id.revision}`;
  const cacheFolder = repoFolder(settings.cacheDir, id.repo);
  const hit = cachedSnapshot(settings, id, plan);
  const found = (commit: string): Snapshot => ({ id, commit, folder: snapshotDir(settings.cacheDir, id.repo, commit), cacheFolder, downloaded: 0 });
  if (hit !== undefined) return found(hit);
  if (settings.offline) {
    throw new UserError(`${name}: HF_HUB_OFFLINE is set and the model is not (completely) in the cache ${settings.cacheDir}`);
  }
  return download(id, plan, settings, options);
}

async function download(id: ModelId, plan: FilePlan, settings: HubSettings, options: SnapshotOptions): Promise<Snapshot> {
  const client = new HubClient(settings, options.fetch);
  const name = `${id.repo}@${id.revision}`;
  const { commit, files } = await client.revisionInfo(id.repo, id.revision);
  const wanted: string[] = [];
  for (const f of plan.required) {
    if (!files.has(f)) throw new UserError(`${name}: has no ${f}${plan.weights ? ' (not a PS3 model folder)' : ''}`);
    wanted.push(f);
  }
  for (const f of plan.optional) if (files.has(f)) wanted.push(f);

  const metas = new Map<string, FileMeta>();
  const meta = async (file: string): Promise<FileMeta> => {
    const m = await client.fileMeta(id.repo, commit, file);
    metas.set(file, m);
    return m;
  };
  for (const f of wanted) await meta(f);

  // the index is small and names the shards: fetch it first
  let weightFiles: string[] = [];
  if (plan.weights) {
    if (files.has(WEIGHTS_INDEX)) {
      const m = await meta(WEIGHTS_INDEX);
      await fetchBlob(client, settings, id, WEIGHTS_INDEX, m, () => undefined);
      weightFiles = shardFiles(blobPath(settings.cacheDir, id.repo, m.etag));
      for (const shard of weightFiles) {
        if (!files.has(shard)) throw new UserError(`${name}: ${WEIGHTS_INDEX} names ${shard}, which the repo does not have`);
        await meta(shard);
      }
      weightFiles = [WEIGHTS_INDEX, ...weightFiles];
    } else if (files.has(WEIGHTS_FILE)) {
      await meta(WEIGHTS_FILE);
      weightFiles = [WEIGHTS_FILE];
    } else {
      throw new UserError(`${name}: has no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX} (only safetensors checkpoints are read)`);
    }
  }
  const all = [...wanted, ...weightFiles];

  // progress counts the bytes of the blobs not yet in the cache, resumed parts included as done
  const missing = all.filter((f) => !fs.existsSync(blobPath(settings.cacheDir, id.repo, metas.get(f)!.etag)));
  const total = missing.reduce((a, f) => a + metas.get(f)!.size, 0);
  let done = missing.reduce((a, f) => a + partSize(settings, id, metas.get(f)!), 0);
  const startedAt = done;
  for (const f of missing) {
    await fetchBlob(client, settings, id, f, metas.get(f)!, (n) => {
      done += n;
      options.onProgress?.({ file: f, done, total });
    });
  }
  for (const f of all) linkSnapshotFile(settings.cacheDir, id.repo, commit, f, metas.get(f)!.etag);
  writeRef(settings.cacheDir, id.repo, id.revision, commit);
  return { id, commit, folder: snapshotDir(settings.cacheDir, id.repo, commit), cacheFolder: repoFolder(settings.cacheDir, id.repo), downloaded: done - startedAt };
}

function partSize(settings: HubSettings, id: ModelId, m: FileMeta): number {
  try {
    return Math.min(m.size, fs.statSync(`${blobPath(settings.cacheDir, id.repo, m.etag)}.incomplete`).size);
  } catch {
    return 0;
  }
}

/** Downloads one blob unless it is there, checks it, and moves it into place. */
async function fetchBlob(client: HubClient, settings: HubSettings, id: ModelId, file: string, m: FileMeta, onBytes: (n: number) => void): Promise<void> {
  const blob = blobPath(settings.cacheDir, id.repo, m.etag);
  if (fs.existsSync(blob)) return;
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  const incomplete = `${blob}.incomplete`;
  const what = `${id.repo}@${id.revision} ${file}`;
  await client.download(m, incomplete, what, onBytes);
  const problem = await checkBlob(incomplete, m.etag, m.size);
  if (problem !== undefined) {
    // corrupt bytes cannot be resumed from: drop them
    removeFile(incomplete);
    throw new UserError(`${what}: refused, the downloaded file does not match the Hub's checksum (${problem})`);
  }
  fs.renameSync(incomplete, blob);
}
