/**
 * src/model/encoder.ts (`encodeImage`) and src/model/text.ts (`encodeText`) on the fixture
 * model: output layout, no tensor leaks across calls, bad options refused as UserErrors
 * before anything is allocated, the chosen cells' position embeddings, the stage profile.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError } from '../../src/errors.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { encodeImage, STAGE_PARTS, type EncodeOptions, type EncodeOutput, type Pixels, type StageTimings } from '../../src/model/encoder.js';
import { positionEmbedding, positionResidual, selectedPositionEmbedding } from '../../src/model/vit.js';
import { Weights } from '../../src/model/weights.js';
import { loadModel, type PS3Model } from '../../src/model/load.js';
import { boxGroundTruthPerScale } from '../../src/model/selection.js';
import { encodeText, type TextOutput } from '../../src/model/text.js';
import { initEngine, tf } from '../../src/tensor/engine.js';

// Compiled to dist/test/model/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');

let model: PS3Model;
let square: Pixels;
let nonsquare: Pixels;
let textIds: Int32Array;

before(async () => {
  await initEngine();
  model = loadModel(fixtures);
  const cases = openSafetensors(path.join(fixtures, 'cases.safetensors'));
  const sq = cases.read('image/square'); // [1, 3, 560, 560]
  square = { data: sq.data as Float32Array, batch: 1, height: 560, width: 560 };
  const ns = cases.read('image/nonsquare'); // [1, 3, 420, 560]
  nonsquare = { data: ns.data as Float32Array, batch: 1, height: 420, width: 560 };
  textIds = Int32Array.from(cases.read('text/in/text').data); // [3, 8]
  // warm up: the first call caches transposed weights (kept for the model's lifetime)
  disposeOutput(await encodeImage(model.weights, model.config, square, { numLookClose: 2 }));
  disposeText(encodeText(model.weights, model.config.text, textIds, 3));
});

after(() => model.weights.dispose());

/** Every tensor of an output, once (selectionProbs may be bottomupSelectionProbs; lastHiddenState is in hiddenStates). */
function outputTensors(o: EncodeOutput): tf.Tensor[] {
  return [...new Set([o.lastHiddenState, ...o.hiddenStates, ...o.selectionProbs, ...o.bottomupSelectionProbs, ...(o.topdownSelectionProbs ?? []), o.pooledOutput])];
}

function disposeOutput(o: EncodeOutput): void {
  tf.dispose(outputTensors(o));
}

function disposeText(o: TextOutput): void {
  tf.dispose([o.pooledOutput, o.prompt]);
}

/** Run `call` twice, disposing its outputs, and check the tensor count is back where it was. */
async function noLeak(label: string, call: () => Promise<EncodeOutput>, check?: (o: EncodeOutput) => void): Promise<void> {
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) {
    const out = await call();
    check?.(out);
    assert.ok(outputTensors(out).every((t) => !t.isDisposed), `${label}: an output tensor is already disposed`);
    disposeOutput(out);
  }
  assert.equal(tf.memory().numTensors, before, `${label}: ${tf.memory().numTensors - before} tensors leaked over two calls`);
}

// ---------------------------------------------------------------------------------------------
// Output layout and leaks

test('bottom-up, 2 looks: output shapes, and two calls leave no tensors behind', async () => {
  await noLeak('bottom-up 2 looks', () => encodeImage(model.weights, model.config, square, { numLookClose: 2 }), (o) => {
    // 4 x 4 low-res tokens, then 2 looks x 96 high-res tokens
    assert.deepEqual(o.lastHiddenState.shape, [1, 16 + 192, 32]);
    assert.equal(o.hiddenStates.length, 4);
    for (const h of o.hiddenStates) assert.deepEqual(h.shape, [1, 208, 32]);
    assert.equal(o.hiddenStates[3], o.lastHiddenState);
    assert.deepEqual(o.selectionProbs.map((p) => p.shape), [[1, 8, 8], [1, 16, 16], [1, 40, 40]]);
    assert.equal(o.topdownSelectionProbs, null);
    assert.deepEqual(o.pooledOutput.shape, [1, 32]);
    // the union of two disjoint looks of [3, 12, 81]
    assert.deepEqual(o.selectionMaps.map((m) => [m.height, m.width, m.data.reduce((a, c) => a + c, 0)]), [[8, 8, 6], [16, 16, 24], [40, 40, 162]]);
  });
});

test('numLookClose: 0 returns the low-res tokens only, and leaks nothing', async () => {
  await noLeak('low-res only', () => encodeImage(model.weights, model.config, square, { numLookClose: 0 }), (o) => {
    assert.deepEqual(o.lastHiddenState.shape, [1, 16, 32]);
    assert.equal(o.hiddenStates.length, 4);
    assert.ok(o.selectionMaps.every((m) => m.data.every((v) => v === 0)));
  });
  await noLeak('zero tokens', () => encodeImage(model.weights, model.config, square, { numTokenLookClose: 0 }), (o) => {
    assert.deepEqual(o.lastHiddenState.shape, [1, 16, 32]);
  });
  await noLeak('low-res only, no hidden states', () => encodeImage(model.weights, model.config, square, { numLookClose: 0, outputHiddenStates: false }), (o) => {
    assert.equal(o.hiddenStates.length, 0);
  });
});

test('top-down with smoothing, token budgets, ground truth and no hidden states leak nothing either', async () => {
  const prompt = tf.tidy(() => encodeText(model.weights, model.config.text, textIds.subarray(0, 8), 1).prompt);
  try {
    await noLeak('top-down + smooth', () => encodeImage(model.weights, model.config, square, { prompt, numLookClose: 1, smoothSelectionProb: true }), (o) => {
      assert.ok(o.topdownSelectionProbs);
      assert.deepEqual(o.lastHiddenState.shape, [1, 112, 32]);
    });
    assert.ok(!prompt.isDisposed, "the caller's prompt is not disposed");
    await noLeak('tokens', () => encodeImage(model.weights, model.config, square, { numTokenLookClose: 144, outputHiddenStates: false }), (o) => {
      assert.deepEqual(o.lastHiddenState.shape, [1, 160, 32]);
      assert.equal(o.hiddenStates.length, 0);
    });
    const gt = new Float32Array(560 * 560);
    for (let y = 100; y < 200; y++) for (let x = 300; x < 420; x++) gt[y * 560 + x] = 1;
    await noLeak('ground truth', () => encodeImage(model.weights, model.config, square, { prompt, gtSelectionMaps: gt, numLookClose: 1 }));
    // the same ground truth already on each scale's grid: the same look, token for token
    const fromMap = await encodeImage(model.weights, model.config, square, { prompt, gtSelectionMaps: gt, numLookClose: 1, outputHiddenStates: false });
    const fromBox = await encodeImage(model.weights, model.config, square, { prompt, gtPerScale: boxGroundTruthPerScale(model.config.vision, [300, 100, 419, 199], 560), numLookClose: 1, outputHiddenStates: false });
    assert.deepEqual(fromBox.selectionMaps, fromMap.selectionMaps);
    assert.deepEqual(await fromBox.lastHiddenState.data(), await fromMap.lastHiddenState.data());
    for (const o of [fromMap, fromBox]) tf.dispose([o.lastHiddenState, o.pooledOutput, ...o.selectionProbs, ...o.bottomupSelectionProbs, ...(o.topdownSelectionProbs ?? [])]);
    await noLeak('first n scales', () => encodeImage(model.weights, model.config, square, { onlySelectFirstNScale: 2 }), (o) => {
      assert.deepEqual(o.selectionMaps.map((m) => m.data.reduce((a, c) => a + c, 0)), [19, 76, 1]);
    });
    await noLeak('non-square', () => encodeImage(model.weights, model.config, nonsquare, { numLookClose: 2 }), (o) => {
      assert.deepEqual(o.selectionMaps.map((m) => [m.height, m.width]), [[6, 8], [12, 16], [30, 40]]);
      assert.deepEqual(o.lastHiddenState.shape, [1, 208, 32]);
    });
  } finally {
    prompt.dispose();
  }
});

test('encodeText: output shapes, and two calls leave no tensors behind', () => {
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) {
    const out = encodeText(model.weights, model.config.text, textIds, 3);
    assert.deepEqual(out.pooledOutput.shape, [3, 32]);
    assert.deepEqual(out.prompt.shape, [3, 32]);
    disposeText(out);
  }
  assert.equal(tf.memory().numTensors, before);
});

test('encodeText pooling: argmax takes the highest id\'s position (the first or last slot when it is there)', () => {
  const cfg = model.config.text;
  const top = cfg.vocabSize - 1;
  // row 0: the highest id last; row 1: the highest id first
  const ids = Int32Array.from([5, 9, 3, 4, 7, top, top, 3, 9, 4, 2, 8]);
  const pooled = (poolType: 'first' | 'last' | 'argmax'): number[][] => {
    const out = encodeText(model.weights, { ...cfg, poolType }, ids, 2);
    const values = out.pooledOutput.arraySync() as number[][];
    disposeText(out);
    return values;
  };
  const [argmax, first, last] = [pooled('argmax'), pooled('first'), pooled('last')];
  assert.deepEqual(argmax[0], last[0]);
  assert.deepEqual(argmax[1], first[1]);
  assert.notDeepEqual(first[0], last[0]);
});

// ---------------------------------------------------------------------------------------------
// Bad options

async function rejectsUserError(label: string, call: () => Promise<unknown>, mention?: string): Promise<void> {
  const before = tf.memory().numTensors;
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isUserError(e), `${label}: expected a UserError, got ${e instanceof Error ? e.stack : String(e)}`);
    if (mention) assert.ok((e as Error).message.includes(mention), `${label}: message ${JSON.stringify((e as Error).message)} should mention ${mention}`);
    return true;
  });
  assert.equal(tf.memory().numTensors, before, `${label}: a refused call must not leave tensors behind`);
}

test('bad look options are refused as UserErrors, naming the option', async () => {
  const enc = (o: EncodeOptions) => () => encodeImage(model.weights, model.config, square, o);
  await rejectsUserError('negative looks', enc({ numLookClose: -1 }), 'numLookClose');
  await rejectsUserError('fractional looks', enc({ numLookClose: 1.5 }), 'numLookClose');
  await rejectsUserError('NaN looks', enc({ numLookClose: NaN }), 'numLookClose');
  await rejectsUserError('a string', enc({ numLookClose: 'two' as unknown as number }), 'numLookClose');
  await rejectsUserError('negative tokens', enc({ numTokenLookClose: -5 }), 'numTokenLookClose');
  await rejectsUserError('fractional tokens', enc({ numTokenLookClose: 10.5 }), 'numTokenLookClose');
  await rejectsUserError('both', enc({ numLookClose: 1, numTokenLookClose: 96 }), 'numTokenLookClose');
  await rejectsUserError('first n = 0', enc({ onlySelectFirstNScale: 0 }), 'onlySelectFirstNScale');
  await rejectsUserError('first n > scales', enc({ onlySelectFirstNScale: 4 }), 'onlySelectFirstNScale');
  await rejectsUserError('first n fractional', enc({ onlySelectFirstNScale: 1.5 }), 'onlySelectFirstNScale');
  await rejectsUserError('first n list of the wrong length', enc({ onlySelectFirstNScale: [2, 2] }), 'onlySelectFirstNScale');
});

test('a prompt of the wrong shape is refused', async () => {
  for (const shape of [[1, 16], [32], [2, 32], [1, 1, 32]]) {
    const prompt = tf.zeros(shape);
    try {
      await rejectsUserError(`prompt [${shape}]`, () => encodeImage(model.weights, model.config, square, { prompt }), 'prompt');
    } finally {
      prompt.dispose();
    }
  }
});

test('pixels of the wrong length, or smaller than a patch, are refused', async () => {
  const enc = (p: Pixels) => () => encodeImage(model.weights, model.config, p, {});
  await rejectsUserError('short data', enc({ ...square, data: square.data.subarray(1) }), 'pixels');
  await rejectsUserError('batch 2 of one image', enc({ ...square, batch: 2 }), 'pixels');
  await rejectsUserError('wrong height', enc({ ...square, height: 559 }), 'pixels');
  await rejectsUserError('tiny image', enc({ data: new Float32Array(3 * 10 * 10), batch: 1, height: 10, width: 10 }), 'pixels');
});

test('ground-truth maps of the wrong size are refused before anything is allocated', async () => {
  await rejectsUserError('gt size', () => encodeImage(model.weights, model.config, square, { gtSelectionMaps: new Float32Array(10) }), 'gtSelectionMaps');
  const perScale = boxGroundTruthPerScale(model.config.vision, [300, 100, 419, 199], 560);
  await rejectsUserError('gt per scale size', () => encodeImage(model.weights, model.config, square, { gtPerScale: [perScale[0]!, perScale[1]!] }), 'gtPerScale');
  await rejectsUserError('gt twice', () => encodeImage(model.weights, model.config, square, { gtPerScale: perScale, gtSelectionMaps: new Float32Array(560 * 560) }), 'not both');
});

test('onlySelectFirstNScale: 1 on a 3-high-res-scale model is refused as a UserError (or handled), never an internal error', async () => {
  // The reference arithmetic gives budgets [96, 1, -1] here (see selection.test.ts); a negative
  // top-k is not something the user can act on, so it must not surface as a RangeError.
  const before = tf.memory().numTensors;
  let out: EncodeOutput | undefined;
  try {
    out = await encodeImage(model.weights, model.config, square, { onlySelectFirstNScale: 1 });
  } catch (e) {
    assert.ok(isUserError(e), `expected a UserError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  if (out) {
    const counts = out.selectionMaps.map((m) => m.data.reduce((a, c) => a + c, 0));
    assert.ok(counts.every((n) => n >= 0));
    assert.equal(out.lastHiddenState.shape[1], 16 + counts.reduce((a, c) => a + c, 0));
    disposeOutput(out);
  }
  assert.equal(tf.memory().numTensors, before);
});

test('encodeText refuses ids that do not make [B, N <= context] or fall outside the vocabulary', () => {
  const before = tf.memory().numTensors;
  const refuses = (ids: Int32Array, batch: number): void => assert.throws(() => encodeText(model.weights, model.config.text, ids, batch), (e: unknown) => isUserError(e) && (e as Error).message.startsWith('text:'));
  refuses(new Int32Array(7), 2); // 3.5 per row
  refuses(new Int32Array(9), 1); // longer than the context (8)
  refuses(new Int32Array(0), 1);
  refuses(Int32Array.from([1, 2, 64]), 1); // vocabulary is 64
  refuses(Int32Array.from([1, -1]), 1);
  assert.equal(tf.memory().numTensors, before);
});

// ---------------------------------------------------------------------------------------------
// Pieces a look is made of, and the stage profile

test('selectedPositionEmbedding equals the chosen rows of the whole resampled grid (plus the scale\'s residual)', () => {
  const w = model.weights;
  // scale 1's grid is 16 x 16 (its residual's size); a 12 x 16 crop of it, larger than the stored 8 x 8
  const [gh, gw] = [12, 16];
  const ids = Int32Array.from([0, 1, 15, 16, 77, 100, 191]);
  const residual = model.config.vision.separatePosEmb ? 1 : undefined;
  const want = tf.tidy(() => {
    const whole = residual === undefined ? positionEmbedding(w, gh, gw) : tf.add(positionEmbedding(w, gh, gw), positionResidual(w, residual, gh, gw));
    return tf.gather(whole, tf.tensor1d(ids, 'int32'));
  });
  // frozen weights sum on plain arrays, trainable ones through TensorFlow.js (for the gradient)
  const trainable = new Weights(new Map([...w.keys()].filter((k) => k.includes('pos_emb')).map((k) => [k, tf.variable(w.get(k))])), true);
  for (const weights of [w, trainable]) {
    const got = selectedPositionEmbedding(weights, gh, gw, ids, residual);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!);
    assert.ok(diff < 1e-5, `${weights.trainable ? 'trainable' : 'frozen'}: differs by ${diff}`);
    got.dispose();
  }
  trainable.dispose();
  want.dispose();
});

test('a profiled encode times every part it runs, and the parts fit in the encode\'s time', async () => {
  const timings: StageTimings = {};
  const t0 = performance.now();
  disposeOutput(await encodeImage(model.weights, model.config, square, { numLookClose: 2, timings }));
  const wall = performance.now() - t0;
  const parts = timings.parts ?? {};
  const expected = STAGE_PARTS.filter((p) => p !== 'convnet' || model.config.vision.highresSelectionFeature);
  assert.deepEqual(Object.keys(parts).sort(), [...expected].sort());
  let sum = 0;
  for (const p of expected) {
    assert.ok(parts[p]!.ms >= 0 && parts[p]!.cpuMs >= 0, `${p}: ${JSON.stringify(parts[p])}`);
    sum += parts[p]!.ms;
  }
  assert.ok(sum <= wall + 1, `parts sum to ${sum} ms, the encode took ${wall} ms`);
});
