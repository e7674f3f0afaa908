/**
 * `ps3 serve --model VILA_HD_DIR`: POST /v1/ask answers as `ps3 ask` does (same option, same
 * scores), raw or multipart; bad questions, methods and options get 400 with one line; a server
 * on a PS3 folder says that questions need a VILA-HD folder.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { runCli, writeMicroPs3, writeMicroVila } from '../mllm/helpers.js';
import { json, multipartBody, request, startServer, writeImages } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-serve-ask-'));
const ps3Dir = path.join(tmp, 'ps3');
const vilaDir = path.join(tmp, 'vila');
let imageFile = '';

interface Asked {
  answer: string;
  option: number | null;
  scores: number[] | null;
  method: string;
  trunk_tokens: number;
  visual_tokens: number;
  looked: Array<{ scale: number; patches: number }> | null;
}

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3Dir, 4);
  await writeMicroVila(vilaDir, ps3Dir, ['ps3', 'lowres'], 2);
  imageFile = (await writeImages(path.join(tmp, 'images'), 1))[0]!;
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const QUESTION = 'What colour is the square?';
const OPTIONS = ['red', 'green', 'blue'];

test('POST /v1/ask answers as ps3 ask does; bad input gets 400 with one line', async () => {
  const cli = runCli(['ask', imageFile, QUESTION, '--model', vilaDir, '--options', OPTIONS.join('|'), '--looks', '2', '--json', '--out', path.join(tmp, 'ask-out')]);
  assert.equal(cli.status, 0, cli.stderr);
  const expected = JSON.parse(cli.stdout.trim().split('\n').at(-1)!) as { answer: string; option: number; scores: number[]; trunk_tokens: number };
  const server = await startServer(['--model', vilaDir]);
  try {
    assert.match(server.stdout(), /VILA-HD .* answers POST \/v1\/ask \(methods ps3, lowres\)/);
    const image = fs.readFileSync(imageFile);
    const query = `question=${encodeURIComponent(QUESTION)}&${OPTIONS.map((o) => `options=${o}`).join('&')}&looks=2`;
    const raw = await request(`${server.url}/v1/ask?${query}`, { body: image, headers: { 'content-type': 'image/png' } });
    assert.equal(raw.status, 200, raw.body.toString());
    const a = json<Asked>(raw);
    assert.equal(a.method, 'ps3');
    assert.equal(a.answer, expected.answer);
    assert.equal(a.option, expected.option);
    assert.equal(a.trunk_tokens, expected.trunk_tokens);
    a.scores!.forEach((s, i) => assert.ok(Math.abs(s - expected.scores[i]!) < 1e-4, `score ${i}: ${s} vs ${expected.scores[i]}`));
    assert.ok(a.looked && a.looked.length > 0 && a.looked.some((l) => l.patches > 0), JSON.stringify(a.looked));

    // multipart fields, another method, and a written answer without options
    const form = multipartBody(image, [['question', QUESTION], ['method', 'lowres']]);
    const written = await request(`${server.url}/v1/ask`, { body: form.body, headers: { 'content-type': form.type } });
    assert.equal(written.status, 200, written.body.toString());
    const w = json<Asked>(written);
    assert.equal(w.method, 'lowres');
    assert.equal(w.option, null);
    assert.equal(w.looked, null);
    assert.equal(typeof w.answer, 'string');

    const bad: Array<[string, RegExp]> = [
      ['', /give the question/],
      [`question=${encodeURIComponent('   ')}`, /give the question/],
      [`question=hi&method=s2`, /holds no LM for method "s2" \(it has ps3, lowres\)/],
      [`question=hi&method=lowres&looks=2`, /method lowres does not look/],
      [`question=hi&looks=1&tokens=40`, /looks or tokens, not both/],
      [`question=hi&colour=red`, /unknown option "colour"/],
      [`question=${encodeURIComponent('what '.repeat(400))}`, /longer than the LM's context|must NOT have more than/],
    ];
    for (const [q, pattern] of bad) {
      const r = await request(`${server.url}/v1/ask?${q}`, { body: image, headers: { 'content-type': 'image/png' } });
      assert.equal(r.status, 400, `${q}: ${r.body.toString()}`);
      const message = json<{ error: string }>(r).error;
      assert.match(message, pattern, q);
      assert.ok(!message.includes('\n'), message);
    }
    const garbage = await request(`${server.url}/v1/ask?question=hi`, { body: Buffer.from('not an image'), headers: { 'content-type': 'image/png' } });
    assert.equal(garbage.status, 400, garbage.body.toString());

    const health = json<{ vila_hd: { model: string; methods: string[] } }>(await request(`${server.url}/healthz`, { method: 'GET' }));
    assert.deepEqual(health.vila_hd.methods, ['ps3', 'lowres']);
  } finally {
    server.proc.kill('SIGTERM');
    assert.equal(await server.exited, 0);
  }
});

test('a server on a PS3 folder says questions need a VILA-HD folder', async () => {
  const server = await startServer(['--model', ps3Dir]);
  try {
    const r = await request(`${server.url}/v1/ask?question=hi`, { body: fs.readFileSync(imageFile), headers: { 'content-type': 'image/png' } });
    assert.equal(r.status, 404);
    assert.match(json<{ error: string }>(r).error, /questions need a VILA-HD folder: ps3 serve --model VILA_HD_DIR/);
  } finally {
    server.proc.kill('SIGTERM');
    assert.equal(await server.exited, 0);
  }
});
