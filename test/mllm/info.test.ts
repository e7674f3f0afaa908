/**
 * `ps3 info` on a VILA-HD folder: its LM, methods (parameters that add up to what the file
 * stores), each method's context, and its PS3 as `ps3 info` of that folder says it; a folder whose
 * PS3 is missing or whose weights do not fit its config exits 2 with one line naming it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { modelInfo } from '../../src/model/info.js';
import { assertBadInput, runCli, writeMicroPs3, writeMicroVila } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-info-'));
const ps3 = path.join(tmp, 'ps3');
const vila = path.join(tmp, 'vila');

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 3);
  await writeMicroVila(vila, ps3, ['ps3', 'lowres'], 4);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface VilaInfoJson {
  kind: string;
  ps3Folder: string;
  ps3: { params: { vision: number; text: number; stored: number } };
  methods: Array<{ method: string; contextLength: number; params: number }>;
  params: { total: number; stored: number };
  lm: { width: number; contextLength: number };
}

test('info on a VILA-HD folder: its methods, their parameters and its PS3', () => {
  const r = runCli(['info', vila, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as VilaInfoJson;
  assert.equal(info.kind, 'vila-hd');
  assert.deepEqual(info.methods.map((m) => m.method), ['ps3', 'lowres']);
  assert.ok(info.methods.every((m) => m.contextLength === info.lm.contextLength && m.params > 0));
  // the prompt head is the ps3 LM's alone
  assert.ok(info.methods[0]!.params > info.methods[1]!.params);
  assert.equal(info.params.total, info.methods[0]!.params + info.methods[1]!.params);
  assert.equal(info.params.stored, info.params.total);
  assert.equal(path.resolve(info.ps3Folder), path.resolve(ps3));
  assert.deepEqual(info.ps3.params, modelInfo(ps3).params);

  const text = runCli(['info', vila]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^model {6}.* \(VILA-HD\)\n/);
  assert.match(text.stdout, /\nmethods {4}ps3 \([\d.]+M, context \d+\), lowres /);
  assert.match(text.stdout, /\n {2}trunk {6}vit_micro_patch14/);
});

test('info on a VILA-HD folder without its PS3, or with weights of another shape, exits 2 naming it', () => {
  const config = JSON.parse(fs.readFileSync(path.join(vila, 'config.json'), 'utf8')) as Record<string, unknown> & { lm: { width: number } };
  const copy = path.join(tmp, 'broken');
  fs.cpSync(vila, copy, { recursive: true });
  const write = (c: unknown): void => fs.writeFileSync(path.join(copy, 'config.json'), JSON.stringify(c));

  write({ ...config, ps3_model: '../nowhere' });
  assertBadInput(['info', copy], /config\.json: field ps3_model: .*nowhere is not a PS3 model folder/);

  write({ ...config, ps3_model: path.relative(copy, ps3), lm: { ...config.lm, width: config.lm.width * 2 } });
  assertBadInput(['info', copy], /model\.safetensors: key "ps3\.[^"]+" has shape \[.*\], expected \[.*\]/);

  write({ ...config, ps3_model: path.relative(copy, ps3), methods: ['ps3', 'lowres', 's2'] });
  assertBadInput(['info', copy], /model\.safetensors: missing key "s2\.[^"]+" \(the s2 LM\)/);
});
