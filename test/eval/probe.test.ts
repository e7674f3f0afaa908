/**
 * src/eval/probe.ts: the splits, which objects share a look, the features of a forced look (every
 * patch of a box that fits is chosen), the probe itself on crafted features (a label written into
 * the features is read perfectly, features that ignore the label are not), the whole
 * evaluation on the micro preset with random weights: the report's shape and counts, and what a
 * VILA-HD projector makes of a box's tokens, against the merge done by hand.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { boxCells, boxesToGtMap, forcingCapacity, gridAtScale, ownForcedAtTop } from '../../src/model/selection.js';
import { encodeImage, withResizes } from '../../src/model/encoder.js';
import { finalNorm } from '../../src/model/vit.js';
import { ps3Grids } from '../../src/mllm/visual.js';
import { project } from '../../src/mllm/projector.js';
import { newVilaConfig, randomVilaWeights } from '../../src/mllm/model.js';
import type { Box } from '../../src/io/shards.js';
import {
  evaluateProbe, linearProbe, majorityAccuracy, objectAttributes, objectFeatures, packLooks, probeChart, PROBE_ATTRIBUTES, PROBE_FEATURES, PROBE_LAMBDAS, PROBE_SPLITS,
  splitSizes, synthProbeScenes, TOKEN_FEATURES, type Labelled, type ProbeScene,
} from '../../src/eval/probe.js';
import { plotSvg } from '../../src/eval/plot.js';
import { Rng } from '../../src/rng.js';

let model: PS3Model;
let scenes: ProbeScene[];
const S = 224;

before(async () => {
  await initEngine();
  model = randomModel(presetConfig('micro'), 3);
  scenes = synthProbeScenes(1_000_000, 5, S);
});

after(() => model.weights.dispose());

test('splits: 60 / 20 / 20 by scene index, each split at least one scene; fewer than 5 scenes refused', () => {
  assert.deepEqual(splitSizes(5), { fit: 3, choose: 1, test: 1 });
  assert.deepEqual(splitSizes(10), { fit: 6, choose: 2, test: 2 });
  assert.deepEqual(splitSizes(60), { fit: 36, choose: 12, test: 12 });
  assert.throws(() => splitSizes(4), /at least 5/);
});

test('scenes with a seed in the training range are refused unless forced', () => {
  assert.throws(() => synthProbeScenes(999_999, 5, S), /training range/);
  assert.equal(synthProbeScenes(999_999, 5, S, true).length, 5);
});

test('looks: every object once; forced patches of a look disjoint and within its top-scale budget', async () => {
  const { objects } = await scenes[0]!.load();
  const capacity = forcingCapacity(model.config.vision, S);
  const boxes = objects.map((o) => o.box);
  const looks = packLooks(boxes, S, capacity);
  assert.deepEqual(looks.flat().sort((a, b) => a - b), boxes.map((_, k) => k));
  assert.ok(looks.length < boxes.length, 'some objects share a look');
  for (const members of looks) {
    const forced = members.flatMap((k) => ownForcedAtTop(boxes[k]!, S, capacity));
    assert.equal(new Set(forced).size, forced.length, 'disjoint');
    if (members.length > 1) assert.ok(forced.length <= capacity.budget);
  }
});

test('features of forced looks: sizes; a box that fits its look has every patch it touches chosen; no tensors leak', async () => {
  const { pixels, objects } = await scenes[1]!.load();
  const cfg = model.config.vision;
  const D = cfg.trunk.width;
  // a dozen objects: a few looks' worth
  const boxes = objects.slice(0, 12).map((o) => o.box);
  const capacity = forcingCapacity(cfg, S);
  const [gh, gw] = gridAtScale(cfg, S, S, cfg.scales.length - 1);
  // warm up the engine's cached weights
  await objectFeatures(model, pixels, boxes.slice(0, 1));
  const before = tf.memory().numTensors;
  const { features, looks } = await objectFeatures(model, pixels, boxes);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(looks, packLooks(boxes, S, capacity).length);
  features.forEach((f, k) => {
    const fits = ownForcedAtTop(boxes[k]!, S, capacity).length <= capacity.budget;
    if (!fits) return;
    assert.ok(f, `object ${k}`);
    assert.equal(f.tokens, boxCells(boxes[k]!, S, gh, gw).length, `object ${k}: every patch chosen`);
    assert.equal(f.mean_tokens.length, D);
    assert.equal(f.grid_tokens.length, 16 * D);
    assert.equal(f.pooled.length, D);
    assert.equal(f.pixels.length, 3 * 8 * 8);
    assert.ok([...f.mean_tokens, ...f.grid_tokens, ...f.pooled, ...f.pixels].every(Number.isFinite));
  });
  // the pooling head's output, not the tokens' mean, and each box's own
  const pooled = features.filter((f) => f !== null).map((f) => f.pooled);
  assert.notDeepEqual(pooled[0], features.find((f) => f !== null)!.mean_tokens);
  assert.notDeepEqual(pooled[0], pooled[1]);
});

/** Labelled rows of `count` objects over `classes` classes, features from `feature(label index)`. */
function crafted(count: number, classes: number, feature: (c: number) => number[]): Labelled {
  const labels = Array.from({ length: count }, (_, i) => i % classes);
  return { x: labels.map((c) => Float32Array.from(feature(c))), labels: labels.map((c) => `class${c}`) };
}

test('the probe reads a label written into the features perfectly, and not from features that ignore it', () => {
  const rng = new Rng(5);
  const classes = 6;
  // the label as a one-hot block among noise columns, or noise alone
  const carries = (c: number): number[] => [...Array.from({ length: classes }, (_, j) => (j === c ? 1 : 0) + rng.uniform(-0.2, 0.2)), ...Array.from({ length: 10 }, () => rng.uniform(-1, 1))];
  const ignores = (): number[] => Array.from({ length: classes + 10 }, () => rng.uniform(-1, 1));
  for (const [feature, perfect] of [[carries, true], [ignores, false]] as const) {
    const data = { fit: crafted(120, classes, feature), choose: crafted(40, classes, feature), test: crafted(60, classes, feature) };
    const r = linearProbe(data);
    assert.ok(PROBE_LAMBDAS.includes(r.lambda!));
    if (perfect) assert.equal(r.accuracy, 1);
    else assert.ok(r.accuracy! < 0.5, `random features: ${r.accuracy}`);
  }
  assert.deepEqual(linearProbe({ fit: { x: [], labels: [] }, choose: { x: [], labels: [] }, test: { x: [], labels: [] } }), { accuracy: null, lambda: null });
});

test('majority: the fit split\'s most frequent class (ties: the first sorted) scored on test', () => {
  assert.equal(majorityAccuracy(['b', 'a', 'b'], ['b', 'a', 'c', 'b']), 0.5);
  assert.equal(majorityAccuracy(['b', 'a'], ['a', 'b', 'b']), 1 / 3);
  assert.equal(majorityAccuracy([], ['a']), null);
  assert.equal(majorityAccuracy(['a'], []), null);
});

test('end to end on micro (random weights, 5 scenes): the report\'s shape, accuracies in [0, 1], counts that add up; the chart', async () => {
  const report = await evaluateProbe(model, scenes);
  assert.equal(report.scenes, 5);
  assert.deepEqual(report.split, { fit: 3, choose: 1, test: 1 });
  assert.equal(report.scale, S);
  assert.equal(report.objects.probed + report.objects.no_tokens, report.objects.total);
  let total = 0;
  let shapes = 0;
  let characters = 0;
  for (const scene of scenes) {
    const { objects } = await scene.load();
    total += objects.length;
    shapes += objects.filter((o) => objectAttributes(o).shape !== null).length;
    characters += objects.filter((o) => objectAttributes(o).character !== null).length;
  }
  assert.equal(report.objects.total, total);
  assert.ok(report.looks >= 5 && report.looks <= total);
  const sum = (n: Record<string, number>): number => PROBE_SPLITS.reduce((a, s) => a + n[s]!, 0);
  // every object has a colour (probed ones are counted); shapes and characters only some
  assert.equal(sum(report.attributes.colour.n), report.objects.probed);
  assert.ok(sum(report.attributes.shape.n) <= shapes && sum(report.attributes.shape.n) > 0);
  assert.ok(sum(report.attributes.character.n) <= characters && sum(report.attributes.character.n) > 0);
  // without a projector, every feature set but `projected`
  assert.deepEqual(report.features, TOKEN_FEATURES);
  assert.deepEqual(PROBE_FEATURES.filter((f) => !report.features.includes(f)), ['projected']);
  for (const a of PROBE_ATTRIBUTES) {
    const r = report.attributes[a];
    for (const value of [r.majority, ...report.features.map((f) => r[f])]) assert.ok(value !== null && value >= 0 && value <= 1, `${a}: ${value}`);
    for (const f of report.features) assert.ok(PROBE_LAMBDAS.includes(r.lambda[f]!), `${a} ${f} λ ${r.lambda[f]}`);
    assert.equal(r.projected, null);
    assert.equal(r.lambda.projected, null);
    assert.ok(r.classes.fit >= 2 && r.classes.test <= r.n.test);
    assert.ok(r.test_unseen >= 0 && r.test_unseen <= r.n.test);
  }
  assert.ok(report.attributes.colour.classes.fit <= 12 && report.attributes.shape.classes.fit <= 9);
  const svg = plotSvg(probeChart(report, 'probe'));
  // a bar per feature set and attribute, and a legend swatch per feature set; the majority dashed across each
  assert.equal((svg.match(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="#/g) ?? []).length, report.features.length * 3 + report.features.length);
  for (const a of PROBE_ATTRIBUTES) assert.match(svg, new RegExp(`>${a}<`));
  assert.match(svg, />majority class</);
});

test('with a VILA-HD projector: an object\'s projected feature is the mean LM input of the whole 2 x 2 cells of its box, widened and forced; the report adds it', async () => {
  const cfg = model.config.vision;
  const vila = newVilaConfig({ preset: 'micro', methods: ['ps3'], ps3Model: '.' });
  const weights = randomVilaWeights(vila, model.config, ['ps3'], 4);
  const projector = { weights, method: 'ps3' };
  const { pixels, objects } = await scenes[2]!.load();
  const [gh, gw] = gridAtScale(cfg, S, S, cfg.scales.length - 1);
  const patch = S / gh;
  // an object alone in its look, at an odd row or column so that the widening matters
  const odd = objects.find((o) => Math.floor(o.box[1] / patch) % 2 === 1 || Math.floor(o.box[0] / patch) % 2 === 1)!;
  assert.ok(odd, 'an object at an odd cell');
  const { features } = await objectFeatures(model, pixels, [odd.box], projector);
  const got = features[0]!;
  assert.ok(got && got.projected, 'probed');
  assert.equal(got.projected.length, vila.lm.width);
  assert.equal(got.tokens, boxCells(odd.box, S, gh, gw).length, 'the box\'s own patches still give the token features');
  // by hand: the box's cells widened to even rows and columns, forced alone, every 2 x 2 cell of the block merged (top-left, top-right, bottom-left, bottom-right) and projected
  const r0 = Math.floor(odd.box[1] / patch) - (Math.floor(odd.box[1] / patch) % 2);
  const c0 = Math.floor(odd.box[0] / patch) - (Math.floor(odd.box[0] / patch) % 2);
  const r1 = Math.min(gh, Math.ceil(odd.box[3] / patch) + (Math.ceil(odd.box[3] / patch) % 2));
  const c1 = Math.min(gw, Math.ceil(odd.box[2] / patch) + (Math.ceil(odd.box[2] / patch) % 2));
  const block: Box = [c0 * patch, r0 * patch, c1 * patch, r1 * patch];
  const out = await encodeImage(model.weights, model.config, withResizes(cfg, pixels), { numLookClose: 1, gtSelectionMaps: boxesToGtMap([block], S, new Float32Array(S * S)), outputHiddenStates: false });
  const top = ps3Grids(model, out.selectionMaps).at(-1)!;
  const ids = Array.from(top.ids!);
  const D = cfg.trunk.width;
  const expected = tf.tidy(() => {
    const normed = tf.reshape(finalNorm(model.weights, cfg.trunk, tf.slice(out.lastHiddenState, [0, top.offset, 0], [1, ids.length, D])), [ids.length, D]);
    const row = (r: number, c: number): tf.Tensor => { const j = ids.indexOf(r * gw + c); assert.ok(j >= 0, `cell ${r},${c} chosen`); return tf.slice(normed, [j, 0], [1, D]); };
    const cells: tf.Tensor[] = [];
    for (let r = r0; r < r1; r += 2) for (let c = c0; c < c1; c += 2) cells.push(tf.concat([row(r, c), row(r, c + 1), row(r + 1, c), row(r + 1, c + 1)], 1));
    return tf.mean(project(weights, 'ps3', tf.concat(cells, 0)), 0);
  });
  const want = (await expected.data()) as Float32Array;
  tf.dispose([expected, out.lastHiddenState, out.pooledOutput, ...out.selectionProbs, ...out.bottomupSelectionProbs]);
  got.projected.forEach((v, d) => assert.ok(Math.abs(v - want[d]!) < 1e-4, `dim ${d}: ${v} against ${want[d]}`));
  // the whole evaluation reads it too
  const report = await evaluateProbe(model, scenes, { projector });
  assert.deepEqual(report.features, PROBE_FEATURES);
  for (const a of PROBE_ATTRIBUTES) {
    const r = report.attributes[a];
    assert.ok(r.projected !== null && r.projected >= 0 && r.projected <= 1, `${a}: ${r.projected}`);
    assert.ok(PROBE_LAMBDAS.includes(r.lambda.projected!));
  }
  assert.match(report.how, /projected \(the mean of the LM inputs the ps3 projector/);
  weights.dispose();
});
