/**
 * src/model/grow.ts: a model grown to more high-res scales keeps every shared weight, the first
 * per-scale chunk of the selection heads (so its selection at the old scales is unchanged), and
 * starts the new scale's position residual at zero; grown to another selection ConvNeXt, the module
 * and its prompt projection start fresh and all else is kept; impossible grows are refused by name.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { isUserError } from '../../src/errors.js';
import { randomModel } from '../../src/model/load.js';
import { growModel } from '../../src/model/grow.js';
import { presetConfig } from '../../src/model/presets.js';
import { parseConfig } from '../../src/io/config.js';
import { highresSelectionFeatures, lowRes, selection } from '../../src/model/encoder.js';
import { PRESETS } from '../../src/model/presets.js';

before(async () => {
  await initEngine();
});

function microWith(scales: number[], mlpRatio = 4, vision: Record<string, unknown> = {}) {
  const base = structuredClone(PRESETS['micro']!.config) as Record<string, Record<string, unknown>>;
  Object.assign(base['vision_config']!, vision);
  base['vision_config']!['ps3_scales'] = scales;
  (base['vision_config']!['trunk'] as Record<string, unknown>)['mlp_ratio'] = mlpRatio;
  return parseConfig(base, 'micro variant');
}

test('grow: shared weights copied, first chunk kept, new residual zero; selection at the old scales unchanged', async () => {
  const small = randomModel(microWith([56, 112]), 3);
  const target = presetConfig('micro');
  const { model, report } = growModel(small, target, 9);
  assert.deepEqual(report.zeroed, ['vision_model.pos_emb_residual.1']);
  assert.deepEqual(report.fresh, []);
  assert.deepEqual(report.firstChunk.sort(), [
    'vision_model.prompt_proj_for_highres.bias', 'vision_model.prompt_proj_for_highres.weight',
    'vision_model.selection_feature_proj.fc2.bias', 'vision_model.selection_feature_proj.fc2.weight',
  ]);
  for (const [key, value] of small.weights.entries()) {
    const grown = model.weights.get(key);
    if (report.firstChunk.includes(key)) {
      const rows = value.shape[0]!;
      assert.deepEqual(Array.from(tf.slice(grown, 0, rows).dataSync()), Array.from(value.dataSync()), key);
      assert.equal(grown.shape[0], 2 * rows, key);
    } else {
      assert.deepEqual(Array.from(grown.dataSync()), Array.from(value.dataSync()), key);
    }
  }
  assert.ok(model.weights.get('vision_model.pos_emb_residual.1').dataSync().every((v) => v === 0));
  // selection from the same low-res features: the grown model's map at 112 is the small model's, bottom-up and top-down
  const pixels = { data: Float32Array.from({ length: 3 * 112 * 112 }, (_, i) => Math.sin(i * 0.37)), batch: 1, height: 112, width: 112 };
  const low = lowRes(small.weights, small.config.vision, pixels, false);
  const features = highresSelectionFeatures(small.weights, small.config.vision, pixels);
  const prompt = tf.randomNormal([1, 32], 0, 1, 'float32', 5);
  for (const p of [null, prompt]) {
    const a = selection(small.weights, small.config.vision, pixels, low.hiddenStates, features, p);
    const b = selection(model.weights, model.config.vision, pixels, low.hiddenStates, features, p);
    assert.deepEqual(Array.from(b[0]!.dataSync()), Array.from(a[0]!.dataSync()));
    tf.dispose([...a, ...b]);
  }
  tf.dispose([...low.hiddenStates, prompt]);
  features?.dispose();
  small.weights.dispose();
  model.weights.dispose();
});

test('grow to another selection ConvNeXt: the module and its prompt projection drawn afresh, all else copied; the grown convnet runs at its finer grid', async () => {
  const source = randomModel(microWith([56, 112, 224]), 3);
  const finer = { highres_selection_module_kernel_size: 14, highres_selection_module_hidden_dim: 12, highres_selection_module_depth: 2 };
  const target = microWith([56, 112, 224], 4, finer);
  const { model, report } = growModel(source, target, 9);
  const reference = randomModel(target, 9);
  assert.deepEqual(report.zeroed, []);
  assert.deepEqual(report.firstChunk, []);
  assert.ok(report.fresh.includes('vision_model.highres_selection_feature_module.blocks.1.mlp.fc1.weight'));
  assert.ok(report.fresh.includes('vision_model.prompt_proj_for_highres.weight'));
  assert.ok(report.fresh.every((k) => k.startsWith('vision_model.highres_selection_feature_module.') || k.startsWith('vision_model.prompt_proj_for_highres.')));
  assert.equal(report.copied + report.fresh.length, [...model.weights.keys()].length);
  for (const [key, value] of model.weights.entries()) {
    const expected = report.fresh.includes(key) ? reference.weights.get(key) : source.weights.get(key);
    assert.deepEqual(value.shape, expected.shape, key);
    assert.deepEqual(Array.from(value.dataSync()), Array.from(expected.dataSync()), key);
  }
  assert.deepEqual([...model.weights.shapeOf('vision_model.highres_selection_feature_module.stem.0.weight')], [12, 3, 14, 14]);
  assert.match(model.source, /14 px, 12-channel, 2-block selection ConvNeXt/);
  // the grown model runs: its convnet map is 1512 / 14 = 108 cells a side
  const pixels = { data: Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.cos(i * 0.11)), batch: 1, height: 224, width: 224 };
  const features = highresSelectionFeatures(model.weights, model.config.vision, pixels)!;
  assert.deepEqual(features.shape, [1, 108, 108, 8]);
  features.dispose();
  for (const m of [source, model, reference]) m.weights.dispose();
});

test('grow refuses a target that drops or changes scales, or another trunk shape, naming the problem', () => {
  const small = randomModel(microWith([56, 112]), 3);
  assert.throws(() => growModel(small, microWith([56, 224])), (e: unknown) => isUserError(e) && /scales 56, 112/.test((e as Error).message));
  assert.throws(() => growModel(small, microWith([56, 112, 224], 3)), (e: unknown) => isUserError(e) && /"vision_model\.[^"]+" is \[/.test((e as Error).message));
  assert.throws(() => growModel(small, microWith([56, 112], 4, { highres_selection_feature: false })), (e: unknown) => isUserError(e) && /has a selection ConvNeXt and the target has none/.test((e as Error).message));
  small.weights.dispose();
});
