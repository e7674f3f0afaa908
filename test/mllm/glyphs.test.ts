/**
 * The glyphs task (the LM's reading stage) and `eval captions --glyphs`: a scene's glyph samples
 * are its one-character shape labels and its signs, each in whole 2 x 2 cells of the top scale;
 * every sample's block reaches the LM whole, from looks that take as many blocks as their budget allows; a glyphs run
 * trains the LM and projector, not the prompt head; mistakes are refused in one line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { renderScene } from '../../src/data/scene/render.js';
import { sceneRng } from '../../src/data/synth.js';
import { sceneGlyphs, sceneSigns } from '../../src/data/sceneGlyphs.js';
import { GLYPH_CHARS, textWidth } from '../../src/data/glyphs.js';
import { loadModel } from '../../src/model/load.js';
import { GLYPH_CATEGORY, GLYPH_CELLS, GLYPH_QUESTION, OBJECT_COLOUR_CATEGORY, OBJECT_SHAPE_CATEGORY, SIGN_CATEGORY, cacheDir, glyphSamples, imageSamples, sampleTask } from '../../src/mllm/trainData.js';
import { attributeColourQuestion, attributeShapeQuestion, MAX_DETAIL_PX } from '../../src/data/qa/generate.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { assertBadInput, runCli, writeMicroPs3, writeMicroVila } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-glyphs-'));
const ps3 = path.join(tmp, 'ps3');
const source = path.join(tmp, 'source');
const options = (out: string, extra: Partial<TrainVilaOptions> = {}): TrainVilaOptions => ({
  ps3, out, method: 'ps3', preset: 'micro', steps: 2, batch: 2, lr: 1e-3, warmup: 0, clip: 1, seed: 3, dataSeed: 41, images: 3,
  looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'), threads: 1,
  task: 'glyphs', ...extra,
});

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 4);
  await writeMicroVila(source, ps3, ['ps3', 'lowres'], 17);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a scene\'s glyph samples: its shape labels\' characters and its signs\' codes, each block widened to whole 2 x 2 cells around the block a look sees it in', () => {
  const scene = renderScene(sceneRng(41, 0), { width: 1512, height: 1512 });
  const labels = sceneGlyphs(scene, 14, GLYPH_CELLS).filter((g) => g.kind === 'shape');
  const signs = sceneSigns(scene, 14, GLYPH_CELLS);
  const samples = glyphSamples(scene, 0, 14);
  assert.ok(labels.length >= 3 && signs.some((s) => s.code.length > 1), `${labels.length} labels, signs ${signs.map((s) => s.code)}`);
  assert.equal(samples.length, labels.length + signs.length);
  const cellsOf = (box: readonly number[]): [number, number, number, number] => box.map((v) => v / 14) as [number, number, number, number];
  samples.forEach((s, k) => {
    assert.equal(s.index, k);
    assert.deepEqual([s.options, s.answer], [[], -1]);
    assert.equal(sampleTask(s), 'glyphs');
    const [c0, r0, c1, r1] = cellsOf(s.box);
    assert.ok([c0, r0, c1, r1].every((v) => Number.isInteger(v) && v % 2 === 0), `box ${s.box}`);
    // the block a look sees inside, at most one cell more on each side
    const [rows, cols] = k < labels.length
      ? [[labels[k]!.row0, labels[k]!.row0 + GLYPH_CELLS], [labels[k]!.col0, labels[k]!.col0 + GLYPH_CELLS]]
      : [signs[k - labels.length]!.rows, signs[k - labels.length]!.cols];
    assert.ok(r0 <= rows[0]! && r1 >= rows[1]! && rows[0]! - r0 <= 1 && r1 - rows[1]! <= 1, `rows ${[r0, r1]} around ${rows}`);
    assert.ok(c0 <= cols[0]! && c1 >= cols[1]! && cols[0]! - c0 <= 1 && c1 - cols[1]! <= 1, `cols ${[c0, c1]} around ${cols}`);
  });
  labels.forEach((g, k) => assert.deepEqual([samples[k]!.question, samples[k]!.category, samples[k]!.target], [GLYPH_QUESTION, GLYPH_CATEGORY, GLYPH_CHARS[g.char]]));
  signs.forEach((g, k) => {
    const s = samples[labels.length + k]!;
    // 4KPro-lite's own question, answered with the code
    assert.deepEqual([s.question, s.category, s.target], [`What does the ${g.colour} sign read?`, SIGN_CATEGORY, g.code]);
    // the sign's text (1 / 1.7 of its plate, centred) lies inside the block
    const o = scene.objects.filter((x) => x.kind === 'sign')[k]!;
    const h = (o.box[3] - o.box[1]) / 1.7;
    const w = textWidth(g.code, h);
    assert.ok(g.cols[0] * 14 <= o.center[0] - w / 2 && g.cols[1] * 14 >= o.center[0] + w / 2 && g.rows[0] * 14 <= o.center[1] - h / 2 && g.rows[1] * 14 >= o.center[1] + h / 2, `${g.code} text outside its block`);
    assert.ok(g.rows[1] - g.rows[0] >= GLYPH_CELLS && g.cols[1] - g.cols[0] >= GLYPH_CELLS);
  });
  // blocks larger than a look's top-scale budget are left out, the rest numbered afresh
  const small = glyphSamples(scene, 0, 14, 16);
  assert.deepEqual(small.map((s) => s.target), samples.filter((s) => (s.box[2] - s.box[0]) * (s.box[3] - s.box[1]) === 16 * 14 * 14).map((s) => s.target));
  assert.deepEqual(small.map((s) => s.index), small.map((_, k) => k));
});

test('every glyph sample\'s block reaches the LM whole: all its cells chosen and merged, beside the low-res tokens', async () => {
  const model = loadModel(ps3, 'vision');
  // micro: a 56 px low-res view, 4 x 4 patches merged to 2 x 2
  const low = (56 / 14 / 2) ** 2;
  let seen = 0;
  for (let i = 0; i < 4; i++) {
    const { questions, arrays } = await imageSamples(model, { method: 'ps3', seed: 41, images: 4, looks: 1, task: 'glyphs' }, i);
    assert.equal(arrays.get('low')!.shape[0], low);
    for (const q of questions) {
      const cells = ((q.box[2] - q.box[0]) / 14) * ((q.box[3] - q.box[1]) / 14);
      // micro's look takes 20 top-scale patches: a 4 x 4 block fits, a 4 x 6 or 6 x 6 one does not
      assert.equal(cells, 16);
      assert.deepEqual(arrays.get(`high.${q.index}`)!.shape, [cells / 4, 4 * 32], `scene ${i} sample ${q.index}`);
      seen++;
    }
    assert.ok(![...arrays.keys()].some((k) => k.startsWith('target.') || k.startsWith('sel.')), 'no selection inputs');
  }
  assert.ok(seen >= 2, `${seen} samples`);
  model.weights.dispose();
});

test('a glyphs run trains the LM and projector, not the prompt head; eval captions --glyphs reports the characters read', async () => {
  const out = path.join(tmp, 'g');
  const r = await trainVilaHd(options(out, { init: { dir: source, method: 'ps3' } }));
  assert.equal(r.step, 2);
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { answer_loss: number; selection_loss: number | null });
  assert.ok(lines.every((m) => Number.isFinite(m.answer_loss) && m.answer_loss > 0 && m.selection_loss === null));
  const before = readSafetensors(path.join(source, 'model.safetensors'));
  const after = readSafetensors(path.join(out, 'checkpoint', 'model.safetensors'));
  const same = (k: string): boolean => before.get(k)!.data.every((v, i) => v === after.get(k)!.data[i]);
  assert.ok(same('ps3.prompt_head.fc2.weight'), 'prompt head unchanged');
  assert.ok(!same('ps3.projector.fc1.weight') && !same('ps3.lm.norm.weight'), 'projector and LM trained');

  const report = path.join(tmp, 'eval', 'g.json');
  const e = runCli(['eval', 'captions', '--model', path.join(out, 'checkpoint'), '--glyphs', '--count', '3', '--out', report]);
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /labels' characters read, own \/ other: \S+ \/ \S+ of \d+/);
  assert.match(e.stdout, /signs read whole \(first character\), own \/ other: /);
  type Scores = { first_word_accuracy: number; exact_accuracy: number; by_category: Record<string, { count: number; first_word_accuracy: number; exact_accuracy: number }> };
  const j = JSON.parse(fs.readFileSync(report, 'utf8')) as { task: string; reports: Array<{ task: string; captions: number; content_words_by_kind: Record<string, number>; own_image: Scores; other_image: Scores }> };
  assert.equal(j.task, 'glyphs');
  const g = j.reports[0]!;
  assert.ok(g.captions > 0);
  // the answers are characters only ("a" aside, which content words leave out as the article)
  assert.ok(g.content_words_by_kind['colour'] === 0 && g.content_words_by_kind['shape'] === 0);
  for (const x of [g.own_image, g.other_image]) {
    assert.ok(x.exact_accuracy >= 0 && x.exact_accuracy <= x.first_word_accuracy + 1e-9 && x.first_word_accuracy <= 1);
    assert.equal(Object.values(x.by_category).reduce((n, c) => n + c.count, 0), g.captions);
    // a label's answer is one character: read whole when its first word is right
    const label = x.by_category[GLYPH_CATEGORY];
    if (label) assert.equal(label.exact_accuracy, label.first_word_accuracy);
  }
  assert.ok(fs.statSync(report.replace(/\.json$/, '.png')).size > 1000);
  assertBadInput(['eval', 'captions', '--model', source, '--glyphs', '--method', 'lowres', '--out', report], /--glyphs reads a label's block of a look, which only --method ps3 has/);
});

test('a run mixing glyphs into the questions reads both caches in every batch, and trains the prompt head on the questions alone', async () => {
  const cacheRoot = path.join(tmp, 'mixcache');
  const out = path.join(tmp, 'mixg');
  await trainVilaHd(options(out, { task: 'mixed', mix: 'glyphs', batch: 4, cacheRoot, init: { dir: source, method: 'ps3' } }));
  type Line = { loss: number; answer_loss: number; caption_loss: number | null; selection_loss: number | null };
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
  assert.equal(lines.length, 2);
  for (const m of lines) {
    assert.ok([m.answer_loss, m.caption_loss, m.selection_loss].every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0), JSON.stringify(m));
    // half questions (answer + selection), half glyph samples (their answer alone)
    assert.ok(Math.abs(m.loss - (m.answer_loss + m.selection_loss! + m.caption_loss!) / 2) < 1e-4, JSON.stringify(m));
  }
  // the caches a qa run and a glyphs run of the same scenes make
  const common = { method: 'ps3' as const, seed: 41, images: 3, looks: 1 };
  assert.deepEqual(fs.readdirSync(cacheRoot).sort(), [cacheDir(cacheRoot, ps3, common), cacheDir(cacheRoot, ps3, { ...common, task: 'glyphs' })].map((d) => path.basename(d)).sort());
  const before = readSafetensors(path.join(source, 'model.safetensors'));
  const after = readSafetensors(path.join(out, 'checkpoint', 'model.safetensors'));
  assert.ok(!before.get('ps3.prompt_head.fc2.weight')!.data.every((v, i) => v === after.get('ps3.prompt_head.fc2.weight')!.data[i]), 'the questions\' selection loss trains the prompt head');
  // --mix is part of the curve: a resume without it would read captions instead
  await assert.rejects(trainVilaHd(options(out, { task: 'mixed', batch: 4, cacheRoot, resume: true, steps: 3 })), (e: unknown) => isUserError(e) && /--mix/.test(e.message));
});

test('train-mllm --task glyphs refuses what the task does not have, in one line, before any work', async () => {
  const cases: Array<[Partial<TrainVilaOptions>, RegExp]> = [
    [{ method: 'lowres' }, /--task glyphs reads a label's block of a look, which only --method ps3 has \(got --method lowres\)/],
    [{ choiceWeight: 1 }, /--choice-weight scores a question's options, which the glyphs task does not have/],
    [{ perCategory: 2 }, /--per-category is for the qa task; --task glyphs asks each scene's one-character labels and signs/],
    [{ decoyLooks: 0.5 }, /--decoy-looks is for the qa task/],
    [{ captions: 3 }, /--captions sets how many captions a scene is asked/],
    [{ tuneTrunk: 1 }, /--tune-trunk is for the qa task/],
    [{ mix: 'glyphs' }, /--mix says what joins the questions in every batch: give --task mixed too/],
    [{ task: 'mixed', mix: 'glyphs', method: 'lowres' }, /--mix glyphs reads a label's block of a look, which only --method ps3 has \(got --method lowres\)/],
    [{ task: 'mixed', mix: 'glyphs', captions: 3 }, /--captions sets how many captions a scene is asked/],
    [{ task: 'mixed', mix: 'words' as TrainVilaOptions['mix'] }, /--mix must be one of captions, glyphs, got "words"/],
    [{ task: 'qa', readObjects: true }, /--read-objects adds samples to the reading stage: give --task glyphs, or --task mixed --mix glyphs, too/],
    [{ task: 'mixed', readObjects: true }, /--read-objects adds samples to the reading stage/],
  ];
  for (const [extra, pattern] of cases) await assert.rejects(trainVilaHd(options(path.join(tmp, 'none'), extra)), (e: unknown) => isUserError(e) && pattern.test(e.message), String(pattern));
  assert.ok(!fs.existsSync(path.join(tmp, 'none')));
});

test('with objects, each labelled or tiny shape is asked its colour, then its shape, over its box in whole 2 x 2 cells; the cache is keyed apart', () => {
  const scene = renderScene(sceneRng(41, 0), { width: 3780, height: 3780 });
  const plain = glyphSamples(scene, 0, 14);
  const all = glyphSamples(scene, 0, 14, Infinity, { lowres: 378 });
  // the labels and signs first, as without objects
  assert.deepEqual(all.slice(0, plain.length), plain);
  const objects = all.slice(plain.length);
  const k = 378 / 3780;
  const asked = scene.objects.filter((o) => o.kind === 'shape' && ((o.label !== null && o.label.length === 1) || o.size * k <= MAX_DETAIL_PX.shape));
  assert.ok(asked.some((o) => o.label !== null) && asked.some((o) => o.label === null), 'labelled and unlabelled shapes both asked');
  assert.equal(objects.length, 2 * asked.length);
  asked.forEach((o, j) => {
    const [colour, shape] = [objects[2 * j]!, objects[2 * j + 1]!];
    assert.equal(o.kind, 'shape');
    if (o.kind !== 'shape') return;
    assert.deepEqual([colour.category, colour.target, shape.category, shape.target], [OBJECT_COLOUR_CATEGORY, o.colour, OBJECT_SHAPE_CATEGORY, o.shape]);
    // a labelled shape is asked 4KPro-lite's own attribute questions
    if (o.label !== null) assert.deepEqual([colour.question, shape.question], [attributeColourQuestion(o.shape, o.label), attributeShapeQuestion(o.colour, o.label)]);
    else assert.deepEqual([colour.question, shape.question], [`What colour is the ${o.shape} in the image?`, `What shape is the ${o.colour} object in the image?`]);
    assert.deepEqual(colour.box, shape.box);
    assert.ok(colour.box.every((v) => v % 28 === 0), `box ${colour.box}`);
    // the object's box inside, at most one cell and a partial one more each side
    assert.ok(colour.box[0] <= o.box[0] && colour.box[1] <= o.box[1] && colour.box[2] >= o.box[2] && colour.box[3] >= o.box[3], `${colour.box} around ${o.box}`);
    assert.ok(o.box[0] - colour.box[0] < 28 && o.box[1] - colour.box[1] < 28 && colour.box[2] - o.box[2] < 28 && colour.box[3] - o.box[3] < 28);
    assert.equal(sampleTask(colour), 'glyphs');
  });
  assert.deepEqual(all.map((q) => q.index), all.map((_, i) => i));
  const spec = { method: 'ps3' as const, seed: 41, images: 3, looks: 1, task: 'glyphs' as const };
  assert.notEqual(cacheDir('/c', ps3, { ...spec, objects: true }), cacheDir('/c', ps3, spec));
  assert.equal(cacheDir('/c', ps3, { ...spec, objects: false }), cacheDir('/c', ps3, spec));
});

test('an object\'s colour and shape samples read the same tokens, its box\'s cells whole; eval captions --glyphs --read-objects names colours and shapes', async () => {
  const model = loadModel(ps3, 'vision');
  let pairs = 0;
  for (let i = 0; i < 3; i++) {
    const { questions, arrays } = await imageSamples(model, { method: 'ps3', seed: 41, images: 3, looks: 1, task: 'glyphs', objects: true }, i);
    for (const q of questions.filter((x) => x.category === OBJECT_COLOUR_CATEGORY)) {
      const twin = questions[q.index + 1]!;
      assert.equal(twin.category, OBJECT_SHAPE_CATEGORY);
      const [a, b] = [arrays.get(`high.${q.index}`)!, arrays.get(`high.${twin.index}`)!];
      const cells = ((q.box[2] - q.box[0]) / 14) * ((q.box[3] - q.box[1]) / 14);
      assert.deepEqual(a.shape, [cells / 4, 4 * 32]);
      assert.deepEqual(a.data, b.data);
      pairs++;
    }
  }
  assert.ok(pairs >= 2, `${pairs} objects`);
  model.weights.dispose();

  const report = path.join(tmp, 'eval', 'objects.json');
  const e = runCli(['eval', 'captions', '--model', source, '--glyphs', '--read-objects', '--count', '2', '--out', report]);
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /objects' colours named, own \/ other: \S+ \/ \S+ of \d+/);
  assert.match(e.stdout, /objects' shapes named, own \/ other: \S+ \/ \S+ of \d+/);
  const j = JSON.parse(fs.readFileSync(report, 'utf8')) as { objects: boolean; reports: Array<{ own_image: { by_category: Record<string, { count: number }> } }> };
  assert.equal(j.objects, true);
  const by = j.reports[0]!.own_image.by_category;
  assert.ok(by[OBJECT_COLOUR_CATEGORY]!.count > 0 && by[OBJECT_COLOUR_CATEGORY]!.count === by[OBJECT_SHAPE_CATEGORY]!.count);
  assertBadInput(['eval', 'captions', '--model', source, '--read-objects', '--out', report], /--read-objects adds the objects to the reading samples: give --glyphs too/);
});

test('train-mllm --read-objects trains on the objects too, and a resume keeps them', () => {
  const out = path.join(tmp, 'ro');
  const args = ['train-mllm', '--ps3', ps3, '--out', out, '--method', 'ps3', '--preset', 'micro', '--task', 'glyphs', '--images', '2', '--data-seed', '41', '--cache', path.join(tmp, 'rocache'), '--batch', '2', '--threads', '1'];
  const r = runCli([...args, '--init', source, '--read-objects', '--steps', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /\d+ labels, signs and objects to read/);
  assertBadInput([...args, '--steps', '2', '--resume'], /--resume: this ps3 run was made with --read-objects true, got \(not given\)/);
});
