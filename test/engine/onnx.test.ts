/**
 * src/engine/onnx/ on the fixture model: the protobuf writer's encodings; the ONNX trunk (both
 * ways of writing attention, one session or several) against the TensorFlow.js trunk — hidden
 * states, keys and values of the low-res pass, hidden states of a look attending to its cache;
 * the low-res cache kept on ONNX Runtime; the fixture's cases with the trunk on ONNX Runtime; no
 * TensorFlow.js tensors leak through it; the selector ConvNeXt of another shape against TensorFlow.js's.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Message } from '../../src/engine/onnx/protobuf.js';
import { OnnxTrunk, groupBlocks } from '../../src/engine/onnx/onnxTrunk.js';
import { OnnxConvnet } from '../../src/engine/onnx/onnxConvnet.js';
import { CONVNET_INPUT, shallowConvNet } from '../../src/model/convnet.js';
import { onnxProjectionRunner, onnxTrunkRunner, releaseOnnxTrunk } from '../../src/engine/onnx/perModel.js';
import { resolveTrunkEngine, useTrunkEngine } from '../../src/engine/trunkEngine.js';
import { isUserError } from '../../src/errors.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { runParity } from '../../src/eval/parity.js';
import { encodeImage, lowRes, type EncodeOutput } from '../../src/model/encoder.js';
import { mlp } from '../../src/model/layers.js';
import { selectionFeatures, selectionInput } from '../../src/model/selection.js';
import { loadModel, randomModel, type PS3Model } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { disposeKv, setDefaultTrunk, trunk, type TrunkOutput } from '../../src/model/vit.js';
import { initEngine, tf } from '../../src/tensor/engine.js';

// Compiled to dist/test/engine/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');

let model: PS3Model;

before(async () => {
  await initEngine();
  model = loadModel(fixtures);
});

after(async () => {
  await releaseOnnxTrunk(model.weights);
  model.weights.dispose();
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

function disposeTrunk(o: TrunkOutput): void {
  tf.dispose([...o.hiddenStates, ...o.kvCache.flatMap((kv) => [kv.k, kv.v])]);
}

test('protobuf varints: small, multi-byte and negative int64 values; nested lengths', () => {
  assert.deepEqual([...new Message().varint(1, 150).toBytes()], [0x08, 0x96, 0x01]);
  assert.deepEqual([...new Message().varint(2, 300).toBytes()], [0x10, 0xac, 0x02]);
  assert.deepEqual([...new Message().varint(1, -1).toBytes()], [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.deepEqual([...new Message().float(2, 1).toBytes()], [0x15, 0x00, 0x00, 0x80, 0x3f]);
  const inner = new Message().string(1, 'ab');
  assert.deepEqual([...new Message().message(3, inner).toBytes()], [0x1a, 0x04, 0x0a, 0x02, 0x61, 0x62]);
});

test('blocks are grouped under the byte budget, one block at least per group', () => {
  const cfg = model.config.vision.trunk;
  assert.deepEqual(groupBlocks(cfg, 1e12), [[0, cfg.depth]]);
  assert.deepEqual(groupBlocks(cfg, 1), [[0, 1], [1, 2], [2, 3], [3, 4]]);
});

for (const attention of ['fused', 'ops'] as const) {
  for (const maxModelBytes of [undefined, 1]) {
    const label = `${attention} attention, ${maxModelBytes ? 'one session per block' : 'one session'}`;
    test(`ONNX trunk matches the TensorFlow.js trunk (${label}): low-res hidden states and KV, look hidden states`, async () => {
      const cfg = model.config.vision.trunk;
      const onnx = await OnnxTrunk.create(model.weights, cfg, { attention, ...(maxModelBytes ? { maxModelBytes } : {}) });
      assert.equal(onnx.sessions, maxModelBytes ? cfg.depth : 1);
      const low = tf.randomNormal([2, 16, cfg.width], 0, 1, 'float32', 1);
      const high = tf.randomNormal([2, 11, cfg.width], 0, 1, 'float32', 2);
      const refLow = trunk(model.weights, cfg, low, { keepKv: true });
      const gotLow = await onnx.run(low, { keepKv: true });
      assert.equal(gotLow.hiddenStates.length, cfg.depth);
      for (let i = 0; i < cfg.depth; i++) {
        assert.ok(maxAbsDiff(refLow.hiddenStates[i]!, gotLow.hiddenStates[i]!) < 1e-4, `hidden ${i}`);
        assert.ok(maxAbsDiff(refLow.kvCache[i]!.k, gotLow.kvCache[i]!.k) < 1e-4, `key ${i}`);
        assert.ok(maxAbsDiff(refLow.kvCache[i]!.v, gotLow.kvCache[i]!.v) < 1e-4, `value ${i}`);
      }
      const refHigh = trunk(model.weights, cfg, high, { cache: refLow.kvCache });
      const gotAll = await onnx.run(high, { cache: gotLow.kvCache });
      const gotLast = await onnx.run(high, { cache: gotLow.kvCache, lastOnly: true });
      assert.equal(gotAll.hiddenStates.length, cfg.depth);
      assert.equal(gotLast.hiddenStates.length, 1);
      assert.equal(gotAll.kvCache.length, 0);
      for (let i = 0; i < cfg.depth; i++) assert.ok(maxAbsDiff(refHigh.hiddenStates[i]!, gotAll.hiddenStates[i]!) < 1e-4, `look hidden ${i}`);
      assert.ok(maxAbsDiff(refHigh.hiddenStates[cfg.depth - 1]!, gotLast.hiddenStates[0]!) < 1e-4);
      [refLow, gotLow, refHigh, gotAll, gotLast].forEach(disposeTrunk);
      tf.dispose([low, high]);
      await onnx.release();
    });
  }
}

test('the ONNX trunk keeps its low-res keys and values on ONNX Runtime: no tensors until read, a look takes them or TensorFlow.js\'s alike, disposeKv frees them', async () => {
  const cfg = model.config.vision.trunk;
  const onnx = await OnnxTrunk.create(model.weights, cfg, { maxModelBytes: 1 });
  const low = tf.randomNormal([1, 16, cfg.width], 0, 1, 'float32', 3);
  const high = tf.randomNormal([1, 11, cfg.width], 0, 1, 'float32', 4);
  const refLow = trunk(model.weights, cfg, low, { keepKv: true });
  const tensors = tf.memory().numTensors;
  const gotLow = await onnx.run(low, { keepKv: true });
  assert.equal(tf.memory().numTensors, tensors + cfg.depth, 'the hidden states only');
  const fromOrt = await onnx.run(high, { cache: gotLow.kvCache, lastOnly: true });
  const fromTf = await onnx.run(high, { cache: refLow.kvCache, lastOnly: true });
  const ref = trunk(model.weights, cfg, high, { cache: refLow.kvCache });
  assert.ok(maxAbsDiff(fromOrt.hiddenStates[0]!, ref.hiddenStates[cfg.depth - 1]!) < 1e-4);
  assert.ok(maxAbsDiff(fromTf.hiddenStates[0]!, ref.hiddenStates[cfg.depth - 1]!) < 1e-4);
  const k0 = gotLow.kvCache[0]!.k;
  assert.equal(gotLow.kvCache[0]!.k, k0, 'made once');
  assert.ok(maxAbsDiff(k0, refLow.kvCache[0]!.k) < 1e-4);
  const count = tf.memory().numTensors;
  disposeKv(gotLow.kvCache);
  assert.ok(k0.isDisposed);
  assert.equal(tf.memory().numTensors, count - 1);
  assert.throws(() => gotLow.kvCache[1]!.v, /after dispose/);
  await assert.rejects(onnx.run(high, { cache: gotLow.kvCache }), /after dispose/);
  [refLow, fromOrt, fromTf, ref].forEach(disposeTrunk);
  tf.dispose([low, high, ...gotLow.hiddenStates]);
  await onnx.release();
});

test('the ONNX trunk with hiddenLayers: only those blocks\' hidden states and the last, the others left empty, the same values', async () => {
  const cfg = model.config.vision.trunk;
  const onnx = await OnnxTrunk.create(model.weights, cfg, { maxModelBytes: 1 });
  const low = tf.randomNormal([1, 16, cfg.width], 0, 1, 'float32', 5);
  const all = await onnx.run(low, { keepKv: true });
  const tensors = tf.memory().numTensors;
  const some = await onnx.run(low, { keepKv: true, hiddenLayers: [0, 2] });
  assert.equal(tf.memory().numTensors, tensors + 3);
  assert.equal(some.hiddenStates.length, cfg.depth);
  assert.deepEqual(Object.keys(some.hiddenStates), ['0', '2', String(cfg.depth - 1)]);
  for (const i of [0, 2, cfg.depth - 1]) assert.equal(maxAbsDiff(all.hiddenStates[i]!, some.hiddenStates[i]!), 0);
  assert.equal(some.kvCache.length, cfg.depth);
  for (const o of [all, some]) {
    o.hiddenStates.forEach((h) => h.dispose());
    disposeKv(o.kvCache);
  }
  low.dispose();
  await onnx.release();
});

test('every fixture case passes with the trunk on ONNX Runtime (pre-training stays on TensorFlow.js)', async () => {
  const report = await runParity(fixtures, () => {}, 'onnx');
  const failures = report.cases.filter((c) => c.status !== 'pass').map((c) => `${c.name}: ${c.detail ?? c.checks.filter((k) => k.status === 'fail').map((k) => k.output).join(', ')}`);
  assert.deepEqual(failures, []);
  assert.equal(report.failed, 0);
  assert.equal(report.skipped, 0);
});

test('encodeImage with the ONNX trunk: same outputs as TensorFlow.js, no tensors left behind, last-only hidden states', async () => {
  const cases = openSafetensors(path.join(fixtures, 'cases.safetensors'));
  const sq = cases.read('image/square');
  const pixels = { data: sq.data as Float32Array, batch: 1, height: 560, width: 560 };
  const onnx = onnxTrunkRunner(model.weights, model.config.vision.trunk);
  const all = (o: EncodeOutput): tf.Tensor[] => [...new Set([o.lastHiddenState, ...o.hiddenStates, ...o.selectionProbs, ...o.bottomupSelectionProbs, o.pooledOutput])];
  const ref = await encodeImage(model.weights, model.config, pixels, { numLookClose: 2, trunk: null });
  tf.dispose(all(await encodeImage(model.weights, model.config, pixels, { numLookClose: 2, trunk: onnx }))); // sessions made
  const before = tf.memory().numTensors;
  for (const outputHiddenStates of [true, false]) {
    const got = await encodeImage(model.weights, model.config, pixels, { numLookClose: 2, trunk: onnx, outputHiddenStates });
    assert.equal(got.hiddenStates.length, outputHiddenStates ? model.config.vision.trunk.depth : 0);
    assert.ok(maxAbsDiff(ref.lastHiddenState, got.lastHiddenState) < 1e-4);
    tf.dispose(all(got));
    assert.equal(tf.memory().numTensors, before, `outputHiddenStates ${outputHiddenStates}`);
  }
  tf.dispose(all(ref));
});

test('the selector\'s feature projection on ONNX Runtime equals TensorFlow.js\'s, which equals the first D outputs of the whole projection', async () => {
  const cfg = model.config.vision;
  const sq = openSafetensors(path.join(fixtures, 'cases.safetensors')).read('image/square');
  const low = lowRes(model.weights, cfg, { data: sq.data as Float32Array, batch: 1, height: 560, width: 560 }, false);
  const input = selectionInput(cfg, low.hiddenStates);
  const full = mlp(model.weights, 'vision_model.selection_feature_proj', input); // [1, N0, D * scales]
  const D = cfg.trunk.width;
  assert.equal(full.shape[2], D * (cfg.scales.length - 1));
  const first = tf.slice(full, [0, 0, 0], [1, -1, D]);
  const tfjs = selectionFeatures(model.weights, cfg, low.hiddenStates);
  const ort = await onnxProjectionRunner(model.weights, cfg)(input);
  assert.ok(maxAbsDiff(first, tfjs) < 1e-5, `sliced projection differs by ${maxAbsDiff(first, tfjs)}`);
  assert.ok(maxAbsDiff(tfjs, ort) < 1e-4, `ONNX projection differs by ${maxAbsDiff(tfjs, ort)}`);
  tf.dispose([input, full, first, tfjs, ort, ...low.hiddenStates]);
});

test('the trunk engine comes from --trunk, else PS3_TRUNK, else onnx; an unknown one is a UserError', () => {
  const saved = process.env['PS3_TRUNK'];
  try {
    delete process.env['PS3_TRUNK'];
    assert.equal(resolveTrunkEngine(), 'onnx');
    process.env['PS3_TRUNK'] = 'tfjs';
    assert.equal(resolveTrunkEngine(), 'tfjs');
    assert.equal(resolveTrunkEngine('onnx'), 'onnx');
    assert.throws(() => resolveTrunkEngine('torch'), (e) => isUserError(e) && /unknown trunk engine "torch"/.test((e as Error).message));
  } finally {
    if (saved === undefined) delete process.env['PS3_TRUNK'];
    else process.env['PS3_TRUNK'] = saved;
  }
});

test('encodeImage without a trunk runs on the installed default engine; null forces TensorFlow.js; trainable weights stay on TensorFlow.js', async () => {
  const cases = openSafetensors(path.join(fixtures, 'cases.safetensors'));
  const sq = cases.read('image/square');
  const pixels = { data: sq.data as Float32Array, batch: 1, height: 560, width: 560 };
  const calls: string[] = [];
  setDefaultTrunk((w, cfg) => {
    const run = onnxTrunkRunner(w, cfg);
    return async (tokens, o) => {
      calls.push(o.cache ? 'look' : 'low-res');
      return run(tokens, o);
    };
  });
  try {
    const ref = await encodeImage(model.weights, model.config, pixels, { numLookClose: 1, trunk: null, outputHiddenStates: false });
    assert.deepEqual(calls, []);
    const got = await encodeImage(model.weights, model.config, pixels, { numLookClose: 1, outputHiddenStates: false });
    assert.deepEqual(calls, ['low-res', 'look']);
    assert.ok(maxAbsDiff(ref.lastHiddenState, got.lastHiddenState) < 1e-4);
    tf.dispose([ref.lastHiddenState, got.lastHiddenState, ref.pooledOutput, got.pooledOutput, ...ref.selectionProbs, ...got.selectionProbs]);
    const variables = model.weights.toVariables();
    const trained = await encodeImage(variables, model.config, pixels, { numLookClose: 1, outputHiddenStates: false });
    assert.deepEqual(calls, ['low-res', 'look']);
    tf.dispose([trained.lastHiddenState, trained.pooledOutput, ...trained.selectionProbs]);
    variables.dispose();
  } finally {
    useTrunkEngine('tfjs');
  }
});

test('trunk sessions without weight prepacking (the default) give the same outputs as with it', async () => {
  const cfg = model.config.vision.trunk;
  const plain = await OnnxTrunk.create(model.weights, cfg);
  const packed = await OnnxTrunk.create(model.weights, cfg, { prepack: true });
  try {
    const low = tf.randomNormal([2, 16, cfg.width], 0, 1, 'float32', 3);
    const high = tf.randomNormal([2, 11, cfg.width], 0, 1, 'float32', 4);
    const a = await plain.run(low, { keepKv: true });
    const b = await packed.run(low, { keepKv: true });
    const aHigh = await plain.run(high, { cache: a.kvCache });
    const bHigh = await packed.run(high, { cache: b.kvCache });
    for (let i = 0; i < cfg.depth; i++) {
      assert.equal(maxAbsDiff(a.hiddenStates[i]!, b.hiddenStates[i]!), 0, `hidden ${i}`);
      assert.equal(maxAbsDiff(a.kvCache[i]!.k, b.kvCache[i]!.k), 0, `key ${i}`);
      assert.equal(maxAbsDiff(aHigh.hiddenStates[i]!, bHigh.hiddenStates[i]!), 0, `look hidden ${i}`);
    }
    [a, b, aHigh, bHigh].forEach(disposeTrunk);
    tf.dispose([low, high]);
  } finally {
    await plain.release();
    await packed.release();
  }
});

test('a weight replaced (an optimizer step) lets the ONNX sessions go: the next run reads the new values', async () => {
  const m = randomModel(presetConfig('micro'), 5);
  const cfg = m.config.vision.trunk;
  const run = onnxTrunkRunner(m.weights, cfg);
  const x = tf.randomNormal([1, 6, cfg.width], 0, 1, 'float32', 7);
  const last = async (): Promise<tf.Tensor> => {
    const o = await run(x, {});
    const h = o.hiddenStates[o.hiddenStates.length - 1]!;
    const kept = tf.clone(h);
    disposeTrunk(o);
    return kept;
  };
  const before = await last();
  const key = 'vision_model.trunk.blocks.0.mlp.fc2.weight';
  m.weights.replace(key, tf.mul(m.weights.get(key), 3));
  const after = await last();
  const reference = trunk(m.weights, cfg, x);
  assert.ok(maxAbsDiff(before, after) > 1e-3, 'the step changed what the trunk computes');
  assert.ok(maxAbsDiff(after, reference.hiddenStates[reference.hiddenStates.length - 1]!) < 1e-4, 'ONNX Runtime reads the new weights');
  disposeTrunk(reference);
  tf.dispose([x, before, after]);
  await releaseOnnxTrunk(m.weights);
  m.weights.dispose();
});

test('ONNX Runtime sessions are built from the weights\' source: the blocks never become TensorFlow.js tensors', async () => {
  const fresh = loadModel(fixtures);
  const before = tf.memory().numTensors;
  const onnx = await OnnxTrunk.create(fresh.weights, fresh.config.vision.trunk);
  try {
    assert.equal(tf.memory().numTensors, before);
    const x = tf.randomNormal([1, 5, fresh.config.vision.trunk.width]);
    const got = await onnx.run(x, { lastOnly: true });
    const ref = trunk(model.weights, model.config.vision.trunk, x);
    assert.ok(maxAbsDiff(got.hiddenStates[got.hiddenStates.length - 1]!, ref.hiddenStates[ref.hiddenStates.length - 1]!) < 1e-4);
    tf.dispose([x, ...got.hiddenStates, ...ref.hiddenStates]);
  } finally {
    await onnx.release();
    fresh.weights.dispose();
  }
});

test('pixels in shared memory (a large image\'s, made on two threads) run on ONNX Runtime: a 1512 top scale feeds them to the convnet as they are', async () => {
  useTrunkEngine('onnx');
  const small = randomModel(presetConfig('tiny-1.5k'), 5);
  try {
    const S = small.config.vision.scales.at(-1)!;
    assert.equal(S, 1512);
    const own = new Float32Array(3 * S * S).map((_, i) => Math.sin(i * 0.001));
    const shared = new Float32Array(new SharedArrayBuffer(own.byteLength));
    shared.set(own);
    const outs: EncodeOutput[] = [];
    for (const data of [own, shared]) outs.push(await encodeImage(small.weights, small.config, { data, batch: 1, height: S, width: S }, { numLookClose: 1, outputHiddenStates: false }));
    assert.equal(maxAbsDiff(outs[0]!.lastHiddenState, outs[1]!.lastHiddenState), 0);
    assert.deepEqual(outs[0]!.selectionMaps.map((m) => Array.from(m.data)), outs[1]!.selectionMaps.map((m) => Array.from(m.data)));
    for (const o of outs) tf.dispose([o.lastHiddenState, o.pooledOutput, ...o.selectionProbs, ...o.bottomupSelectionProbs]);
  } finally {
    await releaseOnnxTrunk(small.weights);
    small.weights.dispose();
    useTrunkEngine('tfjs');
  }
});

test('the selector ConvNeXt on ONNX Runtime equals TensorFlow.js\'s for a finer module too (tiny-fine-select: 14 px stem, 2 blocks, 108 x 108 map)', async () => {
  const fine = randomModel(presetConfig('tiny-fine-select'), 4);
  const cfg = fine.config.vision;
  const image = Float32Array.from({ length: 3 * CONVNET_INPUT * CONVNET_INPUT }, (_, i) => Math.sin(i * 0.013) * 0.8);
  const ref = shallowConvNet(fine.weights, cfg, image, 1);
  const onnx = await OnnxConvnet.create(fine.weights, cfg);
  const got = await onnx.run(image, 1);
  assert.deepEqual(ref.shape, [1, 108, 108, 64]);
  assert.ok(maxAbsDiff(ref, got) < 1e-4, `max diff ${maxAbsDiff(ref, got)}`);
  tf.dispose([ref, got]);
  await onnx.release();
  fine.weights.dispose();
});
