/**
 * `ps3 eval probe` through the command: mistakes exit 2 with one "ps3:" line naming the problem,
 * before any scene is drawn, writing nothing; a small run writes the JSON report and its chart, and
 * with a VILA-HD folder the projector's feature set too.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { initEngine } from '../../src/tensor/engine.js';
import { writeMicroPs3, writeMicroVila } from '../mllm/helpers.js';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-probe-'));

// the model folders the --vila test writes are made of random weights in this process
before(() => initEngine());

function probe(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  // refusals come before any expensive step; the limit only keeps a regression from hanging the suite
  const r = spawnSync(process.execPath, [CLI, 'eval', 'probe', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function refused(args: string[], pattern: RegExp): void {
  const out = path.join(tmp, 'refused.json');
  const r = probe(...args, '--out', out);
  assert.equal(r.status, 2, `eval probe ${args.join(' ')}: expected exit 2, got ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `eval probe ${args.join(' ')}: expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^ps3: /);
  assert.match(lines[0]!, pattern);
  assert.ok(!fs.existsSync(out) && !fs.existsSync(path.join(tmp, 'refused.png')), 'nothing written');
}

test('bad input: too few scenes, a count that is not a number, a missing model folder, a training seed, no model', () => {
  refused(['--preset', 'micro', '--count', '0'], /--count must be at least 5 .*got 0/);
  refused(['--preset', 'micro', '--count', 'ten'], /--count must be a non-negative integer, got "ten"/);
  refused(['--model', path.join(tmp, 'no-model')], /no-model: model folder not found/);
  refused(['--preset', 'micro', '--seed', '12'], /--seed 12 is in the training range/);
  refused([], /--model DIR\|ORG\/NAME is required/);
});

test('an output that is a folder is refused; a small run writes the report and the chart', () => {
  const r = probe('--preset', 'micro', '--out', tmp);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--out: .* is a folder, not a file/);
  const out = path.join(tmp, 'sub', 'probe.json');
  const ok = probe('--preset', 'micro', '--count', '5', '--out', out);
  assert.equal(ok.status, 0, ok.stderr);
  const json = JSON.parse(fs.readFileSync(out, 'utf8')) as { model: string; scenes: number; seed: number; objects: { total: number }; attributes: Record<string, { n: { fit: number; choose: number; test: number } }> };
  assert.equal(json.scenes, 5);
  assert.equal(json.seed, 1_000_000);
  assert.deepEqual(Object.keys(json.attributes), ['colour', 'shape', 'character']);
  assert.ok(fs.statSync(path.join(tmp, 'sub', 'probe.png')).size > 0);
  assert.match(ok.stdout, /^linear probe of top-scale tokens at 224 px/);
});

test('--vila: with --model refused, a folder without a ps3 LM refused; a run probes the folder\'s PS3 and its projector', async () => {
  const ps3 = await writeMicroPs3(path.join(tmp, 'ps3'));
  const lowres = await writeMicroVila(path.join(tmp, 'vila-lowres'), ps3, ['lowres']);
  const vila = await writeMicroVila(path.join(tmp, 'vila'), ps3, ['ps3']);
  refused(['--vila', vila, '--model', ps3], /--vila .*vila probes the PS3 its folder names: give it without --model or --preset/);
  refused(['--vila', lowres], /vila-lowres: holds no LM for method "ps3" \(it has lowres\)/);
  refused(['--vila', path.join(tmp, 'no-vila')], /no-vila: model folder not found/);
  const out = path.join(tmp, 'vila-probe.json');
  const ok = probe('--vila', vila, '--count', '5', '--out', out);
  assert.equal(ok.status, 0, ok.stderr);
  const json = JSON.parse(fs.readFileSync(out, 'utf8')) as { model: string; vila: string; features: string[]; attributes: Record<string, { projected: number | null }> };
  assert.equal(path.resolve(json.model), path.resolve(ps3));
  assert.equal(path.resolve(json.vila), path.resolve(vila));
  assert.ok(json.features.includes('projected'));
  assert.ok(json.attributes['colour']!.projected !== null);
  assert.match(ok.stdout.split('\n')[1]!, / projected$/);
});
