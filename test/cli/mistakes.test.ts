/**
 * The mistakes people make, through the `ps3` command: each exits 2 within seconds with one
 * "ps3:" line naming the problem, before any expensive step, and writes nothing.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-mistakes-'));
const aFile = path.join(tmp, 'a-file');
const image = path.resolve('assets/sample-4k.jpg');
const data = path.join(tmp, 'data');

function ps3(...args: string[]): { status: number | null; stderr: string } {
  // refusals come before any expensive step; the limit only keeps a regression from hanging the suite
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stderr: r.stderr };
}

/** Exit 2, one line naming the problem, no stack; `fresh` paths must not exist afterwards. */
function refused(args: string[], pattern: RegExp, fresh: string[] = []): void {
  const r = ps3(...args);
  assert.equal(r.status, 2, `ps3 ${args.join(' ')}: expected exit 2, got ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `ps3 ${args.join(' ')}: expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^ps3: /);
  assert.match(lines[0]!, pattern);
  for (const f of fresh) assert.ok(!fs.existsSync(f), `ps3 ${args.join(' ')} wrote ${f}`);
}

before(() => {
  fs.writeFileSync(aFile, 'not a folder');
  const r = spawnSync(process.execPath, [CLI, 'data', 'synth', '--out', data, '--count', '1', '--size', '112'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('an output folder that is a file, or under a file', () => {
  refused(['train', '--preset', 'micro', '--data', data, '--out', aFile, '--steps', '1'], /--out: .*a-file is a file, not a folder/);
  refused(['encode', image, '--preset', 'micro', '--out', aFile], /--out: .*is a file, not a folder/);
  refused(['similarity', image, '--model', tmp, '--text', 'a sign', '--out', aFile], /--out: .*is a file, not a folder/);
  refused(['eval', 'cost', '--preset', 'micro', '--resolutions', '112', '--out', path.join(aFile, 'cost')], /--out: .*a-file is a file, not a folder/);
  refused(['eval', 'make-4k', '--out', aFile, '--count', '1'], /--out: .*is a file, not a folder/);
  refused(['data', 'synth', '--out', aFile, '--count', '1', '--size', '64'], /--out: .*is a file, not a folder/);
  refused(['demo', '--out', aFile], /--out: .*is a file, not a folder/);
});

test('an output file that is a folder, or under a file, is refused before any benchmark or evaluation runs', () => {
  refused(['bench', '--out', tmp, '--runs', 'micro:1'], /--out: .* is a folder, not a file/);
  refused(['bench', '--out', path.join(aFile, 'x.json'), '--runs', 'micro:1'], /--out: .*a-file is a file, not a folder/);
  refused(['eval', 'qa', path.join(tmp, 'q.jsonl'), '--preset', 'micro', '--method', 'ps3', '--plot', path.join(aFile, 'acc.png')], /--plot: .*a-file is a file, not a folder/);
  refused(['eval', 'retrieval', '--preset', 'micro', '--out', tmp], /--out: .* is a folder, not a file/);
});

test('numbers: --seed abc, --timeout 0, --repeats 0, --batch 0, fractions where integers are meant', () => {
  const fresh = path.join(tmp, 'fresh');
  refused(['demo', '--seed', 'abc', '--out', fresh], /--seed must be an integer.*"abc"/, [fresh]);
  refused(['eval', 'qa', path.join(tmp, 'q.jsonl'), '--preset', 'micro', '--method', 'ps3', '--seed', 'abc'], /--seed must be an integer.*"abc"/);
  refused(['eval', 'retrieval', '--preset', 'micro', '--seed', '1.5'], /--seed must be an integer.*"1\.5"/);
  refused(['train', '--preset', 'micro', '--data', data, '--out', fresh, '--seed', 'abc'], /--seed must be a number, got "abc"/, [fresh]);
  refused(['train', '--preset', 'micro', '--data', 'synth:1000000', '--out', fresh], /--data synth:1000000: the synth stream's seed must be an integer from 0 to 999999/, [fresh]);
  refused(['train', '--preset', 'micro', '--data', data, '--synth-captions', '8', '--out', fresh], /--synth-captions is for --data synth\[:SEED\]/, [fresh]);
  refused(['train', '--preset', 'micro', '--data', 'synth', '--synth-captions', '9-3', '--out', fresh], /--synth-captions must be N or MIN-MAX/, [fresh]);
  refused(['eval', 'cost', '--preset', 'micro', '--resolutions', '112', '--timeout', '0', '--out', fresh], /--timeout must be a positive integer, got "0"/, [fresh]);
  refused(['eval', 'cost', '--preset', 'micro', '--resolutions', '112', '--repeats', '0', '--out', fresh], /--repeats must be a positive integer, got "0"/, [fresh]);
  refused(['eval', 'cost', '--preset', 'micro', '--resolutions', '112,,224', '--out', fresh], /--resolutions .*"112,,224"/, [fresh]);
  refused(['demo', '--batch', '0', '--out', fresh], /--batch must be a positive integer, got "0"/, [fresh]);
  refused(['demo', '--questions', '2.5', '--out', fresh], /--questions must be a positive integer, got "2\.5"/, [fresh]);
  refused(['demo', '--train-minutes', '0', '--out', fresh], /--train-minutes must be a positive number/, [fresh]);
  refused(['encode', image, '--preset', 'micro', '--max-pixels', 'lots', '--out', fresh], /--max-pixels must be a positive integer, got "lots"/, [fresh]);
});

test('demo: --image, --cost-resolutions and --prompt are checked before the first stage', () => {
  const fresh = path.join(tmp, 'fresh-demo');
  refused(['demo', '--image', path.join(tmp, 'typo.jpg'), '--out', fresh], /--image: .*typo\.jpg: no such file/, [fresh]);
  refused(['demo', '--image', aFile, '--out', fresh], /--image: .*a-file: not an image/, [fresh]);
  refused(['demo', '--cost-resolutions', '756,1000', '--out', fresh], /--cost-resolutions: resolution 1000 must be a multiple of the low-res scale 378/, [fresh]);
  refused(['demo', '--prompt', ' ', '--out', fresh], /--prompt must not be empty/, [fresh]);
});

test('bench: an unknown preset in --runs or a bad --image is refused before the first benchmark', () => {
  const out = path.join(tmp, 'bench.json');
  refused(['bench', '--runs', 'micro:1,nope:1', '--out', out], /unknown preset "nope"/, [out]);
  refused(['bench', '--runs', 'micro:1', '--image', aFile, '--out', out], /--image: .*not an image/, [out]);
  refused(['bench', 'encode', '--preset', 'micro', '--random-init', '--image', path.join(tmp, 'nope.png')], /--image: .*nope\.png: no such file/);
  refused(['bench', 'encode', '--preset', 'micro', '--random-init', '--repeats', '0'], /--repeats must be a positive integer, got "0"/);
});

test('bench browser: a bad engine, provider, preset or looks, or no browser, is refused before anything is built', () => {
  refused(['bench', 'browser', '--engine', 'torch'], /--engine: "torch" is not one of ort, tfjs/);
  refused(['bench', 'browser', '--ep', 'cuda'], /--ep: "cuda" is not one of auto, webgpu, wasm/);
  refused(['bench', 'browser', '--preset', 'nope'], /unknown preset "nope"/);
  refused(['bench', 'browser', '--looks', '0'], /--looks: "0" must be a positive integer/);
  refused(['bench', 'browser', '--preset', 'micro', '--chromium', path.join(tmp, 'no-chromium')], /--chromium: no browser at .*no-chromium/);
});

test('a model too big for the WASM engine is refused before loading, with the memory it needs', () => {
  const big = path.join(tmp, 'big');
  fs.mkdirSync(big);
  const config = JSON.parse(fs.readFileSync(path.resolve('../shared/fixtures/ps3-tiny-a/config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  const trunk = config['vision_config']!['trunk'] as Record<string, unknown> | undefined;
  assert.ok(trunk, 'the fixture config spells out its trunk');
  // 48 blocks of width 4096: tens of GiB of float32 weights (no weights file is needed to know)
  config['vision_config']!['trunk'] = { ...trunk, embed_dim: 4096, depth: 48, num_heads: 32 };
  config['vision_config']!['hidden_size'] = 4096;
  config['text_config']!['prompt_proj_dim'] = 4096;
  config['text_config']!['output_dim'] = 4096;
  fs.writeFileSync(path.join(big, 'config.json'), JSON.stringify(config));
  refused(['encode', image, '--model', big, '--out', path.join(tmp, 'big-out')], /does not fit TensorFlow.js's 4\.0 GiB WASM heap .*: it needs about \d+\.\d GiB/, [path.join(tmp, 'big-out')]);
});
