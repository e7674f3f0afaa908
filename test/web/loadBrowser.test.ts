// The browser's model loading, run in Node: the same checked weights as loadModel, the same
// random weights as randomModel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { serializeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { loadModel, randomModel } from '../../src/model/load.js';
import { fetchModel, fileUrl, modelFromBytes, randomModelBrowser } from '../../src/model/loadBrowser.js';
import { presetConfig, PRESETS } from '../../src/model/presets.js';
import type { Weights } from '../../src/model/weights.js';

function arrays(weights: Weights, keep: (k: string) => boolean = () => true): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [k, t] of weights.entries()) if (keep(k)) out.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  return out;
}

function sameWeights(a: Weights, b: Weights): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of a.entries()) assert.deepEqual(b.get(k).dataSync(), t.dataSync(), k);
}

test('randomModelBrowser makes the weights randomModel makes', async () => {
  await initEngine();
  const config = presetConfig('tiny-4k');
  const node = randomModel(config, 3);
  const page = randomModelBrowser(config, 3);
  sameWeights(node.weights, page.weights);
  node.weights.dispose();
  page.weights.dispose();
});

test('modelFromBytes checks and loads as loadModel does; auto parts follow the checkpoint', async () => {
  await initEngine();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-loadbrowser-'));
  try {
    const config = presetConfig('tiny-4k');
    const source = randomModel(config, 1);
    const configText = JSON.stringify(PRESETS['tiny-4k']!.config);
    const all = serializeSafetensors(arrays(source.weights));
    fs.writeFileSync(path.join(dir, 'config.json'), configText);
    fs.writeFileSync(path.join(dir, 'model.safetensors'), all);

    const fromDisk = loadModel(dir);
    const fromBytes = modelFromBytes(configText, new Uint8Array(all), { source: 'http://x/m' });
    assert.equal(fromBytes.parts, 'all');
    sameWeights(fromDisk.weights, fromBytes.weights);

    // a vision-only checkpoint loads as vision
    const visionOnly = serializeSafetensors(arrays(source.weights, (k) => !k.startsWith('text_model.')));
    const vision = modelFromBytes(configText, new Uint8Array(visionOnly), { source: 'http://x/m' });
    assert.equal(vision.parts, 'vision');
    assert.equal(vision.weights.has('text_model.positional_embedding'), false);

    // a missing key is named, with the file's URL
    const missing = serializeSafetensors(arrays(source.weights, (k) => k !== 'vision_model.prior_prompt'));
    assert.throws(() => modelFromBytes(configText, new Uint8Array(missing), { source: 'http://x/m' }), /http:\/\/x\/m\/model\.safetensors: missing key "vision_model\.prior_prompt"/);
    assert.throws(() => modelFromBytes('{', new Uint8Array(all), { source: 'http://x/m' }), /http:\/\/x\/m\/config\.json: not valid JSON/);

    // fetchModel over a fake fetch: tokenizer files are optional
    const files: Record<string, Uint8Array | string> = { 'config.json': configText, 'model.safetensors': new Uint8Array(all), 'tokenizer.json': '{"model":{}}' };
    const fakeFetch = (async (url: string) => {
      const name = String(url).split('/').pop()!;
      const body = files[name];
      return body === undefined ? new Response('no', { status: 404 }) : new Response(body as BodyInit, { headers: { 'content-length': String(typeof body === 'string' ? body.length : body.length) } });
    }) as typeof fetch;
    const seen: number[] = [];
    const fetched = await fetchModel('http://x/m/', { fetch: fakeFetch, onProgress: (p) => seen.push(p.loaded) });
    assert.equal(fetched.model.source, 'http://x/m');
    assert.deepEqual([...fetched.tokenizerFiles.keys()], ['tokenizer.json']);
    assert.equal(seen[seen.length - 1], all.length);
    sameWeights(fromDisk.weights, fetched.model.weights);
    await assert.rejects(fetchModel('http://x/none', { fetch: (async () => new Response('', { status: 404 })) as unknown as typeof fetch }), /http:\/\/x\/none\/config\.json: HTTP 404/);
    assert.equal(fileUrl('http://x/m//', 'a.json'), 'http://x/m/a.json');
    for (const m of [source, fromDisk, fromBytes, vision, fetched.model]) m.weights.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
