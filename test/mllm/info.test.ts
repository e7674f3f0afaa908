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
  assert.match(text.stdout, new RegExp(`\nprojector  2 x 2 token merge, then LayerNorm, Linear to ${info.lm.width}, GELU, Linear to width ${info.lm.width}\n`));
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

test('a VILA-HD folder where a PS3 one goes, and the other way round, exit 2 saying which is which', () => {
  const image = path.join(tmp, 'image.png');
  fs.writeFileSync(image, Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC', 'base64'));
  assertBadInput(['encode', image, '--model', vila], /vila\/config\.json: a VILA-HD model \(model_type "vila-hd"\), not a PS3 one: give its PS3 folder \(ps3_model: "\.\.\/ps3"\)/);
  assertBadInput(['ask', image, '--model', ps3, 'What does the red sign read?'], /ps3\/config\.json: a PS3 model \(model_type "ps3"\), not a VILA-HD one/);
});

test('eval qa takes the folder make-4k wrote; a folder without questions.jsonl is named', () => {
  assertBadInput(['eval', 'qa', tmp, '--model', vila, '--method', 'ps3'], /a folder without questions\.jsonl/);
  const bench = path.join(tmp, 'bench');
  const made = runCli(['eval', 'make-4k', '--out', bench, '--count', '2', '--size', '224', '--lowres', '56', '--seed', '1000000']);
  assert.equal(made.status, 0, made.stderr);
  const out = path.join(tmp, 'qa.json');
  const r = runCli(['eval', 'qa', bench, '--model', vila, '--method', 'lowres', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(out, 'utf8')) as { reports: Array<{ method: string; answered: number }> };
  assert.deepEqual(report.reports.map((x) => [x.method, x.answered]), [['lowres', 2]]);
});
