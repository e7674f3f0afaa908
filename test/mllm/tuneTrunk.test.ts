/**
 * Tuning PS3's last blocks with VILA-HD (`train-mllm --tune-trunk`): the trunk run from a block
 * on the states entering it ends where the whole trunk does; a cache of those states gives,
 * through the blocks, the tokens a frozen-PS3 cache holds (ps3 and the lowres baseline); the loss's gradient reaches the tuned
 * blocks, matching a central difference.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { loadModel } from '../../src/model/load.js';
import { trunk, trunkTailKeys } from '../../src/model/vit.js';
import { newVilaConfig, randomVilaWeights } from '../../src/mllm/model.js';
import { newLmTokenizer } from '../../src/mllm/tokenizer.js';
import { buildCache, cacheDir, CacheReader, type CacheSpec } from '../../src/mllm/trainData.js';
import { batchLossAndGrads, tunedTokens } from '../../src/mllm/objective.js';
import { writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-tune-trunk-'));
let ps3Dir = '';

before(async () => {
  await initEngine({});
  ps3Dir = await writeMicroPs3(path.join(tmp, 'ps3'), 4);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function maxDiff(a: tf.Tensor, b: ArrayLike<number>): number {
  const x = a.dataSync();
  assert.equal(x.length, b.length, 'sizes');
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - b[i]!));
  return m;
}

test('the trunk run from a block on the states entering it ends where the whole trunk does, for low-res tokens and a look attending to them', () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const cfg = ps3.config.vision.trunk;
  const w = ps3.weights;
  const low = tf.randomNormal([1, 9, cfg.width], 0, 1, 'float32', 1);
  const high = tf.randomNormal([1, 5, cfg.width], 0, 1, 'float32', 2);
  const fullLow = trunk(w, cfg, low, { keepKv: true });
  const fullHigh = trunk(w, cfg, high, { cache: fullLow.kvCache });
  for (let b = 1; b < cfg.depth; b++) {
    const l = trunk(w, cfg, fullLow.hiddenStates[b - 1]!, { keepKv: true, firstBlock: b });
    const h = trunk(w, cfg, fullHigh.hiddenStates[b - 1]!, { cache: l.kvCache, firstBlock: b });
    assert.equal(l.hiddenStates.length, cfg.depth - b);
    assert.ok(maxDiff(l.hiddenStates.at(-1)!, fullLow.hiddenStates.at(-1)!.dataSync()) < 1e-6, `low-res from block ${b}`);
    assert.ok(maxDiff(h.hiddenStates.at(-1)!, fullHigh.hiddenStates.at(-1)!.dataSync()) < 1e-6, `look from block ${b}`);
  }
  assert.throws(() => trunk(w, cfg, low, { firstBlock: cfg.depth }), /firstBlock 2 is not a block of 2/);
  const last = cfg.depth - 1;
  const keys = trunkTailKeys(w, cfg, last);
  assert.ok(keys.includes(`vision_model.trunk.blocks.${last}.attn.qkv.weight`) && keys.includes('vision_model.trunk.norm.weight'));
  assert.ok(keys.every((k) => k.startsWith(`vision_model.trunk.blocks.${last}.`) || k.startsWith('vision_model.trunk.norm.')), keys.join(', '));
  ps3.weights.dispose();
});

test('a cache of the states entering the last block gives through it the frozen cache\'s tokens and selection states; a decoy reads the look it names', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const cfg = ps3.config.vision;
  const from = cfg.trunk.depth - 1;
  const spec: CacheSpec = { method: 'ps3', seed: 31, images: 2, looks: 1 };
  const frozenDir = cacheDir(path.join(tmp, 'cache'), ps3Dir, spec);
  const tunedDir = cacheDir(path.join(tmp, 'cache'), ps3Dir, { ...spec, trunkFrom: from });
  assert.notEqual(tunedDir, frozenDir, 'a cache of entering states is keyed apart');
  const questions = await buildCache(ps3, spec, frozenDir);
  assert.deepEqual(await buildCache(ps3, { ...spec, trunkFrom: from }, tunedDir), questions);
  const frozen = new CacheReader(frozenDir);
  const entering = new CacheReader(tunedDir);
  const at = { ps3, weights: ps3.weights, firstBlock: from };
  for (const q of questions) {
    const f = frozen.image(q.image);
    const t = tunedTokens(at, { question: q, arrays: entering.image(q.image) });
    assert.ok(maxDiff(t.low, f.get('low')!.data) < 1e-4, `low-res tokens of ${q.image}.${q.index}`);
    assert.ok(maxDiff(t.high!, f.get(`high.${q.index}`)!.data) < 1e-4, `look of ${q.image}.${q.index}`);
    for (const l of cfg.selectBasedOnLayer) {
      if (l >= from) assert.ok(maxDiff(t.hidden.get(l)!, f.get(`sel.${l}`)!.data) < 1e-4, `selection layer ${l}`);
      else assert.ok(entering.image(q.image).has(`sel.${l}`), `layer ${l} is cached`);
    }
    tf.dispose([t.low, t.high!, ...t.hidden.values()]);
  }
  const q = questions.find((x) => questions.some((y) => y.image === x.image && y.index !== x.index))!;
  const other = questions.find((y) => y.image === q.image && y.index !== q.index)!;
  const arrays = entering.image(q.image);
  const decoy = tunedTokens(at, { question: { ...q, look: other.index }, arrays });
  const theirs = tunedTokens(at, { question: other, arrays });
  assert.equal(maxDiff(decoy.high!, theirs.high!.dataSync()), 0);
  tf.dispose([decoy.low, decoy.high!, theirs.low, theirs.high!, ...decoy.hidden.values(), ...theirs.hidden.values()]);
  ps3.weights.dispose();
});

test('the lowres baseline\'s cache of entering states gives through the last block its frozen cache\'s tokens', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const from = ps3.config.vision.trunk.depth - 1;
  const spec: CacheSpec = { method: 'lowres', seed: 33, images: 2 };
  const frozenDir = cacheDir(path.join(tmp, 'cache'), ps3Dir, spec);
  const tunedDir = cacheDir(path.join(tmp, 'cache'), ps3Dir, { ...spec, trunkFrom: from });
  const questions = await buildCache(ps3, spec, frozenDir);
  assert.deepEqual(await buildCache(ps3, { ...spec, trunkFrom: from }, tunedDir), questions);
  const q = questions[0]!;
  const entering = new CacheReader(tunedDir).image(q.image);
  assert.deepEqual([...entering.keys()], ['lowin']);
  const t = tunedTokens({ ps3, weights: ps3.weights, firstBlock: from }, { question: q, arrays: entering }, false);
  assert.equal(t.high, null);
  assert.ok(maxDiff(t.low, new CacheReader(frozenDir).image(q.image).get('visual')!.data) < 1e-4);
  tf.dispose([t.low, ...t.hidden.values()]);
  ps3.weights.dispose();
});

test('the loss\'s gradient reaches the tuned block (a central difference agrees) and the LM', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const cfg = ps3.config.vision;
  const from = cfg.trunk.depth - 1;
  const config = newVilaConfig({ preset: 'micro', methods: ['ps3'], ps3Model: ps3Dir });
  const w = randomVilaWeights(config, ps3.config, ['ps3'], 5);
  const spec: CacheSpec = { method: 'ps3', seed: 31, images: 2, looks: 1, trunkFrom: from };
  const dir = cacheDir(path.join(tmp, 'cache'), ps3Dir, spec);
  const questions = await buildCache(ps3, spec, dir);
  const reader = new CacheReader(dir);
  const batch = questions.slice(0, 2).map((q) => ({ question: q, arrays: reader.image(q.image) }));
  const tok = newLmTokenizer();
  const ps3Keys = trunkTailKeys(ps3.weights, cfg.trunk, from);
  const lmKey = 'ps3.lm.norm.bias';
  const run = (): ReturnType<typeof batchLossAndGrads> => batchLossAndGrads(w, [lmKey], 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 1, ps3Trainable: ps3Keys, trunkFrom: from });
  const g = run();
  assert.deepEqual([...g.ps3Grads.keys()], ps3Keys);
  for (const [k, t] of g.ps3Grads) assert.ok(t.dataSync().every(Number.isFinite), k);
  assert.ok(tf.tidy(() => tf.norm(g.grads.get(lmKey)!).dataSync()[0]!) > 1e-6);
  // one coordinate of the tuned block's MLP: the loss's change over a small step
  const key = `vision_model.trunk.blocks.${from}.mlp.fc2.bias`;
  const analytic = g.ps3Grads.get(key)!.dataSync()[0]!;
  assert.ok(Math.abs(analytic) > 1e-6, 'the tuned block has a gradient');
  const base = Float32Array.from(ps3.weights.get(key).dataSync());
  const eps = 1e-3;
  const lossAt = (delta: number): number => {
    const v = Float32Array.from(base);
    v[0]! += delta;
    ps3.weights.replace(key, tf.tensor(v, ps3.weights.get(key).shape));
    return run().loss;
  };
  const numeric = (lossAt(eps) - lossAt(-eps)) / (2 * eps);
  assert.ok(Math.abs(numeric - analytic) < 0.03 * Math.abs(analytic) + 2e-4, `numeric ${numeric} vs analytic ${analytic}`);
  w.dispose();
  ps3.weights.dispose();
});
