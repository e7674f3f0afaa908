/**
 * `ps3 info <model> [--json]`: what a model is (scales, budgets, trunk, text tower, tokenizer,
 * size, dtype) and, for a Hub id, where it is cached. A Hub id not yet cached is downloaded. A
 * VILA-HD folder: its LM, methods and files, then its PS3 the same way.
 */
import { modelInfo, type ModelInfo } from '../model/info.js';
import { isVilaFolder } from '../mllm/config.js';
import { vilaInfo, type VilaInfo } from '../mllm/info.js';
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

function tokenizerLine(info: ModelInfo, cached: string | null): string {
  return info.tokenizer.own
    ? `tokenizer.json in the folder${info.tokenizer.tokenizerClass ? ` (${info.tokenizer.tokenizerClass})` : ''}`
    : info.tokenizer.repo !== null
      ? `${info.tokenizer.repo} (${cached !== null ? `cached: ${cached}` : 'not cached; fetched when a Hub model needs it'})`
      : 'none (no tokenizer.json and no tokenizer named)';
}

function dtypeList(dtypes: Readonly<Record<string, number>>): string {
  return Object.entries(dtypes).map(([d, n]) => `${d} ${millions(n)}`).join(', ');
}

function ps3Lines(info: ModelInfo, tokenizer: string): string[] {
  const highres = info.scales.slice(1);
  return [
    `trunk      ${info.modelName}: width ${info.trunk.width}, depth ${info.trunk.depth}, ${info.trunk.heads} heads, patch ${info.trunk.patchSize}, MLP ${info.trunk.mlpHidden}`,
    `scales     ${info.scales.join(', ')} (low-res ${info.scales[0]}, high-res ${highres.join(', ')})`,
    `budgets    ${info.maxSelectNum} patches a look: ${highres.map((s, i) => `${s}: ${info.budgetsPerLook[i]}`).join(', ')}`,
    `text       width ${info.text.width}, ${info.text.layers} layers, ${info.text.heads} heads, vocabulary ${info.text.vocabSize}, context ${info.text.contextLength}, clean ${info.text.clean}`,
    `tokenizer  ${tokenizer}`,
    `params     ${millions(info.params.vision + info.params.text)} (vision ${millions(info.params.vision)}, text ${millions(info.params.text)}); stored ${millions(info.params.stored)}`,
    `dtype      ${dtypeList(info.dtypes)}; float32 in memory ${megabytes(4 * (info.params.vision + info.params.text))}`,
    `files      ${info.files.map((f) => `${f.name} ${megabytes(f.bytes)}`).join(', ')}; ${megabytes(info.bytes)} in all`,
  ];
}

function vilaLines(spec: string, info: VilaInfo): string[] {
  const lm = info.lm;
  const methods = info.methods.map((m) => `${m.method} (${millions(m.params)}, context ${m.contextLength}${m.resolution !== null ? `, tiles at ${m.resolution} px` : ''})`);
  return [
    `model      ${spec} (VILA-HD)`,
    `lm         width ${lm.width}, ${lm.layers} layers, ${lm.heads} heads, MLP ${lm.mlpHidden}, vocabulary ${lm.vocabSize} (tokenizer.json: ${info.vocabulary} words), ${lm.tieWordEmbeddings ? 'tied' : 'separate'} input and output embeddings`,
    `methods    ${methods.join(', ')}: an LM and a projector each`,
    `projector  2 x 2 token merge, then LayerNorm, Linear to ${info.projectorHidden}, GELU, Linear to width ${lm.width}`,
    `prompt     ps3: a head (hidden width ${info.promptHidden}) on the LM's state at the question's end makes PS3's prompt; selection loss weight ${info.selectionWeight}`,
    `params     ${millions(info.params.total)} in the methods; stored ${millions(info.params.stored)}`,
    `dtype      ${dtypeList(info.dtypes)}; float32 in memory ${megabytes(4 * info.params.stored)}`,
    `files      ${info.files.map((f) => `${f.name} ${megabytes(f.bytes)}`).join(', ')}; ${megabytes(info.bytes)} in all`,
    `folder     ${info.folder}`,
    `ps3        ${info.ps3Model} (${info.ps3Folder})`,
    ...ps3Lines(info.ps3, tokenizerLine(info.ps3, null)).map((l) => `  ${l}`),
  ];
}

export async function infoCommand(spec: string, o: { json?: boolean }): Promise<number> {
  if (isVilaFolder(spec)) {
    const info = vilaInfo(spec);
    process.stdout.write(o.json ? `${JSON.stringify({ model: spec, ...info })}\n` : `${vilaLines(spec, info).join('\n')}\n`);
    return 0;
  }
  const resolved = await resolveModelSpec(spec);
  const info: ModelInfo = modelInfo(resolved.folder);
  const tokenizerCache = info.tokenizer.repo !== null ? await cachedTokenizer(info.tokenizer.repo) : null;
  const cache = resolved.snapshot ? { repo: resolved.snapshot.id.repo, revision: resolved.snapshot.id.revision, commit: resolved.snapshot.commit, snapshot: resolved.snapshot.folder, cacheFolder: resolved.snapshot.cacheFolder } : null;
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ model: spec, ...info, tokenizer: { ...info.tokenizer, cached: tokenizerCache }, cache })}\n`);
    return 0;
  }
  const lines = [
    `model      ${spec}`,
    ...ps3Lines(info, tokenizerLine(info, tokenizerCache)),
    cache ? `cached     ${cache.snapshot} (${cache.repo}@${cache.revision} = ${cache.commit})` : `folder     ${info.folder}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
