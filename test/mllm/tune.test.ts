/**
 * train-mllm --tune-selection: PS3's selection modules train with the selection loss (the trunk
 * stays as it was), the tuned PS3 is kept inside the VILA-HD folder, and a run stopped after a
 * checkpoint and resumed follows the uninterrupted run's losses; `ps3 export` ships the folder in F16.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { disposeVilaHd, loadVilaHd } from '../../src/mllm/model.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { exportVilaHd } from '../../src/mllm/export.js';
import { writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-tune-'));
const ps3 = path.join(tmp, 'ps3');
const options = (out: string): TrainVilaOptions => ({
  ps3, out, method: 'ps3', preset: 'micro', steps: 4, batch: 2, lr: 2e-3, warmup: 1, clip: 1, seed: 3, dataSeed: 23, images: 2,
  looks: 1, selectionWeight: 1, saveEvery: 2, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'),
  tuneSelection: true, selectionLr: 1e-2,
});

function losses(out: string): Array<{ step: number; loss: number; selection_loss: number }> {
  return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; loss: number; selection_loss: number });
}

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 4);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('--tune-selection trains the selection modules only, keeps the tuned PS3 in the folder, and resumes on the same curve', async () => {
  const a = path.join(tmp, 'a');
  await trainVilaHd(options(a));
  const full = losses(a);
  assert.equal(full.length, 4);

  const config = JSON.parse(fs.readFileSync(path.join(a, 'checkpoint', 'config.json'), 'utf8')) as { ps3_model: string };
  assert.equal(config.ps3_model, 'ps3');
  const before = readSafetensors(path.join(ps3, 'model.safetensors'));
  const after = readSafetensors(path.join(a, 'checkpoint', 'ps3', 'model.safetensors'));
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  const changed = [...after.keys()].filter((k) => after.get(k)!.data.some((v, i) => v !== before.get(k)!.data[i]));
  assert.ok(changed.some((k) => k.startsWith('vision_model.selection_feature_proj.')), changed.join(', '));
  assert.ok(changed.some((k) => k.startsWith('vision_model.highres_selection_feature_module.')), 'the ConvNeXt trains');
  const frozen = changed.filter((k) => !/^vision_model\.(selection_feature_proj|highres_selection_feature_module|prompt_proj_for_highres)\./.test(k));
  assert.deepEqual(frozen, [], 'nothing but the selection modules changes');

  // the folder loads with its tuned PS3
  const model = loadVilaHd(path.join(a, 'checkpoint'));
  try {
    const key = 'vision_model.selection_feature_proj.fc1.weight';
    assert.deepEqual([...model.ps3.weights.get(key).dataSync()], [...after.get(key)!.data]);
  } finally {
    disposeVilaHd(model);
  }

  // exported to ship: F16 weights, the tuned PS3 beside as ps3/, and it loads
  const shipped = path.join(tmp, 'shipped');
  const { files } = exportVilaHd(path.join(a, 'checkpoint'), shipped, 'F16');
  assert.ok(files.includes('model.safetensors') && files.includes(path.join('ps3', 'model.safetensors')), files.join(', '));
  assert.ok(!fs.existsSync(path.join(shipped, 'optimizer.safetensors')));
  const half = loadVilaHd(shipped);
  try {
    const key = 'vision_model.selection_feature_proj.fc1.weight';
    const got = half.ps3.weights.get(key).dataSync();
    after.get(key)!.data.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) <= 1e-3 * Math.max(1, Math.abs(v)), key));
  } finally {
    disposeVilaHd(half);
  }

  // stopped right after its step-2 checkpoint, then resumed without the flag: it goes on tuning, on the same curve
  const b = path.join(tmp, 'b');
  await assert.rejects(trainVilaHd(options(b), { onSave: () => { throw new Error('stop'); } }), /stop/);
  assert.equal(losses(b).length, 2);
  await trainVilaHd({ ...options(b), resume: true, tuneSelection: false });
  const resumed = losses(b);
  assert.deepEqual(resumed.map((m) => m.step), full.map((m) => m.step));
  resumed.forEach((m, i) => assert.ok(Math.abs(m.loss - full[i]!.loss) < 1e-5, `step ${m.step}: ${m.loss} vs ${full[i]!.loss}`));
  const tunedB = readSafetensors(path.join(b, 'checkpoint', 'ps3', 'model.safetensors'));
  for (const k of changed) tunedB.get(k)!.data.forEach((v, i) => assert.ok(Math.abs(v - after.get(k)!.data[i]!) < 1e-6, k));
});

test('--tune-selection projections tunes the two projections on the cached ConvNeXt features, and leaves the ConvNeXt as it was', async () => {
  const d = path.join(tmp, 'd');
  await trainVilaHd({ ...options(d), tuneSelection: 'projections', steps: 2, cacheRoot: path.join(tmp, 'cache-d') });
  const before = readSafetensors(path.join(ps3, 'model.safetensors'));
  const after = readSafetensors(path.join(d, 'checkpoint', 'ps3', 'model.safetensors'));
  const changed = [...after.keys()].filter((k) => after.get(k)!.data.some((v, i) => v !== before.get(k)!.data[i]));
  assert.ok(changed.some((k) => k.startsWith('vision_model.selection_feature_proj.')), changed.join(', '));
  assert.ok(changed.some((k) => k.startsWith('vision_model.prompt_proj_for_highres.')), changed.join(', '));
  assert.deepEqual(changed.filter((k) => !/^vision_model\.(selection_feature_proj|prompt_proj_for_highres)\./.test(k)), [], 'only the projections change');
  const cached = fs.readdirSync(path.join(tmp, 'cache-d'), { recursive: true }).map(String);
  assert.ok(cached.some((f) => f.endsWith('.safetensors')) && !cached.some((f) => f.includes('convin')), 'no ConvNeXt input is cached');
  const state = JSON.parse(fs.readFileSync(path.join(d, 'checkpoint', 'trainer_state.json'), 'utf8')) as { options: { tuneSelection: unknown } };
  assert.equal(state.options.tuneSelection, 'projections');
});

test('export --add joins methods trained in other runs on the same PS3 trunk; another LM shape, a method twice or another trunk is refused', async () => {
  const a = path.join(tmp, 'a', 'checkpoint');
  const e = path.join(tmp, 'e');
  await trainVilaHd({ ...options(e), method: 'lowres', tuneSelection: false, steps: 1 });
  const merged = path.join(tmp, 'merged');
  exportVilaHd(a, merged, 'F32', [path.join(e, 'checkpoint')]);
  const model = loadVilaHd(merged);
  try {
    assert.deepEqual(model.config.methods, ['ps3', 'lowres']);
    const theirs = readSafetensors(path.join(e, 'checkpoint', 'model.safetensors'));
    const key = 'lowres.lm.blocks.0.attn.qkv.weight';
    assert.deepEqual([...model.weights.get(key).dataSync()], [...theirs.get(key)!.data]);
    assert.equal(model.config.ps3Model, 'ps3', 'the tuned PS3 of the first checkpoint stays');
  } finally {
    disposeVilaHd(model);
  }
  assert.throws(() => exportVilaHd(a, path.join(tmp, 'twice'), 'F32', [a]), (err: unknown) => isUserError(err) && /method ps3 is already in the folder/.test(err.message));
  const otherPs3 = path.join(tmp, 'other-ps3');
  await writeMicroPs3(otherPs3, 8);
  const f = path.join(tmp, 'f');
  await trainVilaHd({ ...options(f), ps3: otherPs3, method: 'lowres', tuneSelection: false, steps: 1, cacheRoot: path.join(tmp, 'cache-f') });
  assert.throws(() => exportVilaHd(a, path.join(tmp, 'other'), 'F32', [path.join(f, 'checkpoint')]), (err: unknown) => isUserError(err) && /stands on another PS3 \(weight "vision_model\./.test(err.message));
  const g = path.join(tmp, 'g');
  await trainVilaHd({ ...options(g), method: 'lowres', preset: 'tiny', tuneSelection: false, steps: 1 });
  assert.throws(() => exportVilaHd(a, path.join(tmp, 'wide'), 'F32', [path.join(g, 'checkpoint')]), (err: unknown) => isUserError(err) && /its LM \(field lm\) differs/.test(err.message));
  // a ps3 LM that selects with tuned modules cannot replace one that selects with the folder's own PS3
  const h = path.join(tmp, 'h');
  await trainVilaHd({ ...options(h), tuneSelection: false, steps: 1 });
  assert.throws(() => exportVilaHd(path.join(h, 'checkpoint'), path.join(tmp, 'swap'), 'F32', [a], true), (err: unknown) => isUserError(err) && /--replace: its ps3 LM selects with other PS3 selection modules \(weight "vision_model\./.test(err.message));
  assert.ok(!fs.existsSync(path.join(tmp, 'swap')), 'nothing written');
});

test('--tune-selection is refused for a method that does not select', async () => {
  await assert.rejects(trainVilaHd({ ...options(path.join(tmp, 'c')), method: 'lowres' }), (e: unknown) => isUserError(e) && /--tune-selection trains PS3's selection, which only --method ps3 uses/.test(e.message));
  assert.ok(!fs.existsSync(path.join(tmp, 'c', 'checkpoint')));
});
