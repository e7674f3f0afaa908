/**
 * src/eval/selectionRecall.ts: a box's top-scale patches are those its ground-truth map touches
 * after the area resize; the looks chosen for scoring are the encoder's own; recall, bottom-up
 * recall and the random baseline are what they claim (every patch chosen gives recall 1), and
 * the examples picture is drawn.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { resize } from '../../src/tensor/resample.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import { encodeImage } from '../../src/model/encoder.js';
import { boxToGtMap } from '../../src/model/selection.js';
import { evalTokenizer, type EvalTokenizer } from '../../src/eval/qa/text.js';
import { synthRetrievalImages, type RetrievalImage } from '../../src/eval/retrieval.js';
import { boxPatchIndices, chooseLooks, evaluateSelection, examplesPicture } from '../../src/eval/selectionRecall.js';
import { textFeatures } from '../../src/model/region.js';
import { Weights } from '../../src/model/weights.js';
import { Rng } from '../../src/rng.js';
import { tinyConfig } from './tinyConfig.js';

let model: PS3Model;
let tok: EvalTokenizer;
let images: RetrievalImage[];

before(async () => {
  await initEngine();
  model = randomModel(tinyConfig(), 7);
  tok = await evalTokenizer(model);
  images = synthRetrievalImages(1_000_000, 2, 448, 224);
});

after(() => model.weights.dispose());

test('box patches: exactly the cells where the area-downsampled ground-truth map is > 0', () => {
  const rng = new Rng(3);
  for (const [size, g] of [[224, 16], [100, 7], [90, 12]] as const) {
    for (let k = 0; k < 40; k++) {
      const x0 = rng.uniform(-5, size - 1);
      const y0 = rng.uniform(-5, size - 1);
      const box = [x0, y0, x0 + rng.uniform(0, size / 3), y0 + rng.uniform(0, size / 3)] as const;
      const area = resize(boxToGtMap([...box], size), 1, size, size, g, g, 'area');
      const expected = [...area.keys()].filter((i) => area[i]! > 0);
      assert.deepEqual(boxPatchIndices(box, size, size, g, g), expected, `box ${box.map((v) => v.toFixed(1)).join(',')} at ${size}px, grid ${g}`);
    }
  }
});

test('the looks scored are the ones the encoder chooses (bottom-up, 1 and 2 looks)', async () => {
  const pixels = await images[0]!.load();
  for (const looks of [1, 2]) {
    const out = await encodeImage(model.weights, model.config, pixels, { numLookClose: looks, outputHiddenStates: false });
    const probs = await Promise.all(out.selectionProbs.map(async (p) => (await p.data()) as Float32Array));
    const ours = chooseLooks(model, probs, pixels.height, pixels.width, looks);
    ours.forEach((m, i) => assert.deepEqual(Array.from(m), Array.from(out.selectionMaps[i]!.data), `scale ${i}, ${looks} looks`));
    tf.dispose([out.lastHiddenState, out.pooledOutput, ...out.selectionProbs, ...out.bottomupSelectionProbs]);
  }
});

test('recall in [0, 1], random = chosen / grid, every patch chosen gives recall 1; no tensors leak', async () => {
  // warm up the cached transposed weights of the text tower
  await evaluateSelection(model, tok.tokenizer, images.slice(0, 1), { looks: 1 });
  const before = tf.memory().numTensors;
  const { report, examples } = await evaluateSelection(model, tok.tokenizer, images, { looks: 1, examples: 2 });
  assert.equal(tf.memory().numTensors, before);
  const regions = images.reduce((a, im) => a + im.regions.length, 0);
  assert.equal(report.topdown.cases, regions);
  assert.equal(report.bottomup.cases, images.reduce((a, im) => a + im.objects!.length, 0));
  for (const c of [...report.cases.topdown, ...report.cases.bottomup]) {
    assert.ok(c.covered >= 0 && c.covered <= c.boxPatches && c.boxPatches > 0);
    assert.equal(c.recall, c.covered / c.boxPatches);
  }
  const grid = report.grid[0] * report.grid[1];
  assert.deepEqual(report.grid, [16, 16]);
  // one look chooses its top-scale budget at the top scale (nothing is excluded yet)
  assert.ok(report.cases.topdown.every((c) => c.chosenTop === report.top_budget_per_look));
  assert.ok(Math.abs(report.random.recall! - report.top_budget_per_look / grid) < 1e-12);
  const mean = report.cases.topdown.reduce((a, c) => a + c.recall, 0) / regions;
  assert.ok(Math.abs(report.topdown.recall! - mean) < 1e-12);
  assert.equal(examples.length, 2);
  const picture = examplesPicture(examples, 14, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
  assert.equal(picture.data.length, picture.width * picture.height * 3);
  assert.ok(picture.data.some((v) => v > 0));
  assert.equal(report.controls.prior_prompt.cases, regions);
  assert.equal(report.controls.other_caption.cases, images.filter((im) => im.regions.length > 1).reduce((a, im) => a + im.regions.length, 0));
  // enough looks to take every patch: every box is covered, and so is random
  const all = await evaluateSelection(model, tok.tokenizer, images, { looks: 1000 });
  assert.equal(all.report.controls.other_caption.recall, 1);
  assert.equal(all.report.controls.prior_prompt.recall, 1);
  assert.equal(all.report.topdown.recall, 1);
  assert.equal(all.report.bottomup.recall, 1);
  assert.equal(all.report.random.recall, 1);
});

test('the oracle prompt, fitted to each box, covers boxes at least as well as the captions on a random model; absent unless asked; no tensors leak', async () => {
  const plain = await evaluateSelection(model, tok.tokenizer, images, { looks: 1 });
  assert.equal(plain.report.oracle, undefined);
  const before = tf.memory().numTensors;
  const { report } = await evaluateSelection(model, tok.tokenizer, images, { looks: 1, oracleSteps: 40 });
  assert.equal(tf.memory().numTensors, before);
  const oracle = report.oracle!;
  assert.equal(oracle.steps, 40);
  assert.equal(oracle.cases, report.topdown.cases);
  assert.ok(oracle.recall! >= 0 && oracle.recall! <= 1);
  // a random model's captions say nothing about where boxes are; a prompt fitted to the box does
  assert.ok(oracle.recall! > report.topdown.recall! + 0.1, `oracle ${oracle.recall} vs top-down ${report.topdown.recall}`);
});

test('prompt spread: the mean cosine between two captions\' prompts of an image and with the prior prompt; a prompt projection that ignores the caption gives 1', async () => {
  const { report } = await evaluateSelection(model, tok.tokenizer, images, { looks: 1 });
  const between: number[] = [];
  const prior: number[] = [];
  const p = model.weights.get('vision_model.prior_prompt').arraySync() as number[];
  const cos = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0) / Math.hypot(...a) / Math.hypot(...b);
  for (const im of images) {
    const { features, prompts } = textFeatures(model, tok.tokenizer.encode(im.regions.map((r) => r.caption)), im.regions.length);
    const rows = prompts.arraySync() as number[][];
    tf.dispose([features, prompts]);
    rows.forEach((a, i) => {
      prior.push(cos(a, p));
      rows.slice(0, i).forEach((b) => between.push(cos(a, b)));
    });
  }
  const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
  assert.ok(between.length > 0);
  assert.ok(Math.abs(report.prompts.between_captions! - mean(between)) < 1e-5, `${report.prompts.between_captions} vs ${mean(between)}`);
  assert.ok(Math.abs(report.prompts.with_prior! - mean(prior)) < 1e-5);
  assert.ok(report.prompts.between_captions! < 0.999, 'a random prompt projection tells captions apart');
  // fc2's weight all zeros: every prompt is fc2's bias, and the prior prompt is that bias too
  const bias = tf.randomNormal(model.weights.get('text_model.prompt_proj.fc2.bias').shape, 0, 1, 'float32', 5);
  const map = new Map([...model.weights.entries()]);
  const zero = tf.zerosLike(model.weights.get('text_model.prompt_proj.fc2.weight'));
  map.set('text_model.prompt_proj.fc2.weight', zero);
  map.set('text_model.prompt_proj.fc2.bias', bias);
  map.set('vision_model.prior_prompt', bias);
  const collapsed = await evaluateSelection({ ...model, weights: new Weights(map) }, tok.tokenizer, images.slice(0, 1), { looks: 1 });
  tf.dispose([zero, bias]);
  assert.ok(Math.abs(collapsed.report.prompts.between_captions! - 1) < 1e-5, JSON.stringify(collapsed.report.prompts));
  assert.ok(Math.abs(collapsed.report.prompts.with_prior! - 1) < 1e-5);
  // one prompt for every caption, the prior's: the controls are the top-down look itself
  assert.equal(collapsed.report.controls.other_caption.recall, collapsed.report.topdown.recall);
  assert.equal(collapsed.report.controls.prior_prompt.recall, collapsed.report.topdown.recall);
});

test('the other-caption control scores each box with the next region\'s caption: the top-down recall of the captions rotated by one', async () => {
  const image = images.find((im) => im.regions.length > 2)!;
  const rotated: RetrievalImage = { ...image, load: image.load, regions: image.regions.map((r, i) => ({ ...r, caption: image.regions[(i + 1) % image.regions.length]!.caption })) };
  const looks = 3;
  const own = await evaluateSelection(model, tok.tokenizer, [image], { looks });
  const swapped = await evaluateSelection(model, tok.tokenizer, [rotated], { looks });
  assert.equal(own.report.controls.other_caption.recall, swapped.report.topdown.recall);
  assert.equal(swapped.report.controls.other_caption.cases, image.regions.length);
  // the check can fail: the captions' own looks cover the boxes otherwise
  assert.notEqual(own.report.topdown.recall, swapped.report.topdown.recall);
});
