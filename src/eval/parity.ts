/**
 * Parity against reference fixtures: a folder with `config.json`, `model.safetensors`,
 * `manifest.json` (cases: name, the reference call's args, input and output tensor names) and
 * `cases.safetensors`. Every case is run through our implementation and every output compared
 * with the fixture's tolerances (see ../shared/fixtures/README.md):
 *   selection maps exactly; `preprocess` within one 8-bit level; gradients within
 *   1e-3 * max(1e-3, max|expected|); everything else within 1e-4 * max(1, max|expected|).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { tf } from '../tensor/engine.js';
import { readSafetensors, type NamedArray } from '../io/safetensors.js';
import { loadPixelValues } from '../io/image.js';
import { UserError } from '../errors.js';
import { encodeImage, type EncodeOutput, type Pixels, type SelectionMap } from '../model/encoder.js';
import { featureMaps } from '../model/featureMaps.js';
import { loadModel, type PS3Model } from '../model/load.js';
import { lossAndGrads, pretrainObjective } from '../train/objective.js';
import { encodeText } from '../model/text.js';
import type { TrunkRunner } from '../model/vit.js';
import { convnetRunner, DEFAULT_TRUNK_ENGINE, releaseTrunk, trunkRunner, type TrunkEngine } from '../engine/trunkEngine.js';
import type { ConvnetRunner } from '../model/convnet.js';

const caseSchema = z.object({
  name: z.string(),
  args: z.record(z.string(), z.unknown()).default({}),
  inputs: z.record(z.string(), z.string()).default({}),
  outputs: z.record(z.string(), z.string()).default({}),
});
const manifestSchema = z.object({ cases: z.array(caseSchema) });
export type FixtureCase = z.infer<typeof caseSchema>;

export interface OutputCheck {
  readonly output: string;
  readonly status: 'pass' | 'fail' | 'skip';
  /** max abs error divided by the tolerance's scale (<= tolerance passes); NaN when skipped */
  readonly error: number;
  readonly detail?: string;
}

export interface CaseResult {
  readonly name: string;
  readonly status: 'pass' | 'fail' | 'skip';
  readonly checks: OutputCheck[];
  /** worst error relative to its tolerance (1 = at the limit) */
  readonly worst: number;
  readonly detail?: string;
}

type Produced = Map<string, { shape: readonly number[]; data: ArrayLike<number> }>;

function compare(output: string, got: { shape: readonly number[]; data: ArrayLike<number> } | undefined, expected: NamedArray, kind: 'map' | 'pixel' | 'grad' | 'value', pixelLevel: number): OutputCheck {
  if (!got) return { output, status: 'fail', error: Infinity, detail: 'not produced' };
  const shapeOk = got.shape.length === expected.shape.length && got.shape.every((d, i) => d === expected.shape[i]);
  if (!shapeOk) return { output, status: 'fail', error: Infinity, detail: `shape [${got.shape.join(', ')}], expected [${expected.shape.join(', ')}]` };
  let maxAbs = 0;
  let maxExpected = 0;
  let mismatches = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const e = expected.data[i]!;
    const d = Math.abs(got.data[i]! - e);
    if (Number.isNaN(d)) maxAbs = Infinity;
    else if (d > maxAbs) maxAbs = d;
    if (Math.abs(e) > maxExpected) maxExpected = Math.abs(e);
    if (kind === 'map' && (got.data[i]! > 0) !== (e > 0)) mismatches++;
  }
  if (kind === 'map') return { output, status: mismatches ? 'fail' : 'pass', error: mismatches, ...(mismatches ? { detail: `${mismatches} patches differ` } : {}) };
  const tolerance = kind === 'pixel' ? pixelLevel + 1e-6 : kind === 'grad' ? 1e-3 * Math.max(1e-3, maxExpected) : 1e-4 * Math.max(1, maxExpected);
  return { output, status: maxAbs <= tolerance ? 'pass' : 'fail', error: maxAbs / tolerance, detail: `max abs err ${maxAbs.toExponential(2)}` };
}

async function put(produced: Produced, name: string, t: tf.Tensor): Promise<void> {
  produced.set(name, { shape: t.shape, data: await t.data() });
}

function mapsToProduced(produced: Produced, out: Pick<EncodeOutput, 'selectionMaps'>, batch: number, prefix = 'selection_maps'): void {
  out.selectionMaps.forEach((m, i) => produced.set(`${prefix}.${i}`, { shape: [batch, m.height, m.width], data: m.data }));
}

function pixelsOf(a: NamedArray, name: string): Pixels {
  if (a.shape.length !== 4 || a.shape[1] !== 3) throw new UserError(`fixture input "${name}" has shape [${a.shape.join(', ')}], expected [B, 3, H, W]`);
  return { data: a.data as Float32Array, batch: a.shape[0]!, height: a.shape[2]!, width: a.shape[3]! };
}

function lookArgs(args: Record<string, unknown>): { numLookClose?: number | 'all'; numTokenLookClose?: number; onlySelectFirstNScale?: number | number[]; smoothSelectionProb?: boolean } {
  const out: ReturnType<typeof lookArgs> = {};
  const looks = args['num_look_close'];
  if (looks !== undefined && looks !== null) out.numLookClose = looks === 'all' ? 'all' : Number(looks);
  const tokens = args['num_token_look_close'];
  if (tokens !== undefined && tokens !== null) {
    if (tokens === 'all') out.numLookClose = 'all';
    else out.numTokenLookClose = Number(tokens);
  }
  const firstN = args['only_select_first_n_scale'];
  if (Array.isArray(firstN)) out.onlySelectFirstNScale = firstN.length === 1 ? Number(firstN[0]) : firstN.map(Number);
  else if (typeof firstN === 'number') out.onlySelectFirstNScale = firstN;
  if (args['smooth_selection_prob'] === true) out.smoothSelectionProb = true;
  return out;
}

/**
 * Run one case; `encodeCache` keeps encoder outputs for cases that reuse them (`from_case`).
 * `trunk` and `convnet` run the encoder's blocks and the selector's convnet (TensorFlow.js when
 * null); the pre-training case and its gradients always run on TensorFlow.js, which
 * differentiates them.
 */
async function runCase(model: PS3Model, dir: string, c: FixtureCase, tensors: Map<string, NamedArray>, encodeCache: Map<string, Produced>, trunk: TrunkRunner | null, convnet: ConvnetRunner | null): Promise<Produced> {
  const input = (role: string): NamedArray => {
    const key = c.inputs[role];
    const a = key === undefined ? undefined : tensors.get(key);
    if (!a) throw new UserError(`case "${c.name}": input "${role}" is missing from cases.safetensors`);
    return a;
  };
  const produced: Produced = new Map();
  const cfg = model.config;
  const args = c.args;

  if (typeof args['image_file'] === 'string') {
    const size = args['size'] as number[] | number;
    const side = Array.isArray(size) ? size[0]! : size;
    const pv = await loadPixelValues(path.join(dir, args['image_file']), { size: side, mean: (args['mean'] as number[]) ?? [0.5, 0.5, 0.5], std: (args['std'] as number[]) ?? [0.5, 0.5, 0.5] });
    produced.set('pixel_values', { shape: [1, 3, pv.height, pv.width], data: pv.pixels });
    return produced;
  }

  if (typeof args['from_case'] === 'string') {
    const from = encodeCache.get(args['from_case']);
    if (!from) throw new UserError(`case "${c.name}": from_case "${args['from_case']}" was not run before it`);
    const last = from.get('last_hidden_state')!;
    const ns = cfg.vision.scales.length - 1;
    const B = last.shape[0]!;
    const maps = Array.from({ length: ns }, (_, i) => {
      const m = from.get(`selection_maps.${i}`)!;
      return { height: m.shape[1]!, width: m.shape[2]!, data: Uint8Array.from(m.data as ArrayLike<number>) };
    });
    const tokens = tf.tensor(last.data as Float32Array, [...last.shape]);
    const fm = featureMaps(tokens, maps, cfg.vision.scales[0]! / cfg.vision.trunk.patchSize);
    for (const [i, t] of fm.entries()) await put(produced, `feature_maps.${i}`, t);
    tf.dispose([tokens, ...fm]);
    void B;
    return produced;
  }

  if (c.inputs['text'] && c.inputs['pixel_values'] && c.inputs['gt_selection_maps']) {
    const text = input('text');
    const pixels = pixelsOf(input('pixel_values'), c.inputs['pixel_values']);
    const gt = input('gt_selection_maps').data as Float32Array;
    const isGlobal = c.inputs['is_global_text'] ? input('is_global_text').data : new Float32Array(pixels.batch);
    const batch = { pixels, text: Int32Array.from(text.data), gtSelectionMaps: gt, isGlobalText: Float32Array.from(isGlobal) };
    let maps: SelectionMap[] = [];
    const names: string[] = [];
    const outputs = tf.tidy(() => {
      const o = pretrainObjective(model.weights, cfg, batch);
      maps = o.selectionMaps;
      // the reference stores each loss term as a [1] tensor
      const named: Array<[string, tf.Tensor]> = [
        ['pooled_output', o.pooledOutput],
        ['image_features', o.imageFeatures],
        ['text_features', o.textFeatures],
        ['logits', o.logits],
        ['contrastive_loss', tf.reshape(o.contrastive, [1])],
        ['prior_box_loss', tf.reshape(o.priorBox, [1])],
        ['posterior_box_loss', tf.reshape(o.posteriorBox, [1])],
        ['total_loss', tf.reshape(o.total, [1])],
        ...o.bottomupSelectionProbs.map((p, i): [string, tf.Tensor] => [`bottomup_selection_probs.${i}`, p]),
        ...o.topdownSelectionProbs.map((p, i): [string, tf.Tensor] => [`topdown_selection_probs.${i}`, p]),
      ];
      names.push(...named.map(([n]) => n));
      return named.map(([, t]) => t);
    });
    for (const [i, t] of outputs.entries()) await put(produced, names[i]!, t);
    mapsToProduced(produced, { selectionMaps: maps }, pixels.batch);
    tf.dispose(outputs);
    if (Object.keys(c.outputs).some((o) => o.startsWith('grad/'))) {
      const { grads } = lossAndGrads(model.weights, cfg, batch);
      for (const [key, g] of grads) await put(produced, `grad/${key}`, g);
      tf.dispose([...grads.values()]);
    }
    return produced;
  }

  if (c.inputs['text'] && !c.inputs['pixel_values']) {
    const text = input('text');
    const out = encodeText(model.weights, cfg.text, Int32Array.from(text.data), text.shape[0]!);
    await put(produced, 'pooled_output', out.pooledOutput);
    await put(produced, 'prompt', out.prompt);
    tf.dispose([out.pooledOutput, out.prompt]);
    return produced;
  }

  if (c.inputs['pixel_values']) {
    const pixels = pixelsOf(input('pixel_values'), c.inputs['pixel_values']);
    const prompt = c.inputs['prompt'] ? tf.tensor(input('prompt').data as Float32Array, [...input('prompt').shape]) : undefined;
    const gt = c.inputs['gt_selection_maps'] ? (input('gt_selection_maps').data as Float32Array) : undefined;
    const out = await encodeImage(model.weights, cfg, pixels, { ...lookArgs(args), ...(prompt ? { prompt } : {}), ...(gt ? { gtSelectionMaps: gt } : {}), trunk, convnet });
    await put(produced, 'last_hidden_state', out.lastHiddenState);
    for (const [i, h] of out.hiddenStates.entries()) await put(produced, `hidden_states.${i}`, h);
    for (const [i, p] of out.selectionProbs.entries()) await put(produced, `selection_probs.${i}`, p);
    for (const [i, p] of out.bottomupSelectionProbs.entries()) await put(produced, `bottomup_selection_probs.${i}`, p);
    if (out.topdownSelectionProbs) for (const [i, p] of out.topdownSelectionProbs.entries()) await put(produced, `topdown_selection_probs.${i}`, p);
    await put(produced, 'pooled_output', out.pooledOutput);
    if (out.selectionMaps.some((m) => m.data.some((v) => v))) mapsToProduced(produced, out, pixels.batch);
    tf.dispose([out.lastHiddenState, ...out.hiddenStates, ...out.selectionProbs, ...out.bottomupSelectionProbs, ...(out.topdownSelectionProbs ?? []), out.pooledOutput, ...(prompt ? [prompt] : [])]);
    encodeCache.set(c.name, produced);
    return produced;
  }
  throw new UserError(`case "${c.name}": cannot tell what it tests (inputs: ${Object.keys(c.inputs).join(', ') || 'none'}; args: ${Object.keys(args).join(', ') || 'none'})`);
}

/** Counts are of compared outputs (a case that could not run counts as one failure). */
export interface ParityReport {
  readonly cases: CaseResult[];
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
}

function readManifest(dir: string): FixtureCase[] {
  const file = path.join(dir, 'manifest.json');
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : `not valid JSON (${(e as Error).message})`}`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${file}: field ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  return parsed.data.cases;
}

/** Run every case of a fixture folder, the trunk on `engine` (default ONNX Runtime); `onCase` sees each result as it lands. */
export async function runParity(dir: string, onCase: (r: CaseResult) => void = () => {}, engine: TrunkEngine = DEFAULT_TRUNK_ENGINE): Promise<ParityReport> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir}: fixture folder not found`);
  const cases = readManifest(dir);
  const model = loadModel(dir);
  const trunk = await trunkRunner(engine, model.weights, model.config.vision.trunk);
  const convnet = convnetRunner(engine, model.weights, model.config.vision);
  const tensors = readSafetensors(path.join(dir, 'cases.safetensors'));
  const encodeCache = new Map<string, Produced>();
  const results: CaseResult[] = [];
  try {
    for (const c of cases) {
      let produced: Produced;
      try {
        produced = await runCase(model, dir, c, tensors, encodeCache, trunk, convnet);
      } catch (e) {
        const r: CaseResult = { name: c.name, status: 'fail', checks: [], worst: Infinity, detail: e instanceof Error ? e.message : String(e) };
        results.push(r);
        onCase(r);
        continue;
      }
      const std = (c.args['std'] as number[] | undefined) ?? [0.5];
      const pixelLevel = 1 / 255 / Math.min(...std);
      const checks = Object.entries(c.outputs).map(([output, key]): OutputCheck => {
        const expected = tensors.get(key);
        if (!expected) return { output, status: 'fail', error: Infinity, detail: `"${key}" missing from cases.safetensors` };
        const kind = output.startsWith('selection_maps') ? 'map' : c.args['image_file'] ? 'pixel' : output.startsWith('grad/') ? 'grad' : 'value';
        return compare(output, produced.get(output), expected, kind, pixelLevel);
      });
      const compared = checks.filter((k) => k.status !== 'skip');
      const failed = compared.some((k) => k.status === 'fail');
      const worst = compared.reduce((a, k) => Math.max(a, k.output.startsWith('selection_maps') ? (k.error > 0 ? Infinity : 0) : k.error), 0);
      const status = failed ? 'fail' : compared.length ? 'pass' : 'skip';
      const r: CaseResult = { name: c.name, status, checks, worst };
      results.push(r);
      onCase(r);
    }
  } finally {
    await releaseTrunk(engine, model.weights);
    model.weights.dispose();
  }
  const count = (s: OutputCheck['status']): number => results.reduce((a, r) => a + r.checks.filter((k) => k.status === s).length, 0);
  const crashed = results.filter((r) => r.checks.length === 0 && r.status === 'fail').length;
  return { cases: results, passed: count('pass'), failed: count('fail') + crashed, skipped: count('skip') };
}
