/**
 * src/data/qa/generate.ts and src/eval/qa/make4k.ts: the 4KPro-lite generator is deterministic,
 * refuses training-range seeds unless forced, and every answer is true of the scene's object list
 * (re-rendered from the recorded seed) with its deciding detail tiny at low res.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { isUserError } from '../../src/errors.js';
import { renderScene } from '../../src/data/scene/render.js';
import type { SceneObject } from '../../src/data/scene/types.js';
import { sceneRng } from '../../src/data/synth.js';
import { loadBenchmark, type BenchItem } from '../../src/eval/qa/format.js';
import { HELDOUT_SEED_BASE, MAX_DETAIL_PX, nearestColours, QA_CATEGORIES, QA_VERSION, questionRng, sceneQuestions } from '../../src/data/qa/generate.js';
import { aroundHiddenCentre, codeStep } from '../../src/data/qa/options.js';
import { checkHeldOutSeed, makeBenchmark, oldGeneratorWarning } from '../../src/eval/qa/make4k.js';
import { optionsOnlyAccuracy } from '../../src/eval/qa/optionsOnly.js';
import { Rng } from '../../src/rng.js';

const SIZE = 1512;
const SEED = HELDOUT_SEED_BASE + 7;
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-make4k-'));

test('held-out seeds: below 1e6 refused unless forced', async () => {
  assert.throws(() => checkHeldOutSeed(5), (e: unknown) => isUserError(e) && /training range/.test((e as Error).message));
  assert.doesNotThrow(() => checkHeldOutSeed(5, true));
  assert.doesNotThrow(() => checkHeldOutSeed(HELDOUT_SEED_BASE));
  const out = tmp();
  await assert.rejects(makeBenchmark({ out, count: 2, size: SIZE, seed: 0, writeImages: false }), (e: unknown) => isUserError(e));
  const forced = await makeBenchmark({ out, count: 2, size: SIZE, seed: 0, force: true, writeImages: false });
  assert.equal(forced.questions, 2);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).forced, true);
  fs.rmSync(out, { recursive: true });
});

test('the same seed writes the same questions; another seed others', async () => {
  const [a, b, c] = [tmp(), tmp(), tmp()];
  await makeBenchmark({ out: a, count: 8, size: SIZE, seed: SEED, writeImages: false });
  await makeBenchmark({ out: b, count: 8, size: SIZE, seed: SEED, writeImages: false });
  await makeBenchmark({ out: c, count: 8, size: SIZE, seed: SEED + 1, writeImages: false });
  const read = (d: string): string => fs.readFileSync(path.join(d, 'questions.jsonl'), 'utf8');
  assert.equal(read(a), read(b));
  assert.notEqual(read(a), read(c));
  const manifest = JSON.parse(fs.readFileSync(path.join(a, 'manifest.json'), 'utf8'));
  assert.equal(manifest.seed, SEED);
  assert.equal(manifest.heldout_seed_base, HELDOUT_SEED_BASE);
  for (const d of [a, b, c]) fs.rmSync(d, { recursive: true });
});

const plural = (s: string): string => (s === 'cross' ? 'crosses' : `${s}s`);
const describes = (o: SceneObject, text: string): boolean =>
  o.kind === 'sign' ? text === `a ${o.colour} sign reading ${o.label}`.replace(/\ba (?=[aeiou])/g, 'an ') : text === `a ${o.colour} ${o.shape}`.replace(/\ba (?=[aeiou])/g, 'an ');

function checkAnswer(item: BenchItem, objects: readonly SceneObject[]): void {
  const truth = item.options[item.answer]!;
  const ev = item.evidence!;
  const named = ev.object_ids.map((id) => objects[id]!);
  assert.ok(ev.detail_px_at_lowres <= Math.max(MAX_DETAIL_PX.glyph, MAX_DETAIL_PX.shape), `${item.id}: detail ${ev.detail_px_at_lowres} px at low res`);
  assert.equal(item.options.length, 4);
  assert.equal(item.statements!.length, 4);
  switch (item.category) {
    case 'sign-reading': {
      const sign = named[0]!;
      assert.equal(sign.kind, 'sign');
      assert.equal(sign.label, truth, `${item.id}: the true code is the sign's`);
      assert.ok(item.question.includes(`the ${sign.colour} sign`));
      // the colour singles the sign out
      assert.equal(objects.filter((o) => o.kind === 'sign' && o.colour === sign.colour).length, 1);
      break;
    }
    case 'attribute': {
      const s = named[0]!;
      assert.equal(s.kind, 'shape');
      if (s.kind !== 'shape') return;
      assert.ok(item.question.includes(`marked with the`) && item.question.endsWith(`${s.label}?`));
      assert.equal(objects.filter((o) => o.kind === 'shape' && o.label === s.label).length, 1, `${item.id}: the label singles the shape out`);
      assert.ok(truth === s.colour || truth === s.shape, `${item.id}: ${truth} is the shape's colour or shape`);
      break;
    }
    case 'counting': {
      const m = /How many (\w+) (\w+) are there/.exec(item.question)!;
      const count = objects.filter((o) => o.kind === 'shape' && o.colour === m[1] && plural(o.shape) === m[2]).length;
      assert.equal(Number(truth), count, `${item.id}: ${truth} vs ${count} in the object list`);
      assert.equal(named.length, count);
      break;
    }
    case 'lookalike':
      assert.ok(objects.some((o) => describes(o, truth)), `${item.id}: "${truth}" is in the scene`);
      for (const [k, option] of item.options.entries()) {
        if (k !== item.answer) assert.ok(!objects.some((o) => describes(o, option)), `${item.id}: distractor "${option}" is absent`);
      }
      break;
    default:
      assert.fail(`unknown category ${item.category}`);
  }
}

test('every answer is true of the scene objects, re-rendered from the seed; images and object lists written', async () => {
  const out = tmp();
  const summary = await makeBenchmark({ out, count: 16, size: SIZE, seed: SEED });
  const items = loadBenchmark(summary.file);
  assert.equal(items.length, 16);
  assert.deepEqual(new Set(items.map((i) => i.category)), new Set(QA_CATEGORIES));
  // answers spread over positions
  assert.ok(new Set(items.map((i) => i.answer)).size >= 3);
  const scenes = new Map<string, readonly SceneObject[]>();
  for (const item of items) {
    const index = Number(path.basename(item.image, '.png'));
    if (!scenes.has(item.image)) {
      const scene = renderScene(sceneRng(SEED, index), { width: SIZE, height: SIZE });
      const written = JSON.parse(fs.readFileSync(path.join(out, 'scenes', `${path.basename(item.image, '.png')}.json`), 'utf8'));
      assert.equal(written.seed, SEED);
      assert.deepEqual(written.objects, JSON.parse(JSON.stringify(scene.objects)));
      scenes.set(item.image, scene.objects);
      const meta = await sharp(item.imagePath).metadata();
      assert.deepEqual([meta.width, meta.height], item.image_size);
    }
    checkAnswer(item, scenes.get(item.image)!);
  }
  fs.rmSync(out, { recursive: true });
});

test('distractor helpers: a code step keeps the digit/letter pattern; nearest colours exclude the colour', () => {
  const rng = new Rng(1);
  for (let i = 0; i < 200; i++) {
    const c = codeStep(rng, 'B17');
    assert.match(c, /^[A-Z]\d\d$/);
    assert.equal([...c].filter((ch, k) => ch !== 'B17'[k]).length, 1, `${c} is one character off B17`);
  }
  const near = nearestColours('red');
  assert.ok(!near.includes('red'));
  assert.equal(near.length, 11);
  const rng2 = new Rng(2);
  for (let i = 0; i < 50; i++) {
    const d = aroundHiddenCentre(rng2, 'B17', codeStep, (c) => c, () => true)!;
    assert.equal(new Set(['B17', ...d]).size, 4);
  }
  assert.equal(aroundHiddenCentre(rng2, 'B17', codeStep, (c) => c, () => false), null);
});

test('the options alone do not give the answer away (a central truth would be found every time)', async () => {
  // the reader finds options made the old way, as edits of the truth
  const central = [
    { category: 'sign-reading', question: '', options: ['N20', 'H20', '63', 'H25'], answer: 1 },
    { category: 'counting', question: '', options: ['2', '4', '3', '5'], answer: 2 },
    { category: 'lookalike', question: '', options: ['a red ring', 'a blue star', 'a red star', 'an orange star'], answer: 2 },
  ];
  for (const [c, r] of Object.entries(optionsOnlyAccuracy(central).per_category)) assert.equal(r.accuracy, 1, c);
  const out = tmp();
  // 1512 px squashed to 151 keeps the 3780 -> 378 ratio, so the same objects count as tiny
  await makeBenchmark({ out, count: 800, size: SIZE, lowres: 151, seed: SEED, writeImages: false });
  const found = optionsOnlyAccuracy(loadBenchmark(path.join(out, 'questions.jsonl'))).per_category;
  fs.rmSync(out, { recursive: true });
  assert.deepEqual(Object.keys(found).sort(), [...QA_CATEGORIES].sort());
  for (const [c, r] of Object.entries(found)) {
    assert.ok(r.questions >= 150, `${c}: ${r.questions} questions`);
    // chance is 0.25; counting keeps the scenes' prior over counts (small groups are common)
    assert.ok(r.accuracy <= (c === 'counting' ? 0.4 : 0.33), `${c}: the options alone answer ${r.accuracy.toFixed(2)} of ${r.questions}`);
  }
});

test('a benchmark of the older generator (options as edits of the truth) is named as such', async () => {
  const out = tmp();
  await makeBenchmark({ out, count: 2, size: SIZE, seed: SEED, writeImages: false });
  const file = path.join(out, 'questions.jsonl');
  const manifestFile = path.join(out, 'manifest.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  assert.equal(manifest.qa_version, QA_VERSION);
  assert.equal(oldGeneratorWarning(file), null);
  delete manifest.qa_version;
  fs.writeFileSync(manifestFile, JSON.stringify(manifest));
  assert.match(oldGeneratorWarning(file) ?? '', /generator 1, whose options give the answer away/);
  fs.rmSync(manifestFile);
  assert.equal(oldGeneratorWarning(file), null, 'no manifest: a benchmark from elsewhere');
  fs.rmSync(out, { recursive: true });
});

test('more questions a category for training: about different objects; one a category is what a benchmark asks', () => {
  let more = 0;
  let one = 0;
  for (let i = 0; i < 6; i++) {
    const scene = renderScene(sceneRng(SEED, i), { width: SIZE, height: SIZE });
    const single = sceneQuestions(scene, questionRng(SEED, i), { lowres: 151 });
    assert.deepEqual(sceneQuestions(scene, questionRng(SEED, i), { lowres: 151, perCategory: 1 }), single);
    const many = sceneQuestions(scene, questionRng(SEED, i), { lowres: 151, perCategory: 4 });
    for (const c of QA_CATEGORIES) {
      const about = many.filter((q) => q.category === c).map((q) => q.evidence.object_ids.join(','));
      assert.ok(about.length <= 4);
      assert.equal(new Set(about).size, about.length, `${c}: each question about other objects`);
    }
    more += many.length;
    one += single.length;
  }
  assert.ok(more >= 2 * one, `${more} questions at four a category, ${one} at one`);
});
