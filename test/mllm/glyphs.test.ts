/**
 * The glyphs task (the LM's reading stage) and `eval captions --glyphs`: a scene's glyph samples
 * are its one-character labels, each in whole 2 x 2 cells of the top scale; every sample's block
 * reaches the LM whole, from looks that take as many blocks as their budget allows; a glyphs run
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
import { sceneGlyphs } from '../../src/data/sceneGlyphs.js';
import { GLYPH_CHARS } from '../../src/data/glyphs.js';
import { loadModel } from '../../src/model/load.js';
import { GLYPH_CATEGORY, GLYPH_CELLS, GLYPH_QUESTION, glyphSamples, imageSamples, sampleTask } from '../../src/mllm/trainData.js';
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

test('a scene\'s glyph samples: its one-character labels, each block widened to whole 2 x 2 cells around the block a look sees it in', () => {
  const scene = renderScene(sceneRng(41, 0), { width: 1512, height: 1512 });
  const glyphs = sceneGlyphs(scene, 14, GLYPH_CELLS);
  const samples = glyphSamples(scene, 0, 14);
  assert.ok(glyphs.length >= 3, `${glyphs.length} glyphs`);
  assert.equal(samples.length, glyphs.length);
  samples.forEach((s, k) => {
    const g = glyphs[k]!;
    assert.deepEqual([s.index, s.question, s.options, s.answer, s.category, s.target], [k, GLYPH_QUESTION, [], -1, GLYPH_CATEGORY, GLYPH_CHARS[g.char]]);
    assert.equal(sampleTask(s), 'glyphs');
    const [c0, r0, c1, r1] = s.box.map((v) => v / 14) as [number, number, number, number];
    assert.ok([c0, r0, c1, r1].every((v) => Number.isInteger(v) && v % 2 === 0), `box ${s.box}`);
    // the sceneGlyphs block inside, at most one cell more on each side
    assert.ok(r0 <= g.row0 && r1 >= g.row0 + GLYPH_CELLS && g.row0 - r0 <= 1 && r1 - (g.row0 + GLYPH_CELLS) <= 1);
    assert.ok(c0 <= g.col0 && c1 >= g.col0 + GLYPH_CELLS && g.col0 - c0 <= 1 && c1 - (g.col0 + GLYPH_CELLS) <= 1);
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
      // micro's look takes 20 top-scale patches: a 4 x 4 block fits, a 6 x 6 one does not
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
  assert.match(e.stdout, /characters read \(the first word\), own \/ other: /);
  const j = JSON.parse(fs.readFileSync(report, 'utf8')) as { task: string; reports: Array<{ task: string; captions: number; content_words_by_kind: Record<string, number>; own_image: { first_word_accuracy: number } }> };
  assert.equal(j.task, 'glyphs');
  const g = j.reports[0]!;
  assert.ok(g.captions > 0);
  // each sample's one word is a character ("a" aside, which content words leave out as the article)
  assert.ok(g.content_words_by_kind['character']! <= g.captions && g.content_words_by_kind['colour'] === 0);
  assert.ok(g.own_image.first_word_accuracy >= 0 && g.own_image.first_word_accuracy <= 1);
  assert.ok(fs.statSync(report.replace(/\.json$/, '.png')).size > 1000);
  assertBadInput(['eval', 'captions', '--model', source, '--glyphs', '--method', 'lowres', '--out', report], /--glyphs reads a label's block of a look, which only --method ps3 has/);
});

test('train-mllm --task glyphs refuses what the task does not have, in one line, before any work', async () => {
  const cases: Array<[Partial<TrainVilaOptions>, RegExp]> = [
    [{ method: 'lowres' }, /--task glyphs reads a label's block of a look, which only --method ps3 has \(got --method lowres\)/],
    [{ choiceWeight: 1 }, /--choice-weight scores a question's options, which the glyphs task does not have/],
    [{ perCategory: 2 }, /--per-category is for the qa task; --task glyphs asks each scene's one-character labels/],
    [{ decoyLooks: 0.5 }, /--decoy-looks is for the qa task/],
    [{ captions: 3 }, /--captions sets how many captions a scene is asked/],
    [{ tuneTrunk: 1 }, /--tune-trunk is for the qa task/],
  ];
  for (const [extra, pattern] of cases) await assert.rejects(trainVilaHd(options(path.join(tmp, 'none'), extra)), (e: unknown) => isUserError(e) && pattern.test(e.message), String(pattern));
  assert.ok(!fs.existsSync(path.join(tmp, 'none')));
});
