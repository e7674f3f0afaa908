/**
 * The synth stream (`ps3 train --data synth[:SEED]`): sample i is scene i of the seed, drawn at
 * the top scale and made into a sample exactly as a shard entry of the same scene would be; a
 * stream started at k is the rest of one started at 0 (what keeps a resumed run on its curve);
 * seeds at or above the held-out base are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { UserError } from '../../src/errors.js';
import { Rng } from '../../src/rng.js';
import { HELDOUT_SEED_BASE } from '../../src/data/qa/generate.js';
import { renderScene } from '../../src/data/scene/render.js';
import { encodeImage, sampleKey, sceneAnnotation, sceneRng } from '../../src/data/synth.js';
import { makeSample } from '../../src/train/samples.js';
import { sampleOptions, sampleSeed } from '../../src/train/sampleStream.js';
import { parseSynthData, synthSampleSource } from '../../src/train/synthStream.js';

const S = 224;
const spec = { seed: 9, captions: [6, 8] as const };
const options = { size: S, globalCaptionProb: 0.25, regions: 4 };

test('--data synth[:SEED]: the seed, null for a folder, a clear refusal at or above the held-out base', () => {
  assert.equal(parseSynthData('synth'), 0);
  assert.equal(parseSynthData('synth:12'), 12);
  assert.equal(parseSynthData(`synth:${HELDOUT_SEED_BASE - 1}`), HELDOUT_SEED_BASE - 1);
  assert.equal(parseSynthData('runs/dense'), null);
  assert.equal(parseSynthData('synthetic'), null);
  for (const bad of [`synth:${HELDOUT_SEED_BASE}`, 'synth:-1', 'synth:1.5', 'synth:', 'synth:x']) {
    assert.throws(() => parseSynthData(bad), (e: unknown) => e instanceof UserError && e.message.includes(`--data ${bad}`) && e.message.includes('held-out'), bad);
  }
});

test('sample i is scene i of the seed, as the same scene read from a PNG shard entry would be', async () => {
  const source = synthSampleSource(spec, 5, 0, options);
  for (let i = 0; i < 3; i++) {
    const got = await source.next();
    const scene = renderScene(sceneRng(spec.seed, i), { width: S, height: S }, spec.captions);
    const a = sceneAnnotation(scene);
    const raw = { key: sampleKey(i), shard: 'x.tar', imageExt: 'png', image: await encodeImage(scene.rgb, S, S, 'png'), annotation: { text: a.text, box: a.box, globalText: a.global_text } };
    const want = await makeSample(raw, new Rng(sampleSeed(5, i)), sampleOptions(options));
    assert.equal(got.key, want.key);
    assert.equal(got.caption, want.caption);
    assert.deepEqual(got.box, want.box);
    assert.deepEqual(got.regions, want.regions);
    assert.deepEqual(got.pixels, want.pixels);
    assert.deepEqual(got.gt, want.gt);
  }
  assert.equal(source.seen, 3);
  assert.match(source.summary(), /scenes 0 to 2 of seed 9/);
});

test('a stream started at k is the rest of one started at 0, and other seeds draw other scenes', async () => {
  const whole = synthSampleSource(spec, 5, 0, options);
  const first = [await whole.next(), await whole.next(), await whole.next()];
  const rest = await synthSampleSource(spec, 5, 2, options).next();
  assert.equal(rest.key, first[2]!.key);
  assert.deepEqual(rest.pixels, first[2]!.pixels);
  assert.equal(rest.caption, first[2]!.caption);
  const other = await synthSampleSource({ ...spec, seed: 10 }, 5, 0, options).next();
  assert.notDeepEqual(other.pixels, first[0]!.pixels);
  // the scene does not depend on the run's seed; only the augmentation does
  const reseeded = await synthSampleSource(spec, 6, 0, options).next();
  assert.equal(reseeded.key, first[0]!.key);
});

test('ps3 train --data synth: a run stopped and resumed follows the uninterrupted one; another stream is refused on --resume', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-synth-'));
  const CLI = path.resolve('dist/src/cli/main.js');
  const args = (out: string, data = 'synth:4'): string[] => [CLI, 'train', '--preset', 'micro', '--data', data, '--synth-captions', '6', '--regions', '3', '--out', out, '--steps', '4', '--batch', '2', '--warmup', '1', '--save-every', '2', '--seed', '3', '--threads', '1'];
  const loss = (out: string): number[] => fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
  const a = path.join(tmp, 'a');
  const ra = spawnSync(process.execPath, args(a), { encoding: 'utf8' });
  assert.equal(ra.status, 0, ra.stderr);
  // a preset has no tokenizer: the run writes the synthetic data's word tokenizer
  assert.ok(fs.existsSync(path.join(a, 'tokenizer', 'tokenizer.json')));
  assert.ok(fs.existsSync(path.join(a, 'checkpoint', 'tokenizer.json')));
  const b = path.join(tmp, 'b');
  assert.equal(spawnSync(process.execPath, [...args(b), '--stop-at', '2'], { encoding: 'utf8' }).status, 0);
  const resumed = spawnSync(process.execPath, [...args(b), '--resume'].filter((x) => x !== 'micro' && x !== '--preset'), { encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /synth: scenes 4 to \d+ of seed 4/);
  const [la, lb] = [loss(a), loss(b)];
  assert.equal(lb.length, 4);
  lb.forEach((l, i) => assert.ok(Math.abs(l - la[i]!) <= 1e-4 * Math.max(1, Math.abs(la[i]!)), `step ${i + 1}: resumed ${l} vs uninterrupted ${la[i]}`));
  const other = spawnSync(process.execPath, [...args(b, 'synth:5'), '--resume'].filter((x) => x !== 'micro' && x !== '--preset'), { encoding: 'utf8' });
  assert.equal(other.status, 2);
  assert.match(other.stderr.trim(), /^ps3: --resume: --data synth:5 \(captions 6-6\) differs from the run's synth:4 \(captions 6-6\)$/);
  // a folder with the stream's name is not silently passed over
  fs.mkdirSync(path.join(tmp, 'synth'));
  const clash = spawnSync(process.execPath, [CLI, 'train', '--preset', 'micro', '--data', 'synth', '--out', 'c'], { encoding: 'utf8', cwd: tmp });
  assert.equal(clash.status, 2);
  assert.equal(clash.stderr.trim(), "ps3: --data synth: a folder here has the synthetic stream's name; give the folder as ./synth");
  assert.ok(!fs.existsSync(path.join(tmp, 'c')));
  fs.rmSync(tmp, { recursive: true, force: true });
});
