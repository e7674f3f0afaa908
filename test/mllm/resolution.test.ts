/**
 * A tiling method's training resolution (config `resolutions`): `train-mllm` records it, answering
 * tiles at it unless told otherwise, `export --add` carries it, and the field is validated at the
 * edge. With the micro PS3 (scales 56-224), AnyRes at 224 reads 17 views x 4 merged tokens = 68,
 * at 112 it reads 5 x 4 = 20.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { isUserError } from '../../src/errors.js';
import { parseVilaConfig } from '../../src/mllm/config.js';
import { disposeVilaHd, loadVilaHd, newVilaConfig } from '../../src/mllm/model.js';
import { answerQuestion } from '../../src/mllm/answer.js';
import { exportVilaHd } from '../../src/mllm/export.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-resolution-'));
const ps3 = path.join(tmp, 'ps3');
const options = (out: string, extra: Partial<TrainVilaOptions> = {}): TrainVilaOptions => ({
  ps3, out, method: 'anyres', preset: 'micro', steps: 1, batch: 2, lr: 1e-3, warmup: 0, clip: 1, seed: 2, dataSeed: 41, images: 2,
  looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'), threads: 1, ...extra,
});

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 7);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function pixels(S: number): { data: Float32Array; batch: number; height: number; width: number } {
  const data = new Float32Array(3 * S * S);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return { data, batch: 1, height: S, width: S };
}

const resolutionsOf = (dir: string): unknown => (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { resolutions?: unknown }).resolutions;

test('train-mllm records a tiling method\'s resolution; answering tiles at it by default, at another when asked', async () => {
  const out = path.join(tmp, 'at-112');
  await trainVilaHd(options(out, { resolution: 112 }));
  const ckpt = path.join(out, 'checkpoint');
  assert.deepEqual(resolutionsOf(ckpt), { anyres: 112 });
  const model = loadVilaHd(ckpt);
  try {
    const image = pixels(224);
    const byDefault = await answerQuestion(model, 'anyres', image, 'What colour is the sign?', ['red', 'green']);
    const at112 = await answerQuestion(model, 'anyres', image, 'What colour is the sign?', ['red', 'green'], { resolution: 112 });
    const at224 = await answerQuestion(model, 'anyres', image, 'What colour is the sign?', ['red', 'green'], { resolution: 224 });
    assert.equal(byDefault.visualTokens, 20);
    assert.equal(at224.visualTokens, 68);
    assert.deepEqual(byDefault.scores, at112.scores);
    for (const a of [byDefault, at112, at224]) a.visual?.merged.dispose();
    // an image smaller than the training resolution is tiled at its own size: one tile and the global view
    const small = await answerQuestion(model, 'anyres', pixels(56), 'What colour is the sign?', ['red', 'green']);
    assert.equal(small.visualTokens, 8);
    small.visual?.merged.dispose();
  } finally {
    disposeVilaHd(model);
  }

  // without --resolution: the top scale; a method that does not tile records none; export --add keeps both
  const top = path.join(tmp, 'at-top');
  await trainVilaHd(options(top, { method: 's2' }));
  assert.deepEqual(resolutionsOf(path.join(top, 'checkpoint')), { s2: 224 });
  const low = path.join(tmp, 'lowres');
  await trainVilaHd(options(low, { method: 'lowres' }));
  assert.equal(resolutionsOf(path.join(low, 'checkpoint')), undefined);
  const merged = path.join(tmp, 'merged');
  exportVilaHd(path.join(low, 'checkpoint'), merged, 'F32', [ckpt, path.join(top, 'checkpoint')]);
  assert.deepEqual(resolutionsOf(merged), { anyres: 112, s2: 224 });
});

test('resolutions is validated at the edge: tiling methods of the folder, positive integers', () => {
  const base = newVilaConfig({ preset: 'micro', methods: ['lowres', 's2'], ps3Model: '../ps3' }).raw;
  const cases: Array<[unknown, RegExp]> = [
    [{ lowres: 756 }, /^c\.json: field resolutions\.lowres: only anyres and s2 tile at a resolution$/],
    [{ anyres: 756 }, /^c\.json: field resolutions\.anyres: "anyres" is not a method of this folder \(it has lowres, s2\)$/],
    [{ s2: 0 }, /^c\.json: field resolutions\.s2: must be a positive integer$/],
    [{ s2: 75.5 }, /field resolutions\.s2: must be a positive integer/],
    [{ s2: '1512' }, /field resolutions\.s2: must be a positive integer/],
  ];
  for (const [resolutions, pattern] of cases) {
    assert.throws(() => parseVilaConfig({ ...base, resolutions }, 'c.json'), (e: unknown) => isUserError(e) && pattern.test(e.message), String(pattern));
  }
  assert.equal(parseVilaConfig({ ...base, resolutions: { s2: 1512 } }, 'c.json').resolutions.s2, 1512);
});
