/**
 * The captions task (VILA's alignment stage) and `eval captions`: a scene's caption samples are
 * its own regions, drawn by the seed; a captions run trains the LM and projector and leaves the
 * prompt head as it was; the reading measure is exactly zero for an LM that cannot see the
 * visual tokens and not for one that can; bad options are refused in one line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { renderScene } from '../../src/data/scene/render.js';
import { sceneRng } from '../../src/data/synth.js';
import { cacheDir, captionSamples, CAPTION_QUESTION } from '../../src/mllm/trainData.js';
import { keptRows, regionMaps } from '../../src/mllm/visual.js';
import { disposeVilaHd, loadVilaHd } from '../../src/mllm/model.js';
import { Weights } from '../../src/model/weights.js';
import { taskSplit, trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { contentKinds, contentWords, evaluateCaptionReading } from '../../src/eval/captionReading.js';
import { assertBadInput, runCli, writeMicroPs3, writeMicroVila } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-captions-'));
const ps3 = path.join(tmp, 'ps3');
const source = path.join(tmp, 'source');
const options = (out: string, extra: Partial<TrainVilaOptions> = {}): TrainVilaOptions => ({
  ps3, out, method: 'ps3', preset: 'micro', steps: 2, batch: 2, lr: 1e-3, warmup: 0, clip: 1, seed: 3, dataSeed: 41, images: 2,
  looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'), threads: 1,
  task: 'captions', captions: 3, ...extra,
});

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 4);
  await writeMicroVila(source, ps3, ['ps3', 'lowres'], 17);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a scene\'s caption samples are distinct regions of it, with their boxes and captions, drawn by the seed', () => {
  const scene = renderScene(sceneRng(41, 0), { width: 512, height: 512 });
  assert.ok(scene.regions.length >= 4, `${scene.regions.length} regions`);
  const samples = captionSamples(scene, 41, 0, 4);
  assert.equal(samples.length, 4);
  assert.deepEqual(samples.map((s) => s.index), [0, 1, 2, 3]);
  const picked = samples.map((s) => scene.regions.findIndex((r) => r.caption === s.target && r.box.every((v, k) => v === s.box[k])));
  assert.ok(picked.every((j) => j >= 0), 'each sample is one of the scene\'s regions');
  assert.equal(new Set(picked).size, 4, 'distinct regions');
  for (const s of samples) assert.deepEqual([s.question, s.options, s.answer, s.category], [CAPTION_QUESTION, [], -1, 'caption']);
  assert.deepEqual(captionSamples(scene, 41, 0, 4), samples, 'a function of the seed and the image');
  assert.notDeepEqual(captionSamples(scene, 42, 0, 4).map((s) => s.target), samples.map((s) => s.target));
  assert.equal(captionSamples(scene, 41, 0, 100).length, scene.regions.length, 'no more than the scene has');
});

test('a caption\'s look keeps the rows of its region\'s cells among the chosen ones, scale by scale', () => {
  const map = (height: number, width: number, on: number[]) => ({ height, width, data: Uint8Array.from({ length: height * width }, (_, j) => (on.includes(j) ? 1 : 0)) });
  // chosen: scale 0 cells 1, 2, 3 (rows 0-2), scale 1 cells 0, 5, 9 (rows 3-5)
  const chosen = [map(2, 2, [1, 2, 3]), map(4, 4, [0, 5, 9])];
  assert.deepEqual([...keptRows(chosen, [map(2, 2, [2]), map(4, 4, [0, 9])])], [1, 3, 5]);
  assert.deepEqual([...keptRows(chosen, chosen)], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...keptRows(chosen, [map(2, 2, []), map(4, 4, [])])], []);
  // a look cut to a region: chosen cells inside the region's box targets
  const region = regionMaps(chosen, [Float32Array.from([0, 0, 1, 1]), Float32Array.from({ length: 16 }, (_, j) => (j < 8 ? 1 : 0))]);
  assert.deepEqual(region.map((m) => [...m.data]), [[0, 0, 1, 1], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]);
  assert.deepEqual([...keptRows(chosen, region)], [1, 2, 3, 4]);
});

test('a captions run trains the LM and projector on captions and leaves the prompt head as --init gave it', async () => {
  const out = path.join(tmp, 'cap');
  const r = await trainVilaHd(options(out, { init: { dir: source, method: 'ps3' } }));
  assert.equal(r.step, 2);
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { answer_loss: number; selection_loss: number | null });
  assert.equal(lines.length, 2);
  assert.ok(lines.every((m) => Number.isFinite(m.answer_loss) && m.selection_loss === null));
  assert.ok(lines.every((m) => m.answer_loss > 0), 'the captions task\'s answer loss is its captions\'');
  const before = readSafetensors(path.join(source, 'model.safetensors'));
  const after = readSafetensors(path.join(out, 'checkpoint', 'model.safetensors'));
  const same = (k: string): boolean => before.get(k)!.data.every((v, i) => v === after.get(k)!.data[i]);
  assert.ok(same('ps3.prompt_head.fc2.weight') && same('ps3.prompt_head.fc1.bias'), 'prompt head unchanged');
  assert.ok(!same('ps3.projector.fc1.weight') && !same('ps3.lm.norm.weight'), 'projector and LM trained');
  const cached = JSON.parse(fs.readFileSync(path.join(fs.readdirSync(path.join(tmp, 'cache')).map((d) => path.join(tmp, 'cache', d))[0]!, '000000.json'), 'utf8')) as { questions: Array<{ target: string }> };
  assert.ok(cached.questions.length >= 1 && cached.questions.every((q) => q.target.length > 0));
});

test('a mixed run answers questions from the qa cache and writes captions from the captions cache, both in every batch and every shard', async () => {
  assert.deepEqual(taskSplit(4), { questions: 2, captions: 2 });
  assert.deepEqual(taskSplit(8, 0.25), { questions: 6, captions: 2 });
  const cacheRoot = path.join(tmp, 'mixcache');
  type Line = { loss: number; answer_loss: number; caption_loss: number | null; selection_loss: number | null };
  const run = async (name: string, threads: number): Promise<Line[]> => {
    const out = path.join(tmp, name);
    await trainVilaHd(options(out, { task: 'mixed', batch: 4, threads, cacheRoot, init: { dir: source, method: 'ps3' } }));
    return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
  };
  const one = await run('mix1', 1);
  assert.equal(one.length, 2);
  for (const m of one) {
    assert.ok([m.answer_loss, m.caption_loss, m.selection_loss].every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0), JSON.stringify(m));
    // the loss is the batch's mean: half questions (answer + selection), half captions
    assert.ok(Math.abs(m.loss - (m.answer_loss + m.selection_loss! + m.caption_loss!) / 2) < 1e-4, JSON.stringify(m));
  }
  // each task's cache is the one a run of that task alone makes, so runs share them
  const common = { method: 'ps3' as const, seed: 41, images: 2, looks: 1 };
  assert.deepEqual(fs.readdirSync(cacheRoot).sort(), [cacheDir(cacheRoot, ps3, common), cacheDir(cacheRoot, ps3, { ...common, task: 'captions', captions: 3 })].map((d) => path.basename(d)).sort());
  const after = readSafetensors(path.join(tmp, 'mix1', 'checkpoint', 'model.safetensors'));
  const before = readSafetensors(path.join(source, 'model.safetensors'));
  assert.ok(!before.get('ps3.prompt_head.fc2.weight')!.data.every((v, i) => v === after.get('ps3.prompt_head.fc2.weight')!.data[i]), 'the questions\' selection loss trains the prompt head');
  // two threads split the batch into shards that each hold a question and a caption: the same curve
  const two = await run('mix2', 2);
  two.forEach((m, i) => assert.ok(Math.abs(m.loss - one[i]!.loss) < 1e-4 && Math.abs(m.caption_loss! - one[i]!.caption_loss!) < 1e-4, `step ${i + 1}: ${m.loss} vs ${one[i]!.loss}`));
  // stopped after its first step and resumed, it follows the same curve; another share is refused
  const cut = path.join(tmp, 'mix-cut');
  const first = await trainVilaHd(options(cut, { task: 'mixed', batch: 4, cacheRoot, maxSeconds: 1e-6, init: { dir: source, method: 'ps3' } }));
  assert.equal(first.step, 1);
  await assert.rejects(trainVilaHd(options(cut, { task: 'mixed', batch: 4, cacheRoot, resume: true, captionShare: 0.25 })), (e: unknown) => isUserError(e) && /--caption-share/.test(e.message));
  await trainVilaHd(options(cut, { task: 'mixed', batch: 4, cacheRoot, resume: true }));
  const resumed = fs.readFileSync(path.join(cut, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
  assert.deepEqual(resumed.map((m) => m.loss.toFixed(5)), one.map((m) => m.loss.toFixed(5)));
});

test('the reading measure: zero for an LM whose projector hides the image, not zero for one that sees it', async () => {
  const model = loadVilaHd(source, { methods: ['lowres'] });
  try {
    const seeing = await evaluateCaptionReading(model, { method: 'lowres', seed: 1_000_000, images: 2, captions: 2 });
    assert.equal(seeing.captions, 4);
    assert.ok(seeing.content_words > 0 && seeing.content_words < seeing.words);
    // every content word is of one kind; a kind's accuracy is its right guesses over its words
    const kinds = seeing.content_words_by_kind;
    assert.equal(kinds.colour + kinds.shape + kinds.character + kinds.count, seeing.content_words);
    assert.ok(kinds.colour > 0 && kinds.shape > 0);
    const weighted = (['colour', 'shape', 'character', 'count'] as const).reduce((sum, k) => sum + (kinds[k] ? seeing.own_image.by_kind[k] * kinds[k] : 0), 0);
    assert.ok(Math.abs(weighted / seeing.content_words - seeing.own_image.content_accuracy) < 1e-9);
    assert.notEqual(seeing.own_image.nll, seeing.other_image.nll, 'another scene\'s tokens change the scores');
    // the projector's output no longer depends on the tokens: own and other must score alike
    const blind = new Map(model.weights.entries());
    for (const k of ['lowres.projector.fc2.weight']) blind.set(k, tf.zerosLike(blind.get(k)!));
    const blindModel = { ...model, weights: new Weights(blind) };
    const r = await evaluateCaptionReading(blindModel, { method: 'lowres', seed: 1_000_000, images: 2, captions: 2 });
    assert.equal(r.own_image.nll, r.other_image.nll);
    assert.deepEqual(r.reading, { content_accuracy: 0, nll: 0 });
    blind.get('lowres.projector.fc2.weight')!.dispose();
  } finally {
    disposeVilaHd(model);
  }
  assert.ok(contentWords().has('red') && contentWords().has('triangles') && !contentWords().has('a') && !contentWords().has('the'));
  assert.deepEqual(['red', 'triangles', 'q', '7', 'three'].map((w) => contentKinds().get(w)), ['colour', 'shape', 'character', 'character', 'count']);
});

test('eval captions writes a report and a chart; train-mllm and eval captions refuse bad options in one line', async () => {
  const out = path.join(tmp, 'reading', 'r.json');
  const r = runCli(['eval', 'captions', '--model', source, '--method', 'ps3,lowres', '--count', '2', '--captions', '1', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(fs.readFileSync(out, 'utf8')) as { reports: Array<{ method: string; own_image: { nll: number }; other_image: { nll: number } }> };
  assert.deepEqual(json.reports.map((x) => x.method), ['ps3', 'lowres']);
  assert.ok(json.reports.every((x) => Number.isFinite(x.own_image.nll) && Number.isFinite(x.other_image.nll)));
  assert.ok(fs.statSync(path.join(tmp, 'reading', 'r.png')).size > 1000);
  assertBadInput(['eval', 'captions', '--model', source, '--count', '1', '--out', out], /--count must be at least 2/);
  assertBadInput(['eval', 'captions', '--model', ps3, '--out', out], /not a VILA-HD folder/);
  assertBadInput(['eval', 'captions', '--model', source, '--seed', '5', '--out', out], /--seed 5 is in the training range/);
  assertBadInput(['eval', 'captions', '--model', source, '--method', 'dense', '--out', out], /--method must be one of/);

  const cases: Array<[Partial<TrainVilaOptions>, RegExp]> = [
    [{ task: 'qa' }, /--captions sets how many captions a scene is asked: give --task captions or --task mixed \(with captions mixed in\) too/],
    [{ captionShare: 0.5 }, /--caption-share sets how much of each batch writes captions or reads glyphs: give --task mixed too/],
    [{ task: 'mixed', captionShare: 1 }, /--caption-share must be between 0 and 1 \(exclusive\), got 1/],
    [{ task: 'mixed', batch: 1 }, /--batch 1 with --caption-share 0.5 leaves one task no sample in a batch/],
    [{ task: 'mixed', tuneSelection: true }, /--tune-selection is for the qa task/],
    [{ captions: 0 }, /--captions must be an integer from 1 to 32, got 0/],
    [{ perCategory: 2 }, /--per-category sets the questions of the qa task/],
    [{ evidenceFraction: 0.5 }, /a caption's look is always at its region/],
    [{ tuneSelection: true }, /--tune-selection learns from the selection loss, which the captions task does not have/],
    [{ task: 'words' as TrainVilaOptions['task'] }, /--task must be one of qa, captions, mixed, glyphs, got "words"/],
  ];
  for (const [extra, pattern] of cases) await assert.rejects(trainVilaHd(options(path.join(tmp, 'none'), extra)), (e: unknown) => isUserError(e) && pattern.test(e.message), String(pattern));
  assert.ok(!fs.existsSync(path.join(tmp, 'none')));
});
