/**
 * `ps3 info <model> [--json]`: what a model is (scales, budgets, trunk, text tower, tokenizer,
 * size, dtype) and, for a Hub id, where it is cached. A Hub id not yet cached is downloaded.
 */
import { modelInfo, type ModelInfo } from '../model/info.js';
import { hubSettings } from '../hub/settings.js';
import { snapshot, TOKENIZER_PLAN } from '../hub/snapshot.js';
import { resolveModelSpec } from './inputs.js';

function millions(n: number): string {
  return `${(n / 1e6).toFixed(n < 1e6 ? 3 : 1)}M`;
}

function megabytes(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MB`;
}

/** Where the named tokenizer repo is cached, if it is (never downloads). */
async function cachedTokenizer(repo: string): Promise<string | null> {
  try {
    return (await snapshot(repo, TOKENIZER_PLAN, { settings: { ...hubSettings(), offline: true } })).folder;
  } catch {
    return null;
  }
}

export async function infoCommand(spec: string, o: { json?: boolean }): Promise<number> {
  const resolved = await resolveModelSpec(spec);
  const info: ModelInfo = modelInfo(resolved.folder);
  const tokenizerCache = info.tokenizer.repo !== null ? await cachedTokenizer(info.tokenizer.repo) : null;
  const cache = resolved.snapshot ? { repo: resolved.snapshot.id.repo, revision: resolved.snapshot.id.revision, commit: resolved.snapshot.commit, snapshot: resolved.snapshot.folder, cacheFolder: resolved.snapshot.cacheFolder } : null;
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ model: spec, ...info, tokenizer: { ...info.tokenizer, cached: tokenizerCache }, cache })}\n`);
    return 0;
  }
  const highres = info.scales.slice(1);
  const dtypes = Object.entries(info.dtypes).map(([d, n]) => `${d} ${millions(n)}`).join(', ');
  const tok = info.tokenizer.own
    ? `tokenizer.json in the folder${info.tokenizer.tokenizerClass ? ` (${info.tokenizer.tokenizerClass})` : ''}`
    : info.tokenizer.repo !== null
      ? `${info.tokenizer.repo} (${tokenizerCache !== null ? `cached: ${tokenizerCache}` : 'not cached; fetched when a Hub model needs it'})`
      : 'none (no tokenizer.json and no tokenizer named)';
  const lines = [
    `model      ${spec}`,
    `trunk      ${info.modelName}: width ${info.trunk.width}, depth ${info.trunk.depth}, ${info.trunk.heads} heads, patch ${info.trunk.patchSize}, MLP ${info.trunk.mlpHidden}`,
    `scales     ${info.scales.join(', ')} (low-res ${info.scales[0]}, high-res ${highres.join(', ')})`,
    `budgets    ${info.maxSelectNum} patches a look: ${highres.map((s, i) => `${s}: ${info.budgetsPerLook[i]}`).join(', ')}`,
    `text       width ${info.text.width}, ${info.text.layers} layers, ${info.text.heads} heads, vocabulary ${info.text.vocabSize}, context ${info.text.contextLength}, clean ${info.text.clean}`,
    `tokenizer  ${tok}`,
    `params     ${millions(info.params.vision + info.params.text)} (vision ${millions(info.params.vision)}, text ${millions(info.params.text)}); stored ${millions(info.params.stored)}`,
    `dtype      ${dtypes}; float32 in memory ${megabytes(4 * (info.params.vision + info.params.text))}`,
    `files      ${info.files.map((f) => `${f.name} ${megabytes(f.bytes)}`).join(', ')}; ${megabytes(info.bytes)} in all`,
    cache ? `cached     ${cache.snapshot} (${cache.repo}@${cache.revision} = ${cache.commit})` : `folder     ${info.folder}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
