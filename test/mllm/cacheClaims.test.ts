/**
 * Several builders filling one training cache: a claim keeps an image to one live builder and is
 * taken over from a dead one; two builders at once make the same cache one builder makes, and a
 * builder waits for the images another holds; `--cache-only` writes the caches and no run.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine } from '../../src/tensor/engine.js';
import { loadModel, type PS3Model } from '../../src/model/load.js';
import { CLAIM_STALE_MS, claim, release } from '../../src/mllm/cacheClaims.js';
import { buildCache, cacheDir, type CacheSpec } from '../../src/mllm/trainData.js';
import { assertBadInput, runCli, writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-cache-claims-'));
const ps3Dir = path.join(tmp, 'ps3');
let ps3: PS3Model;
const spec: CacheSpec = { method: 'ps3', seed: 43, images: 3, looks: 1 };

/** Every file of a cache folder but the claims, with its bytes. */
function contents(dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

/** A pid no process has here. */
function deadPid(): number {
  for (let pid = 4_000_000; ; pid++) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
}

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3Dir, 5);
  ps3 = loadModel(ps3Dir, 'vision');
});
after(() => {
  ps3.weights.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('a claim is one live builder\'s; a dead builder\'s is taken over at once, another machine\'s once it is stale', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'claims-'));
  const file = path.join(dir, '000000.claim');
  assert.equal(claim(file), true);
  assert.equal(claim(file), false, 'held by a live builder (this one)');
  release(file);
  assert.equal(claim(file), true);
  release(file);

  fs.writeFileSync(file, `${os.hostname()} ${deadPid()}\n`);
  assert.equal(claim(file), true, 'its builder no longer runs');
  assert.equal(fs.readFileSync(file, 'utf8'), `${os.hostname()} ${process.pid}\n`);
  release(file);

  fs.writeFileSync(file, 'another-machine 17\n');
  assert.equal(claim(file), false, 'another machine\'s builder cannot be asked: its claim holds until stale');
  assert.equal(claim(file, Date.now() + CLAIM_STALE_MS + 1000), true);
  release(file);
});

test('two builders at once make the cache one builder makes, each image once, and leave no claims', async () => {
  const alone = cacheDir(path.join(tmp, 'alone'), ps3Dir, spec);
  const shared = cacheDir(path.join(tmp, 'shared'), ps3Dir, spec);
  const single = await buildCache(ps3, spec, alone);
  const made: number[][] = [[], []];
  // count the images written: each is renamed into place once, its questions file last
  const written: string[] = [];
  const rename = fs.renameSync;
  fs.renameSync = (from: fs.PathLike, to: fs.PathLike): void => {
    if (String(to).startsWith(shared) && String(to).endsWith('.json')) written.push(path.basename(String(to)));
    rename(from, to);
  };
  let a, b;
  try {
    [a, b] = await Promise.all([0, 1].map((k) => buildCache(ps3, spec, shared, (done) => made[k]!.push(done))));
  } finally {
    fs.renameSync = rename;
  }
  assert.deepEqual(written.sort(), ['000000.json', '000001.json', '000002.json']);
  assert.deepEqual(a, single);
  assert.deepEqual(b, single);
  assert.deepEqual(made.map((m) => m.at(-1)), [3, 3], 'each builder reports every image');
  assert.deepEqual(contents(shared), contents(alone));
  assert.ok(!fs.readdirSync(shared).some((f) => f.endsWith('.claim')));
});

test('a builder waits for an image another builder holds, and finishes once it is written', async () => {
  const dir = cacheDir(path.join(tmp, 'held'), ps3Dir, spec);
  fs.mkdirSync(dir, { recursive: true });
  const held = path.join(dir, '000001.claim');
  fs.writeFileSync(held, 'another-machine 17\n');
  let done = 0;
  let finished = false;
  const building = buildCache(ps3, spec, dir, (d) => (done = d)).then((q) => {
    finished = true;
    return q;
  });
  while (done < 2) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(finished, false, 'image 1 is another builder\'s');
  assert.ok(!fs.existsSync(path.join(dir, '000001.json')));
  // the other builder finishes image 1: a builder of its own writes it
  const other = cacheDir(path.join(tmp, 'alone'), ps3Dir, spec);
  for (const f of ['000001.safetensors', '000001.json']) fs.copyFileSync(path.join(other, f), path.join(dir, f));
  release(held);
  assert.deepEqual(await building, await buildCache(ps3, spec, other));
  assert.equal(done, 3);
});

test('train-mllm --cache-only makes the run\'s cache and writes nothing in --out; the run then trains on it', () => {
  const cache = path.join(tmp, 'cli-cache');
  const out = path.join(tmp, 'cli-out');
  const args = ['train-mllm', '--ps3', ps3Dir, '--out', out, '--preset', 'micro', '--images', '2', '--data-seed', '43', '--cache', cache, '--steps', '1', '--batch', '2', '--threads', '1'];
  const r = runCli([...args, '--cache-only']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /cached the tokens of 2 training scenes for ps3/);
  assert.ok(!fs.existsSync(out));
  const [folder] = fs.readdirSync(cache);
  const files = (): string[] => fs.readdirSync(path.join(cache, folder!)).sort();
  const made = files();
  assert.deepEqual(made.filter((f) => f.endsWith('.json')), ['000000.json', '000001.json']);
  const trained = runCli(args);
  assert.equal(trained.status, 0, trained.stderr);
  assert.match(trained.stdout, /trained ps3 to step 1/);
  assert.deepEqual(files(), made, 'the run read the cache the builder made');
  assertBadInput([...args, '--cache-only'], /--cache-only: .* already holds a ps3 run/);
});
