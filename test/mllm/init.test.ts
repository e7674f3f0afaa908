/**
 * `train-mllm --init DIR [--init-method M]`: a new run starts from another folder's trained LM,
 * projector and (ps3 from ps3) prompt head. The copied keys hold the source's values exactly, a
 * longer context keeps the source's positions in its first rows, a run's first step moves its
 * weights by about one AdamW step from the source's (not from random ones), and what cannot be
 * copied is refused in one line before any work.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { readConfigFile } from '../../src/model/load.js';
import { newVilaConfig, randomVilaWeights } from '../../src/mllm/model.js';
import { initFrom } from '../../src/mllm/init.js';
import { methodParams, positionsKey } from '../../src/mllm/params.js';
import { parseVilaConfig, readVilaConfig } from '../../src/mllm/config.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { exportVilaHd } from '../../src/mllm/export.js';
import { assertBadInput, writeMicroPs3, writeMicroVila } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-init-'));
const ps3 = path.join(tmp, 'ps3');
const source = path.join(tmp, 'source');
const options = (out: string, extra: Partial<TrainVilaOptions> = {}): TrainVilaOptions => ({
  ps3, out, method: 'lowres', preset: 'micro', steps: 1, batch: 2, lr: 1e-3, warmup: 0, clip: 1, seed: 9, dataSeed: 31, images: 2,
  looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false, cacheRoot: path.join(tmp, 'cache'), threads: 1, ...extra,
});

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 4);
  await writeMicroVila(source, ps3, ['ps3', 'lowres'], 17);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const stored = (dir: string): Map<string, Float32Array> => new Map([...readSafetensors(path.join(dir, 'model.safetensors'))].map(([k, a]) => [k, a.data as Float32Array]));

test('initFrom copies the source method\'s weights under the new method\'s keys; a longer context keeps the source positions first', () => {
  const ps3Config = readConfigFile(path.join(ps3, 'config.json'));
  const config = newVilaConfig({ preset: 'micro', methods: ['anyres'], ps3Model: '.', contextLength: 512 });
  const fresh = new Map(randomVilaWeights(config, ps3Config, ['anyres'], 3).entries());
  const before = new Map([...fresh].map(([k, t]) => [k, (t.dataSync() as Float32Array).slice()]));
  const { copied } = initFrom({ dir: source, method: 'lowres' }, 'anyres', config, ps3Config, fresh);
  const src = stored(source);
  assert.equal(copied, methodParams('anyres', config, ps3Config).size);
  for (const [k, t] of fresh) {
    const got = t.dataSync() as Float32Array;
    const from = src.get(`lowres.${k.slice('anyres.'.length)}`)!;
    if (k === positionsKey('anyres')) {
      // micro: context 256 in the source, 512 here; width W
      const W = t.shape[1]!;
      assert.equal(t.shape[0], 512);
      assert.equal(from.length, 256 * W);
      assert.deepEqual(got.subarray(0, from.length), from, 'the source positions first');
      assert.deepEqual(got.subarray(from.length), before.get(k)!.subarray(from.length), 'the rest as initialised');
    } else assert.deepEqual(got, from, k);
  }
  tf.dispose([...fresh.values()]);

  // a shorter context takes the source's first positions
  const short = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: '.', contextLength: 100 });
  const freshShort = new Map(randomVilaWeights(short, ps3Config, ['lowres'], 3).entries());
  initFrom({ dir: source, method: 'lowres' }, 'lowres', short, ps3Config, freshShort);
  const pos = freshShort.get(positionsKey('lowres'))!;
  assert.deepEqual(pos.dataSync(), src.get(positionsKey('lowres'))!.subarray(0, 100 * pos.shape[1]!));
  tf.dispose([...freshShort.values()]);
});

test('a ps3 LM initialised from a lowres one keeps its own prompt head; s2 (wider tokens) is refused by key and shape', () => {
  const ps3Config = readConfigFile(path.join(ps3, 'config.json'));
  const config = newVilaConfig({ preset: 'micro', methods: ['ps3'], ps3Model: '.' });
  const fresh = new Map(randomVilaWeights(config, ps3Config, ['ps3'], 3).entries());
  const head = (fresh.get('ps3.prompt_head.fc1.weight')!.dataSync() as Float32Array).slice();
  initFrom({ dir: source, method: 'lowres' }, 'ps3', config, ps3Config, fresh);
  assert.deepEqual(fresh.get('ps3.prompt_head.fc1.weight')!.dataSync(), head);
  assert.deepEqual(fresh.get('ps3.lm.blocks.0.attn.qkv.weight')!.dataSync(), stored(source).get('lowres.lm.blocks.0.attn.qkv.weight'));
  tf.dispose([...fresh.values()]);

  const s2 = newVilaConfig({ preset: 'micro', methods: ['s2'], ps3Model: '.' });
  const freshS2 = new Map(randomVilaWeights(s2, ps3Config, ['s2'], 3).entries());
  assert.throws(() => initFrom({ dir: source, method: 'lowres' }, 's2', s2, ps3Config, freshS2), (e: unknown) => isUserError(e) && /key "lowres\.projector\.pre_norm\.weight" has shape \[\d+\], the s2 LM needs \[\d+\]/.test((e as Error).message));
  tf.dispose([...freshS2.values()]);
});

test('projector.hidden: the width between the projector\'s Linears, the LM width by default; --init refuses another', async () => {
  const ps3Config = readConfigFile(path.join(ps3, 'config.json'));
  const micro = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: '.' });
  const wide = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: '.', projectorHidden: 48 });
  const W = micro.lm.width;
  const din = 4 * ps3Config.vision.trunk.width;
  assert.equal(micro.projectorHidden, W);
  assert.deepEqual(methodParams('lowres', wide, ps3Config).get('lowres.projector.fc1.weight'), [48, din]);
  assert.deepEqual(methodParams('lowres', wide, ps3Config).get('lowres.projector.fc2.weight'), [W, 48]);
  // a config written before the field existed reads as the LM width
  const { hidden: _hidden, ...projector } = micro.raw['projector'] as { hidden: number };
  assert.equal(parseVilaConfig({ ...micro.raw, projector }, 'old').projectorHidden, W);
  assert.throws(() => parseVilaConfig({ ...micro.raw, projector: { merge: 2, hidden: 0 } }, 'x/config.json'), (e: unknown) => isUserError(e) && /x\/config\.json: field projector\.hidden: /.test((e as Error).message));

  const fresh = new Map(randomVilaWeights(wide, ps3Config, ['lowres'], 3).entries());
  assert.throws(() => initFrom({ dir: source, method: 'lowres' }, 'lowres', wide, ps3Config, fresh), (e: unknown) => isUserError(e) && new RegExp(`field projector\\.hidden of .*config\\.json is ${W}, the LM trained has 48 \\(--projector-hidden\\)`).test((e as Error).message));
  tf.dispose([...fresh.values()]);

  // a new run's folder has the projector it was given, and trains and loads with it
  const out = path.join(tmp, 'wide-projector');
  await trainVilaHd(options(out, { projectorHidden: 40 }));
  const got = stored(path.join(out, 'checkpoint'));
  assert.equal(got.get('lowres.projector.fc1.weight')!.length, 40 * din);
  assert.equal(got.get('lowres.projector.fc2.weight')!.length, W * 40);
  assert.equal(readVilaConfig(path.join(out, 'checkpoint', 'config.json')).projectorHidden, 40);
  // a method joining the folder gets the folder's projector; another width is refused
  await assert.rejects(trainVilaHd(options(out, { method: 'ps3', projectorHidden: 64 })), (e: unknown) => isUserError(e) && /--projector-hidden 64: the folder .* has projector\.hidden 40 \(give 40 or leave it out\)/.test((e as Error).message));
  // and a folder of another projector does not join this one at export
  assert.throws(() => exportVilaHd(source, path.join(tmp, 'joined-wide'), 'F32', [path.join(out, 'checkpoint')], true), (e: unknown) => isUserError(e) && new RegExp(`--add .*wide-projector.checkpoint: its projector\\.hidden 40 differs from .*source's ${W}`).test((e as Error).message));
  assert.equal(fs.existsSync(path.join(tmp, 'joined-wide')), false, 'nothing written');
});

test('the small preset: wider and deeper than tiny; each preset\'s projector as wide as its LM', () => {
  const ps3Config = readConfigFile(path.join(ps3, 'config.json'));
  const tiny = newVilaConfig({ preset: 'tiny', methods: ['ps3'], ps3Model: '.' });
  const small = newVilaConfig({ preset: 'small', methods: ['ps3'], ps3Model: '.' });
  assert.ok(small.lm.width > tiny.lm.width && small.lm.layers > tiny.lm.layers);
  assert.equal(small.projectorHidden, small.lm.width);
  assert.equal(tiny.projectorHidden, tiny.lm.width, 'tiny keeps the projector the shipped folders have');
  const count = (c: typeof tiny): number => [...methodParams('ps3', c, ps3Config).values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  assert.ok(count(small) > 2 * count(tiny));
  assert.throws(() => newVilaConfig({ preset: 'huge', methods: ['ps3'], ps3Model: '.' }), (e: unknown) => isUserError(e) && /unknown LM preset "huge" \(known: micro, tiny, small\)/.test((e as Error).message));
});

test('a run with --init starts from the source: one step moves each weight by about the learning rate', async () => {
  const out = path.join(tmp, 'tuned');
  await trainVilaHd(options(out, { init: { dir: source, method: 'lowres' } }));
  const src = stored(source);
  const got = stored(path.join(out, 'checkpoint'));
  let largest = 0;
  for (const [k, a] of got) {
    const b = src.get(k)!;
    for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i]! - b[i]!));
  }
  // AdamW's first step moves a weight by at most lr (plus decay); random weights differ by far more
  assert.ok(largest > 0 && largest <= 1.5e-3, `largest change ${largest}`);
  const scratch = path.join(tmp, 'scratch');
  await trainVilaHd(options(scratch));
  const fresh = stored(path.join(scratch, 'checkpoint')).get('lowres.lm.blocks.0.mlp.fc1.weight')!;
  const from = src.get('lowres.lm.blocks.0.mlp.fc1.weight')!;
  assert.ok(fresh.some((v, i) => Math.abs(v - from[i]!) > 1e-2), 'a run without --init does not start there');

  // the fine-tuned method replaces the folder's own at export (--replace); without it, refused
  assert.throws(() => exportVilaHd(source, path.join(tmp, 'joined'), 'F32', [path.join(out, 'checkpoint')]), (e: unknown) => isUserError(e) && /method lowres is already in the folder \(--replace to take /.test((e as Error).message));
  const replaced = path.join(tmp, 'replaced');
  exportVilaHd(source, replaced, 'F32', [path.join(out, 'checkpoint')], true);
  const shipped = stored(replaced);
  assert.deepEqual([...shipped.keys()].sort(), [...src.keys()].sort());
  for (const [k, a] of shipped) assert.deepEqual(a, (k.startsWith('lowres.') ? got : src).get(k), k);
});

test('--init is checked at the edge: exit 2 with one line, before any work', () => {
  const out = path.join(tmp, 'cli-out');
  const base = ['train-mllm', '--ps3', ps3, '--out', out, '--method', 'lowres', '--preset', 'micro', '--images', '2', '--cache', path.join(tmp, 'cache')];
  assertBadInput([...base, '--init-method', 'ps3'], /--init-method names whose weights --init DIR takes: give --init too/);
  assertBadInput([...base, '--init', path.join(tmp, 'nowhere')], /--init .*nowhere: not a VILA-HD folder \(no config\.json\)/);
  assertBadInput([...base, '--init', source, '--init-method', 'anyres'], /--init .*source: holds no anyres LM \(it has ps3, lowres\)/);
  assertBadInput([...base, '--init', source, '--resume'], /--init starts a new run .*\(leave --init out\)/);
  assertBadInput([...base, '--init', ps3], /--init .*ps3: not a VILA-HD folder \(its config\.json has no model_type "vila-hd"; a PS3 folder goes to --ps3\)/);
  assertBadInput([...base.map((a) => (a === 'micro' ? 'tiny' : a)), '--init', source], /--init .*source: field lm\.width of .*config\.json is \d+, the LM trained has 128/);
  assertBadInput([...base, '--projector-hidden', '0'], /--projector-hidden must be positive/);
  assert.equal(fs.existsSync(out), false, 'nothing written');
});
