/**
 * Per-method LM context lengths in one VILA-HD folder (`context_lengths`, `train-mllm --context`):
 * each method's positions have its own length, answering respects each method's context, the
 * override is validated at the edge, and a method with its own context joins a folder (by
 * training or by `export --add`) without changing the other methods' weights.
 *
 * With the micro PS3 (scales 56-224) a low-res image is 4 merged tokens and AnyRes at 224 is
 * 17 views x 4 = 68: an LM of context 64 reads low-res questions but no AnyRes one — the shipped
 * folder's 1024 against AnyRes's 980 tokens at 756, in small.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { readConfigFile } from '../../src/model/load.js';
import { lmConfigOf, parseVilaConfig, withContextLength } from '../../src/mllm/config.js';
import { disposeVilaHd, loadVilaHd, newVilaConfig, randomVilaWeights, withMethods, writeVilaFiles } from '../../src/mllm/model.js';
import { answerQuestion, checkQuestion } from '../../src/mllm/answer.js';
import { exportVilaHd } from '../../src/mllm/export.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { assertBadInput, writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-context-'));
const ps3 = path.join(tmp, 'ps3');
const cacheRoot = path.join(tmp, 'cache');
const options = (out: string, extra: Partial<TrainVilaOptions> = {}): TrainVilaOptions => ({
  ps3, out, method: 'lowres', preset: 'micro', steps: 2, batch: 2, lr: 2e-3, warmup: 1, clip: 1, seed: 5, dataSeed: 31, images: 2,
  looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot, threads: 1, ...extra,
});


/** The stored bytes of every key of `method` in a folder's model.safetensors (and of its optimizer state, if there). */
function methodBytes(dir: string, method: string, optimizer = true): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const add = (file: string, prefix: string): void => {
    if (!fs.existsSync(file)) return;
    for (const [k, a] of readSafetensors(file)) {
      if (!k.replace(/^[mv]\./, '').startsWith(`${method}.`)) continue;
      out.set(`${prefix}${k}`, Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength));
    }
  };
  add(path.join(dir, 'model.safetensors'), '');
  if (optimizer) add(path.join(dir, 'optimizer.safetensors'), 'optimizer:');
  return out;
}

function assertSameBytes(a: Map<string, Buffer>, b: Map<string, Buffer>, what: string): void {
  assert.ok(a.size > 0, `${what}: no keys`);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort(), `${what}: the same keys`);
  for (const [k, x] of a) assert.ok(x.equals(b.get(k)!), `${what}: ${k} changed`);
}

function randomPixels(S: number, seed: number): { data: Float32Array; batch: number; height: number; width: number } {
  const data = new Float32Array(3 * S * S);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32) * 2 - 1;
  }
  return { data, batch: 1, height: S, width: S };
}

const positions = (dir: string, method: string): readonly number[] => readSafetensors(path.join(dir, 'model.safetensors')).get(`${method}.lm.embed_positions.weight`)!.shape;

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 6);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A folder: lowres at the folder's context 64, anyres at 128 of its own. */
async function twoContexts(dir: string): Promise<string> {
  const ps3Config = readConfigFile(path.join(ps3, 'config.json'));
  const base = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: path.relative(dir, ps3), contextLength: 64 });
  const config = withContextLength(withMethods(base, ['lowres', 'anyres']), 'anyres', 128);
  const weights = randomVilaWeights(config, ps3Config, ['lowres', 'anyres'], 3);
  fs.mkdirSync(dir, { recursive: true });
  await writeVilaFiles(dir, config, weights.entries());
  weights.dispose();
  return dir;
}

test('a folder whose methods have their own contexts loads; each has its own positions and answers within its own context', async () => {
  const dir = await twoContexts(path.join(tmp, 'two'));
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(raw['context_lengths'], { anyres: 128 });
  assert.equal((raw['lm'] as { context_length: number }).context_length, 64);
  assert.equal((JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as { model_max_length: number }).model_max_length, 128, 'the tokenizer takes the longest');
  const model = loadVilaHd(dir);
  try {
    assert.deepEqual(model.weights.get('lowres.lm.embed_positions.weight').shape, [64, 32]);
    assert.deepEqual(model.weights.get('anyres.lm.embed_positions.weight').shape, [128, 32]);
    assert.equal(lmConfigOf(model.config, 'lowres').contextLength, 64);
    assert.equal(lmConfigOf(model.config, 'anyres').contextLength, 128);
    const pixels = randomPixels(224, 1);
    const options = ['red', 'green', 'blue', 'yellow'];
    const low = await answerQuestion(model, 'lowres', pixels, 'What colour is the sign?', options);
    assert.equal(low.visualTokens, 4);
    assert.ok(low.scores.length === 4 && low.scores.every(Number.isFinite) && low.predicted >= 0);
    // 68 visual tokens: more than lowres's whole context, within anyres's
    const any = await answerQuestion(model, 'anyres', pixels, 'What colour is the sign?', options);
    assert.equal(any.visualTokens, 68);
    assert.ok(any.scores.length === 4 && any.scores.every(Number.isFinite));
    any.visual?.merged.dispose();
    low.visual?.merged.dispose();
    const written = await answerQuestion(model, 'anyres', pixels, 'What is it?', undefined, { maxNewTokens: 3 });
    assert.ok(written.predicted === -1 && written.text.split(' ').length <= 3);
    written.visual?.merged.dispose();
    // a question that fits anyres's context and not lowres's is refused for lowres only
    const long = 'what '.repeat(70).trim();
    assert.throws(() => checkQuestion(model, 'lowres', long), (e: unknown) => isUserError(e) && /longer than the LM's context allows \(the lowres LM's 64 tokens/.test(e.message));
    assert.ok(checkQuestion(model, 'anyres', long).length > 64);
  } finally {
    disposeVilaHd(model);
  }
  // one method's weights alone load with that method's shapes
  const only = loadVilaHd(dir, { methods: ['anyres'] });
  assert.deepEqual(only.weights.get('anyres.lm.embed_positions.weight').shape, [128, 32]);
  disposeVilaHd(only);
});

test('positions that disagree with the method\'s context are named with the key and both shapes', async () => {
  const dir = await twoContexts(path.join(tmp, 'mismatch'));
  const configFile = path.join(dir, 'config.json');
  const raw = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  const { context_lengths: _lengths, ...without } = raw;
  fs.writeFileSync(configFile, JSON.stringify(without));
  assert.throws(
    () => loadVilaHd(dir),
    (e: unknown) => isUserError(e) && /key "anyres\.lm\.embed_positions\.weight" has shape \[128,32\], expected \[64,32\] \(the anyres LM's context 64, field lm\.context_length of .*config\.json\)/.test(e.message),
  );
  fs.writeFileSync(configFile, JSON.stringify({ ...raw, context_lengths: { anyres: 256 } }));
  assert.throws(() => loadVilaHd(dir), (e: unknown) => isUserError(e) && /"anyres\.lm\.embed_positions\.weight" has shape \[128,32\], expected \[256,32\] \(.*field context_lengths\.anyres/.test(e.message));
  // the same through the CLI: one line, exit 2
  assertBadInput(['ask', configFile, 'What is it?', '--model', dir, '--method', 'anyres'], /"anyres\.lm\.embed_positions\.weight" has shape \[128,32\], expected \[256,32\]/);
});

test('context_lengths is validated at the edge: its keys are methods of the folder, its values integers >= 8', async () => {
  const base = newVilaConfig({ preset: 'micro', methods: ['ps3', 'lowres'], ps3Model: '../ps3' }).raw;
  const bad = (lengths: unknown): unknown => ({ ...base, context_lengths: lengths });
  const cases: Array<[unknown, RegExp]> = [
    [bad({ anyres: 512 }), /^c\.json: field context_lengths\.anyres: "anyres" is not a method of this folder \(it has ps3, lowres\)$/],
    [bad({ dense: 512 }), /field context_lengths\.dense: "dense" is not a method of this folder/],
    [bad({ lowres: 4 }), /^c\.json: field context_lengths\.lowres: must be an integer >= 8$/],
    [bad({ lowres: 100.5 }), /field context_lengths\.lowres: must be an integer >= 8/],
    [bad({ lowres: '512' }), /field context_lengths\.lowres: must be an integer >= 8/],
    [bad([512]), /field context_lengths/],
  ];
  for (const [json, pattern] of cases) assert.throws(() => parseVilaConfig(json, 'c.json'), (e: unknown) => isUserError(e) && pattern.test(e.message), String(pattern));
  const ok = parseVilaConfig(bad({ lowres: 512 }), 'c.json');
  assert.equal(lmConfigOf(ok, 'lowres').contextLength, 512);
  assert.equal(lmConfigOf(ok, 'ps3').contextLength, 256);
  assert.equal(lmConfigOf(ok, 'ps3'), ok.lm, 'a method without its own context runs the folder\'s LM config as is');

  // the CLI names the file and the field in one line
  const dir = await twoContexts(path.join(tmp, 'badkey'));
  const configFile = path.join(dir, 'config.json');
  const raw = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(configFile, JSON.stringify({ ...raw, context_lengths: { s2: 128 } }));
  assertBadInput(['ask', configFile, 'What is it?', '--model', dir, '--method', 'lowres'], /config\.json: field context_lengths\.s2: "s2" is not a method of this folder \(it has lowres, anyres\)/);
});

test('train-mllm --context: a method joins a folder with its own context, the others\' weights byte for byte as they were; a resume keeps its context', async () => {
  const out = path.join(tmp, 'run');
  const ckpt = path.join(out, 'checkpoint');
  // a new folder: --context is the folder's lm.context_length
  await trainVilaHd(options(out, { contextLength: 64 }));
  const config0 = JSON.parse(fs.readFileSync(path.join(ckpt, 'config.json'), 'utf8')) as { lm: { context_length: number }; context_lengths?: unknown };
  assert.equal(config0.lm.context_length, 64);
  assert.equal(config0.context_lengths, undefined);
  assert.deepEqual(positions(ckpt, 'lowres'), [64, 32]);
  const lowres = methodBytes(ckpt, 'lowres');
  fs.cpSync(out, path.join(tmp, 'run-lowres'), { recursive: true });

  // anyres in the folder's context cannot read its 68 visual tokens and a question: the run stops, the folder as it was
  await assert.rejects(trainVilaHd(options(out, { method: 'anyres' })), (e: unknown) => isUserError(e) && /longer than the LM's context of 64/.test(e.message));
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(ckpt, 'config.json'), 'utf8')), config0);

  // with its own context it trains into the same folder
  await trainVilaHd(options(out, { method: 'anyres', contextLength: 128 }));
  const config1 = JSON.parse(fs.readFileSync(path.join(ckpt, 'config.json'), 'utf8')) as { methods: string[]; lm: { context_length: number }; context_lengths?: unknown };
  assert.deepEqual(config1.methods, ['lowres', 'anyres']);
  assert.equal(config1.lm.context_length, 64);
  assert.deepEqual(config1.context_lengths, { anyres: 128 });
  assert.deepEqual(positions(ckpt, 'anyres'), [128, 32]);
  assertSameBytes(lowres, methodBytes(ckpt, 'lowres'), 'lowres after anyres joined');

  // a resume with another --context is refused before any work (the cache it would build is never made)
  const never = path.join(tmp, 'cache-never');
  await assert.rejects(
    trainVilaHd(options(out, { method: 'anyres', resume: true, steps: 3, contextLength: 256, cacheRoot: never })),
    (e: unknown) => isUserError(e) && /^--context 256: the anyres LM in .*checkpoint has context 128 \(give --context 128 or leave it out\)$/.test(e.message),
  );
  await assert.rejects(trainVilaHd(options(out, { resume: true, steps: 3, contextLength: 128, cacheRoot: never })), (e: unknown) => isUserError(e) && /the lowres LM in .* has context 64/.test(e.message));
  assert.ok(!fs.existsSync(never));
  assertBadInput(
    ['train-mllm', '--out', out, '--method', 'anyres', '--preset', 'micro', '--resume', '--steps', '3', '--context', '256', '--cache', never, '--threads', '1'],
    /--context 256: the anyres LM in .* has context 128/,
  );
  assertBadInput(['train-mllm', '--ps3', ps3, '--out', path.join(tmp, 'x'), '--context', '4'], /--context must be an integer >= 8/);
  assertBadInput(['train-mllm', '--ps3', ps3, '--out', path.join(tmp, 'x'), '--context', 'long'], /--context must be a number, got "long"/);
  assert.ok(!fs.existsSync(path.join(tmp, 'x', 'checkpoint')));

  // the same context (or none) resumes
  await trainVilaHd(options(out, { method: 'anyres', resume: true, steps: 3, contextLength: 128 }));
  assert.deepEqual(positions(ckpt, 'anyres'), [128, 32]);
  assertSameBytes(lowres, methodBytes(ckpt, 'lowres'), 'lowres after anyres resumed');
  const model = loadVilaHd(ckpt);
  try {
    const a = await answerQuestion(model, 'anyres', randomPixels(224, 2), 'What colour is the sign?', ['red', 'green']);
    assert.equal(a.visualTokens, 68);
    a.visual?.merged.dispose();
  } finally {
    disposeVilaHd(model);
  }
});

test('export --add joins a method trained with its own context into a folder of another', async () => {
  // anyres trained alone in a new folder of context 128; the lowres-only folder of the run above has 64
  const solo = path.join(tmp, 'anyres-solo');
  await trainVilaHd(options(solo, { method: 'anyres', contextLength: 128, steps: 1 }));
  const from = path.join(tmp, 'run-lowres', 'checkpoint');
  const merged = path.join(tmp, 'merged');
  exportVilaHd(from, merged, 'F32', [path.join(solo, 'checkpoint')]);
  const config = JSON.parse(fs.readFileSync(path.join(merged, 'config.json'), 'utf8')) as { methods: string[]; lm: { context_length: number }; context_lengths?: unknown };
  assert.deepEqual(config.methods, ['lowres', 'anyres']);
  assert.equal(config.lm.context_length, 64);
  assert.deepEqual(config.context_lengths, { anyres: 128 });
  assert.equal((JSON.parse(fs.readFileSync(path.join(merged, 'tokenizer_config.json'), 'utf8')) as { model_max_length: number }).model_max_length, 128);
  assertSameBytes(methodBytes(from, 'lowres', false), methodBytes(merged, 'lowres'), 'lowres exported');
  const model = loadVilaHd(merged);
  try {
    assert.deepEqual(model.weights.get('anyres.lm.embed_positions.weight').shape, [128, 32]);
    assert.deepEqual(model.weights.get('lowres.lm.embed_positions.weight').shape, [64, 32]);
  } finally {
    disposeVilaHd(model);
  }
  // another LM shape is still refused
  const ps3Config = readConfigFile(path.join(ps3, 'config.json'));
  const wide = path.join(tmp, 'wide');
  fs.mkdirSync(wide, { recursive: true });
  const c = parseVilaConfig({ ...newVilaConfig({ preset: 'micro', methods: ['s2'], ps3Model: path.relative(wide, ps3) }).raw, lm: { ...newVilaConfig({ preset: 'micro', methods: ['s2'], ps3Model: '.' }).raw['lm'] as object, layers: 3 } }, 'wide');
  const w = randomVilaWeights(c, ps3Config, ['s2'], 1);
  await writeVilaFiles(wide, c, w.entries());
  w.dispose();
  assert.throws(() => exportVilaHd(from, path.join(tmp, 'wide-out'), 'F32', [wide]), (e: unknown) => isUserError(e) && /its LM \(field lm\) differs/.test(e.message));
});
