/**
 * A model too big for TensorFlow.js's WASM heap is refused from its config, before any weight is
 * allocated: the estimate against known shapes, and the CLI's exit 2 with one line (never the
 * kernel abort that running it would end in). The so400m shapes are provoked through their
 * presets, which costs nothing: the refusal comes before the random weights are made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHeapFits, heapNeed, tfjsPassBytes, WASM_HEAP_BYTES } from '../../src/engine/capacity.js';
import { isUserError } from '../../src/errors.js';
import { presetConfig } from '../../src/model/presets.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = path.join('dist', 'src', 'cli', 'main.js');

test('a look on the TensorFlow.js trunk: every head\'s scores three times over dominate', () => {
  const t = presetConfig('so400m-4k').vision.trunk;
  const scores = 3 * t.heads * 2560 * 3289 * 4;
  const pass = tfjsPassBytes(t, 2560, 3289);
  assert.ok(pass > scores && pass < 1.5 * scores, `${pass} vs scores ${scores}`);
});

test('so400m shapes need more than the WASM heap with the trunk on TensorFlow.js and fit with it on ONNX Runtime; b14 and tiny fit both', () => {
  for (const name of ['so400m-4k', 'so400m-1.5k']) {
    const cfg = presetConfig(name);
    assert.ok(heapNeed(cfg, 'tfjs').total > WASM_HEAP_BYTES, name);
    assert.ok(heapNeed(cfg, 'onnx').total < WASM_HEAP_BYTES / 2, name);
    assert.equal(heapNeed(cfg, 'onnx').pass, 0);
    assert.throws(
      () => checkHeapFits(cfg, 'tfjs', 'wasm', name),
      (e) => isUserError(e) && new RegExp(`^${name} does not fit TensorFlow.js's 4.0 GiB WASM heap with the trunk on tfjs: it needs about \\d+\\.\\d GiB .*--trunk onnx`).test((e as Error).message),
    );
    checkHeapFits(cfg, 'onnx', 'wasm', name);
    checkHeapFits(cfg, 'tfjs', 'cpu', name); // the CPU backend's memory is JavaScript's: no such limit
  }
  for (const name of ['b14-4k', 'b14-1.5k', 'tiny']) for (const engine of ['tfjs', 'onnx'] as const) checkHeapFits(presetConfig(name), engine, 'wasm', name);
});

function ps3(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env['PS3_BACKEND'];
  delete env['PS3_TRUNK'];
  return spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env, timeout: 60_000 });
}

for (const args of [
  ['bench', 'encode', '--preset', 'so400m-4k', '--random-init', '--trunk', 'tfjs', '--looks', '1', '--json'],
  ['encode', 'assets/sample-4k.jpg', '--preset', 'so400m-1.5k', '--trunk', 'tfjs', '--out', path.join('/tmp', 'ps3-capacity-never-written')],
]) {
  test(`ps3 ${args.slice(0, 4).join(' ')} ... --trunk tfjs is refused with exit 2 and one line, not an abort`, () => {
    const r = ps3(args);
    assert.equal(r.status, 2, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^ps3: so400m-(4k|1\.5k) does not fit TensorFlow\.js's 4\.0 GiB WASM heap .* it needs about \d+\.\d GiB/);
    assert.doesNotMatch(r.stderr, /internal error|Aborted|^\s+at /m);
    assert.equal(r.stdout, '');
  });
}
