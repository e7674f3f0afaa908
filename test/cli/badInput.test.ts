/**
 * Bad input, each case a test, through the `ps3` command: exit 2 with one line on stderr naming
 * the problem and no stack trace; images that need conversion are converted, not refused.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel } from '../../src/model/load.js';
import { PRESETS, presetConfig } from '../../src/model/presets.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-bad-'));
const modelDir = path.join(tmp, 'model');
const good = path.join(tmp, 'good.png');

function ps3(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(r: { status: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.status, 2, `expected exit 2, got ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^ps3: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

function copyModel(name: string, edit: (tensors: Map<string, NamedArray>, config: Record<string, unknown>) => void): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const tensors = readSafetensors(path.join(modelDir, 'model.safetensors'));
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(tensors, config);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

before(async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 1);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) arrays.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  fs.mkdirSync(modelDir);
  writeSafetensors(path.join(modelDir, 'model.safetensors'), arrays);
  fs.writeFileSync(path.join(modelDir, 'config.json'), JSON.stringify(PRESETS['micro']!.config));
  model.weights.dispose();
  tf.disposeVariables();
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toFile(good);
});

test('a good image encodes (exit 0) and writes features and heat maps', () => {
  const out = path.join(tmp, 'out-good');
  const r = ps3('encode', good, '--model', modelDir, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(out, 'good.safetensors')));
  assert.ok(fs.readdirSync(out).some((f) => f.endsWith('.png')));
});

test('a missing image file', () => assertUserError(ps3('encode', path.join(tmp, 'nope.png'), '--model', modelDir, '--out', tmp), /nope\.png/));

test('an empty image file', () => {
  const f = path.join(tmp, 'empty.png');
  fs.writeFileSync(f, '');
  assertUserError(ps3('encode', f, '--model', modelDir, '--out', tmp), /empty\.png.*empty/);
});

test('a truncated image file', () => {
  const f = path.join(tmp, 'truncated.png');
  fs.writeFileSync(f, fs.readFileSync(good).subarray(0, 200));
  assertUserError(ps3('encode', f, '--model', modelDir, '--out', tmp), /truncated\.png/);
});

test('a mislabelled file (text named .png) and an unsupported format (SVG)', () => {
  const f = path.join(tmp, 'text.png');
  fs.writeFileSync(f, 'hello, not an image');
  assertUserError(ps3('encode', f, '--model', modelDir, '--out', tmp), /text\.png/);
  const svg = path.join(tmp, 'drawing.svg');
  fs.writeFileSync(svg, '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
  assertUserError(ps3('encode', svg, '--model', modelDir, '--out', tmp), /drawing\.svg/);
});

test('alpha, grayscale, 16-bit, CMYK and EXIF-rotated images are converted, not refused', async () => {
  const dir = path.join(tmp, 'convert');
  fs.mkdirSync(dir);
  const base = sharp({ create: { width: 96, height: 64, channels: 4, background: { r: 10, g: 200, b: 90, alpha: 0.5 } } });
  await base.clone().png().toFile(path.join(dir, 'alpha.png'));
  await base.clone().removeAlpha().grayscale().png().toFile(path.join(dir, 'gray.png'));
  await base.clone().removeAlpha().png({ bitdepth: 16 } as sharp.PngOptions).toColourspace('rgb16').toFile(path.join(dir, 'sixteen.png'));
  fs.copyFileSync('test/data/images/cmyk.jpg', path.join(dir, 'cmyk.jpg'));
  await base.clone().removeAlpha().jpeg().withMetadata({ orientation: 6 }).toFile(path.join(dir, 'rotated.jpg'));
  const out = path.join(tmp, 'out-convert');
  const r = ps3('encode', dir, '--model', modelDir, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /encoded 5 of 5/);
});

test('one bad file in a folder is reported and skipped, the rest encoded', () => {
  const dir = path.join(tmp, 'mixed');
  fs.mkdirSync(dir);
  fs.copyFileSync(good, path.join(dir, 'a.png'));
  fs.writeFileSync(path.join(dir, 'b.png'), 'broken');
  fs.copyFileSync(good, path.join(dir, 'c.png'));
  const r = ps3('encode', dir, '--model', modelDir, '--out', path.join(tmp, 'out-mixed'));
  assert.equal(r.status, 2);
  assert.match(r.stdout, /encoded 2 of 3/);
  assert.match(r.stderr, /b\.png/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('an image whose header claims more pixels than the limit is refused before decoding', () => {
  assertUserError(ps3('encode', good, '--model', modelDir, '--out', tmp, '--max-pixels', '1000'), /good\.png.*limit/);
});

test('model folders: missing, unexpected and misshaped keys name the key', () => {
  const missing = copyModel('missing', (t) => t.delete('vision_model.prior_prompt'));
  assertUserError(ps3('encode', good, '--model', missing, '--out', tmp), /vision_model\.prior_prompt/);
  const unexpected = copyModel('unexpected', (t) => t.set('vision_model.surprise', { shape: [2], data: new Float32Array(2) }));
  assertUserError(ps3('encode', good, '--model', unexpected, '--out', tmp), /vision_model\.surprise/);
  const misshaped = copyModel('misshaped', (t) => t.set('vision_model.prior_prompt', { shape: [3], data: new Float32Array(3) }));
  assertUserError(ps3('encode', good, '--model', misshaped, '--out', tmp), /vision_model\.prior_prompt.*\[3\]/);
});

test('model folders: a truncated or lying safetensors header', () => {
  const truncated = copyModel('truncated', () => {});
  const file = path.join(truncated, 'model.safetensors');
  fs.truncateSync(file, fs.statSync(file).size - 100);
  assertUserError(ps3('encode', good, '--model', truncated, '--out', tmp), /model\.safetensors/);
  const lying = copyModel('lying', () => {});
  const bytes = fs.readFileSync(path.join(lying, 'model.safetensors'));
  bytes.writeBigUInt64LE(BigInt(bytes.length * 2), 0);
  fs.writeFileSync(path.join(lying, 'model.safetensors'), bytes);
  assertUserError(ps3('encode', good, '--model', lying, '--out', tmp), /header claims/);
});

test('model folders: an unknown trunk or a bad config field names the field', () => {
  const unknown = copyModel('unknown-trunk', (_, c) => {
    const v = c['vision_config'] as Record<string, unknown>;
    delete v['trunk'];
    v['model_name'] = 'vit_giant_mystery';
  });
  assertUserError(ps3('encode', good, '--model', unknown, '--out', tmp), /vit_giant_mystery/);
  const bad = copyModel('bad-field', (_, c) => {
    (c['vision_config'] as Record<string, unknown>)['max_select_num'] = -5;
  });
  assertUserError(ps3('encode', good, '--model', bad, '--out', tmp), /max_select_num/);
});

test('option values: negative, not numbers, out of range; too many looks are clamped with a warning', () => {
  assertUserError(ps3('encode', good, '--model', modelDir, '--out', tmp, '--looks', '-2'), /--looks/);
  assertUserError(ps3('encode', good, '--model', modelDir, '--out', tmp, '--tokens', 'many'), /--tokens/);
  assertUserError(ps3('encode', good, '--model', modelDir, '--out', tmp, '--scales', '9'), /--scales/);
  assertUserError(ps3('encode', good, '--model', modelDir, '--out', tmp, '--looks', '1', '--all'), /one of/);
  const r = ps3('encode', good, '--model', modelDir, '--out', path.join(tmp, 'out-clamp'), '--looks', '500');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: --looks 500 .* using \d+/);
});

test('options commander refuses (unknown, misspelt, required but missing, unknown command) exit 2 naming the option, with no help dump, on sub-commands too', () => {
  const cases: Array<[string[], RegExp]> = [
    [['eval', 'selection', '--modle', 'x'], /unknown option '--modle'/],
    [['train', '--stepz', '3'], /required option '--data <dir\|synth\[:SEED\]>' not specified|unknown option '--stepz'/],
    [['encode', '--bogus'], /unknown option '--bogus'/],
    [['no-such-command'], /unknown command 'no-such-command'/],
  ];
  for (const [args, pattern] of cases) {
    const r = ps3(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: expected exit 2, got ${r.status}: ${r.stderr}`);
    const first = r.stderr.trim().split('\n')[0]!;
    assert.match(first, pattern, args.join(' '));
    assert.ok(r.stderr.trim().split('\n').length <= 3, `${args.join(' ')}: a line or two, not the whole help:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr + r.stdout, /Usage:/, args.join(' '));
  }
});

test('a mistyped relative model folder that reads as a Hub id says the folder is not there, and what the Hub said', () => {
  fs.mkdirSync(path.join(tmp, 'models'), { recursive: true });
  const r = spawnSync(process.execPath, [CLI, 'encode', good, '--model', 'models/ps3-tny'], { encoding: 'utf8', cwd: tmp, env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HOME: path.join(tmp, 'hf-home') } });
  assertUserError({ status: r.status, stderr: r.stderr }, /^ps3: models\/ps3-tny: model folder not found \(models\/ has no ps3-tny\); as a Hub id: /);
});
