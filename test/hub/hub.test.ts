/**
 * Models by Hub id against a local stand-in for the Hub (test/hub/standInHub.ts) serving the
 * `micro` preset: the cache is laid out as huggingface_hub lays it out; a second run, a stopped
 * server and HF_HUB_OFFLINE=1 use the cache; cut downloads resume; bytes that do not match their
 * SHA-256 are refused and leave nothing in snapshots/; 401 and 404 are one line and exit 2;
 * branches, tags and commits resolve; sharded checkpoints load; `ps3 encode --model ORG/NAME`
 * writes what `--model DIR` writes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { loadModel as loadModelFolder, randomModel } from '../../src/model/load.js';
import { PRESETS, presetConfig } from '../../src/model/presets.js';
import { serializeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { snapshot, MODEL_PLAN } from '../../src/hub/snapshot.js';
import { loadModel, loadModelTokenizer, tokenizerSource } from '../../src/hub/pretrained.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import type { HubSettings } from '../../src/hub/settings.js';
import { hubSettings } from '../../src/hub/settings.js';
import { isUserError } from '../../src/errors.js';
import { commitSha, gitBlobSha1, sha256, StandInHub, type StandInRepo } from './standInHub.js';

const CLI = path.resolve('dist/src/cli/main.js');
const TOKENIZER = fileURLToPath(new URL('../../../test/data/tokenizers/siglip-unigram/', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-hub-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const C1 = commitSha('first');
const C2 = commitSha('second');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

let weights: Buffer; // model.safetensors of the micro preset, random weights
let weightsV1: Buffer; // the same shapes, other weights (the older commit)
let folder: string; // the same model as a plain folder
let shards: Map<string, Uint8Array>;
let hub: StandInHub;
let image: string;

function arraysOf(seed: number): Map<string, NamedArray> {
  const model = randomModel(presetConfig('micro'), seed);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) arrays.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  model.weights.dispose();
  return arrays;
}

const configJson = enc(JSON.stringify(PRESETS['micro']!.config));

function modelFiles(bytes: Uint8Array): Map<string, Uint8Array> {
  return new Map([
    ['config.json', configJson],
    ['model.safetensors', bytes],
    ['preprocessor_config.json', enc(JSON.stringify({ image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] }))],
    ['README.md', enc('# micro\n')],
  ]);
}

before(async () => {
  await initEngine();
  const arrays = arraysOf(1);
  weights = serializeSafetensors(arrays);
  weightsV1 = serializeSafetensors(arraysOf(2));
  folder = path.join(tmp, 'folder');
  fs.mkdirSync(folder);
  fs.writeFileSync(path.join(folder, 'config.json'), configJson);
  fs.writeFileSync(path.join(folder, 'model.safetensors'), weights);
  // the same weights in two shards with an index, as transformers saves large checkpoints
  const keys = [...arrays.keys()].sort();
  const half = Math.ceil(keys.length / 2);
  const parts = [keys.slice(0, half), keys.slice(half)];
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  shards = new Map([['config.json', configJson]]);
  parts.forEach((part, i) => {
    for (const k of part) weightMap[k] = names[i]!;
    shards.set(names[i]!, serializeSafetensors(new Map(part.map((k) => [k, arrays.get(k)!]))));
  });
  shards.set('model.safetensors.index.json', enc(JSON.stringify({ metadata: { total_size: weights.length }, weight_map: weightMap })));
  // the tokenizer lives in a repo of its own, named by the model's tokenizer_config.json, as
  // the released PS3 checkpoints name timm's SigLIP repos
  const tokFiles = new Map(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map((f) => [f, new Uint8Array(fs.readFileSync(path.join(TOKENIZER, f)))]));
  const withTok = modelFiles(weights);
  withTok.set('tokenizer_config.json', enc(JSON.stringify({ tokenizer_name: 'org/tok', context_length: 16, clean: 'canonicalize' })));
  const repos = new Map<string, StandInRepo>([
    ['org/micro', { commits: new Map([[C1, modelFiles(weightsV1)], [C2, modelFiles(weights)]]), refs: new Map([['main', C2], ['v1.0', C1]]) }],
    ['org/sharded', { commits: new Map([[C1, shards]]), refs: new Map([['main', C1]]) }],
    ['org/private', { commits: new Map([[C1, modelFiles(weights)]]), refs: new Map([['main', C1]]), token: 'secret' }],
    ['org/with-tok', { commits: new Map([[C1, withTok]]), refs: new Map([['main', C1]]) }],
    ['org/tok', { commits: new Map([[C2, tokFiles]]), refs: new Map([['main', C2]]) }],
  ]);
  hub = new StandInHub(repos);
  await hub.start();
  image = path.join(tmp, 'image.png');
  await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 60, b: 20 } } }).png().toFile(image);
});
after(() => hub.stop());

/** The address of a server that was started and stopped: nothing listens there. */
async function deadEndpoint(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

let caches = 0;
function freshSettings(extra: Partial<HubSettings> = {}): HubSettings {
  return { endpoint: hub.endpoint, cacheDir: path.join(tmp, `cache-${caches++}`), token: undefined, offline: false, ...extra };
}

function sameWeights(a: string, b: string): void {
  const x = loadModelFolder(a);
  const y = loadModelFolder(b);
  for (const [k, t] of x.weights.entries()) assert.deepEqual(t.dataSync(), y.weights.get(k).dataSync(), k);
  x.weights.dispose();
  y.weights.dispose();
}

test('first download lays the cache out as huggingface_hub does', async () => {
  const settings = freshSettings();
  const snap = await snapshot('org/micro', MODEL_PLAN, { settings });
  const repoDir = path.join(settings.cacheDir, 'models--org--micro');
  assert.equal(snap.commit, C2);
  assert.equal(snap.folder, path.join(repoDir, 'snapshots', C2));
  assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), C2);
  // blobs are named by ETag: the SHA-256 of LFS files, the git blob SHA-1 of the others
  const blobs = fs.readdirSync(path.join(repoDir, 'blobs')).sort();
  const expected = [sha256(weights), gitBlobSha1(configJson), gitBlobSha1(modelFiles(weights).get('preprocessor_config.json')!)].sort();
  assert.deepEqual(blobs, expected);
  // snapshot files are relative symlinks into blobs/; README.md is not fetched
  assert.deepEqual(fs.readdirSync(snap.folder).sort(), ['config.json', 'model.safetensors', 'preprocessor_config.json']);
  assert.equal(fs.readlinkSync(path.join(snap.folder, 'model.safetensors')), path.join('..', '..', 'blobs', sha256(weights)));
  assert.equal(fs.readlinkSync(path.join(snap.folder, 'config.json')), path.join('..', '..', 'blobs', gitBlobSha1(configJson)));
  assert.ok(snap.downloaded >= weights.length);
  sameWeights(snap.folder, folder);
});

test('a second run, a stopped server and HF_HUB_OFFLINE=1 use the cache and touch no network', async () => {
  const settings = freshSettings();
  const first = await snapshot('org/micro', MODEL_PLAN, { settings });
  const before = hub.log.length;
  const again = await snapshot('org/micro', MODEL_PLAN, { settings });
  assert.equal(again.folder, first.folder);
  assert.equal(again.downloaded, 0);
  assert.equal(hub.log.length, before, 'no request on a cache hit');
  // no server at all: an endpoint nothing listens on
  const gone = await snapshot('org/micro', MODEL_PLAN, { settings: { ...settings, endpoint: await deadEndpoint() } });
  assert.equal(gone.folder, first.folder);
  const offline = await snapshot('org/micro', MODEL_PLAN, { settings: { ...settings, offline: true } });
  assert.equal(offline.folder, first.folder);
  assert.equal(hub.log.length, before);
  // offline with an empty cache: a clear refusal, no request
  await assert.rejects(snapshot('org/micro', MODEL_PLAN, { settings: freshSettings({ offline: true }) }), (e: unknown) => isUserError(e) && /HF_HUB_OFFLINE/.test((e as Error).message));
  assert.equal(hub.log.length, before);
});

test('HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are read as huggingface_hub reads them', () => {
  const s = hubSettings({ HF_HOME: '/h', HF_ENDPOINT: 'http://e:1/', HF_TOKEN: ' t ', HF_HUB_OFFLINE: 'yes' });
  assert.deepEqual(s, { endpoint: 'http://e:1', cacheDir: '/h/hub', token: 't', offline: true });
  assert.equal(hubSettings({ HF_HOME: '/h', HF_HUB_CACHE: '/c' }).cacheDir, '/c');
  assert.equal(hubSettings({ HF_HOME: '/h', HF_HUB_OFFLINE: '0' }).offline, false);
  assert.equal(hubSettings({ XDG_CACHE_HOME: '/x' }).cacheDir, '/x/huggingface/hub');
  assert.equal(hubSettings({ HOME: os.homedir() }).endpoint, 'https://huggingface.co');
});

test('a download cut in the middle resumes with a Range request, within a run and across runs', async () => {
  const settings = freshSettings();
  const sha = sha256(weights);
  const half = Math.floor(weights.length / 2);
  hub.hooks = { cut: { sha256: sha, after: half, times: 1 } };
  let from = hub.log.length;
  const snap = await snapshot('org/micro', MODEL_PLAN, { settings });
  hub.hooks = {};
  // the bytes on disk when the connection broke (at most what the server sent) are asked for no more
  const ranges = (since: number): number[] => hub.log.slice(since).flatMap((l) => {
    const m = new RegExp(`^GET /cdn/${sha} bytes=(\\d+)-$`).exec(l);
    return m ? [Number(m[1])] : [];
  });
  const resumedAt = ranges(from);
  assert.equal(resumedAt.length, 1, hub.log.slice(from).join('\n'));
  assert.ok(resumedAt[0]! > 0 && resumedAt[0]! <= half, `resumed at ${resumedAt[0]}`);
  sameWeights(snap.folder, folder);

  // across runs: every attempt cut, the run fails with one line and keeps the part
  const settings2 = freshSettings();
  const tenth = Math.floor(weights.length / 10);
  hub.hooks = { cut: { sha256: sha, after: tenth, times: 100 } };
  await assert.rejects(snapshot('org/micro', MODEL_PLAN, { settings: settings2 }), (e: unknown) => isUserError(e) && /interrupted.*run again to resume/.test((e as Error).message));
  hub.hooks = {};
  const part = path.join(settings2.cacheDir, 'models--org--micro', 'blobs', `${sha}.incomplete`);
  const kept = fs.statSync(part).size;
  // four attempts in the run, each cut after a tenth
  assert.ok(kept > 0 && kept <= 4 * tenth, `kept ${kept}`);
  assert.equal(fs.existsSync(path.join(settings2.cacheDir, 'models--org--micro', 'snapshots')), false);
  from = hub.log.length;
  const resumed = await snapshot('org/micro', MODEL_PLAN, { settings: settings2 });
  assert.deepEqual(ranges(from), [kept]);
  assert.equal(fs.existsSync(part), false);
  sameWeights(resumed.folder, folder);
});

test('bytes that do not match their SHA-256 are refused and leave nothing in snapshots/', async () => {
  const settings = freshSettings();
  const sha = sha256(weights);
  const bad = Uint8Array.from(weights);
  bad[bad.length - 5] ^= 0xff;
  hub.hooks = { corrupt: { sha256: sha, bytes: bad } };
  await assert.rejects(snapshot('org/micro', MODEL_PLAN, { settings }), (e: unknown) => isUserError(e) && /refused.*SHA-256/.test((e as Error).message) && !(e as Error).message.includes('\n'));
  hub.hooks = {};
  const repoDir = path.join(settings.cacheDir, 'models--org--micro');
  assert.equal(fs.existsSync(path.join(repoDir, 'snapshots')), false);
  assert.equal(fs.existsSync(path.join(repoDir, 'refs', 'main')), false);
  assert.equal(fs.existsSync(path.join(repoDir, 'blobs', sha)), false);
  assert.equal(fs.existsSync(path.join(repoDir, 'blobs', `${sha}.incomplete`)), false);
  // the cache stays usable: the next run gets it right
  const snap = await snapshot('org/micro', MODEL_PLAN, { settings });
  sameWeights(snap.folder, folder);
});

test('a revision can be a branch, a tag or a commit', async () => {
  const settings = freshSettings();
  const repoDir = path.join(settings.cacheDir, 'models--org--micro');
  const tag = await snapshot('org/micro@v1.0', MODEL_PLAN, { settings });
  assert.equal(tag.commit, C1);
  assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'v1.0'), 'utf8'), C1);
  const v1 = loadModelFolder(tag.folder);
  const stored = arraysOf(2);
  const key = [...stored.keys()][0]!;
  assert.deepEqual(v1.weights.get(key).dataSync(), stored.get(key)!.data);
  v1.weights.dispose();
  const branch = await snapshot('org/micro@main', MODEL_PLAN, { settings });
  assert.equal(branch.commit, C2);
  const byCommit = await snapshot(`org/micro@${C1}`, MODEL_PLAN, { settings });
  assert.equal(byCommit.folder, tag.folder);
  assert.deepEqual(fs.readdirSync(path.join(repoDir, 'refs')).sort(), ['main', 'v1.0']);
  await assert.rejects(snapshot('org/micro@nope', MODEL_PLAN, { settings }), (e: unknown) => isUserError(e) && /no revision "nope"/.test((e as Error).message));
});

test('a sharded checkpoint downloads its index and shards and loads as the single file does', async () => {
  const settings = freshSettings();
  const model = await loadModel('org/sharded', { settings });
  const snap = await snapshot('org/sharded', MODEL_PLAN, { settings });
  assert.deepEqual(fs.readdirSync(snap.folder).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  const ref = loadModelFolder(folder);
  for (const [k, t] of ref.weights.entries()) assert.deepEqual(model.weights.get(k).dataSync(), t.dataSync(), k);
  ref.weights.dispose();
  model.weights.dispose();
  tf.disposeVariables();
});

test('a model naming its tokenizer repo gets it from the Hub when loaded by id, from the cache only when loaded as a folder', async () => {
  const settings = freshSettings();
  const model = await loadModel('org/with-tok', { settings, parts: 'text' });
  const folder = model.folder!;
  // as a folder, with the tokenizer repo not cached: one clear refusal, no request
  const before = hub.log.length;
  await assert.rejects(tokenizerSource(folder, model, { settings, download: false }), (e: unknown) => isUserError(e) && /has no tokenizer\.json and its tokenizer org\/tok is not in the cache/.test((e as Error).message));
  assert.equal(hub.log.length, before);
  const source = await tokenizerSource(folder, model, { settings, download: true });
  assert.equal(source.repo, 'org/tok');
  assert.equal(source.folder, path.join(settings.cacheDir, 'models--org--tok', 'snapshots', C2));
  // the same ids as the tokenizer files read directly, with the model's context length and cleaning
  const texts = ['A photo of a CAT!', 'two cats on the mat', ''];
  const byModel = await loadModelTokenizer(folder, model, { settings: { ...settings, offline: true }, download: false });
  const direct = await loadTokenizer(TOKENIZER, { contextLength: model.config.text.contextLength, clean: model.config.text.tokenizerClean, padId: model.config.text.padId });
  assert.deepEqual(byModel.encode(texts), direct.encode(texts));
  assert.equal(byModel.contextLength, 16);
  model.weights.dispose();
});

function ps3(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // asynchronous: the stand-in server runs in this process
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, HF_TOKEN: '', HF_HUB_OFFLINE: '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function oneLineExit2(r: { status: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
}

test('401, 404, bad bytes and broken downloads are one clear line and exit 2; the right token gets in', async () => {
  const env = { HF_HOME: path.join(tmp, 'home-errors'), HF_ENDPOINT: hub.endpoint };
  oneLineExit2(await ps3(['info', 'org/private'], env), /^ps3: org\/private: 401 Unauthorized .*set HF_TOKEN/);
  oneLineExit2(await ps3(['info', 'org/private'], { ...env, HF_TOKEN: 'wrong' }), /401 Unauthorized .*token in HF_TOKEN was refused/);
  oneLineExit2(await ps3(['info', 'org/missing'], env), /^ps3: org\/missing: no such model on http:\/\/127\.0\.0\.1:\d+/);
  oneLineExit2(await ps3(['info', 'org/micro@nope'], env), /^ps3: org\/micro: no revision "nope"/);
  const dead = await deadEndpoint();
  oneLineExit2(await ps3(['info', 'org/micro'], { ...env, HF_ENDPOINT: dead }), new RegExp(`cannot reach ${dead.replaceAll('.', '\\.')} \\(ECONNREFUSED\\)`));
  // bytes that do not match, and a download that keeps breaking: one line each, exit 2
  const sha = sha256(weights);
  hub.hooks = { corrupt: { sha256: sha, bytes: new Uint8Array(weights.length) } };
  oneLineExit2(await ps3(['info', 'org/micro'], env), /^ps3: org\/micro@main model\.safetensors: refused, .*SHA-256/);
  hub.hooks = { cut: { sha256: sha, after: 100, times: 100 } };
  oneLineExit2(await ps3(['info', 'org/micro'], env), /^ps3: org\/micro@main model\.safetensors: download interrupted .*run again to resume$/);
  hub.hooks = {};
  const ok = await ps3(['info', 'org/private', '--json'], { ...env, HF_TOKEN: 'secret' });
  assert.equal(ok.status, 0, ok.stderr);
  const info = JSON.parse(ok.stdout) as { scales: number[]; cache: { commit: string }; params: { stored: number } };
  assert.deepEqual(info.scales, [56, 112, 224]);
  assert.equal(info.cache.commit, C1);
});

test('ps3 encode --model ORG/NAME writes what --model DIR writes; the named tokenizer repo is fetched for a prompt', async () => {
  const env = { HF_HOME: path.join(tmp, 'home-encode'), HF_ENDPOINT: hub.endpoint };
  const byDir = await ps3(['encode', image, '--model', folder, '--out', path.join(tmp, 'out-dir')], env);
  assert.equal(byDir.status, 0, byDir.stderr);
  const byId = await ps3(['encode', image, '--model', 'org/micro', '--out', path.join(tmp, 'out-id')], env);
  assert.equal(byId.status, 0, byId.stderr);
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'out-id')).sort(), fs.readdirSync(path.join(tmp, 'out-dir')).sort());
  for (const f of fs.readdirSync(path.join(tmp, 'out-dir'))) {
    assert.ok(fs.readFileSync(path.join(tmp, 'out-dir', f)).equals(fs.readFileSync(path.join(tmp, 'out-id', f))), f);
  }
  assert.ok(fs.existsSync(path.join(env.HF_HOME, 'hub', 'models--org--micro', 'snapshots', C2, 'model.safetensors')));
  // offline, from the cache, with a prompt: the tokenizer repo comes from the Hub once, then the cache
  const prompt = await ps3(['encode', image, '--model', 'org/with-tok', '--prompt', 'a photo of a cat', '--out', path.join(tmp, 'out-tok')], env);
  assert.equal(prompt.status, 0, prompt.stderr);
  assert.ok(fs.existsSync(path.join(env.HF_HOME, 'hub', 'models--org--tok', 'snapshots', C2, 'tokenizer.json')));
  const offline = await ps3(['encode', image, '--model', 'org/with-tok', '--prompt', 'a photo of a cat', '--out', path.join(tmp, 'out-tok2')], { ...env, HF_HUB_OFFLINE: '1' });
  assert.equal(offline.status, 0, offline.stderr);
  const info = await ps3(['info', 'org/with-tok'], { ...env, HF_HUB_OFFLINE: '1' });
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /tokenizer {2}org\/tok \(cached: /);
  assert.match(info.stdout, /budgets {4}24 patches a look/);
});
