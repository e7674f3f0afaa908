/**
 * The batch encode on a real Redis (Debian's redis-server, append-only file on): 40 images and
 * a corrupt one, 3 workers, one SIGKILLed in the middle of a job, Redis restarted mid-run. Every
 * image ends with exactly one output, byte-identical to a single-process `ps3 encode`; the
 * corrupt image ends failed with its reason; an image away for a while is retried with back-off.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, Redis, startCli, waitFor, writeImages, writeModelDir, type Child } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-queue-'));
const modelDir = path.join(tmp, 'model');
const imagesDir = path.join(tmp, 'images');
const cliOut = path.join(tmp, 'cli-out');
const out = path.join(tmp, 'out');
const corrupt = path.join(tmp, 'other', 'corrupt.png');
let files: string[] = [];
let redis: Redis;
const workers: Child[] = [];

function ps3(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

interface Status {
  done: number;
  failed: number;
  waiting: number;
  active: number;
  delayed: number;
  workers: number;
  rate: number;
  eta: number | null;
  failures: Array<{ image: string; reason: string }>;
}

function status(): Status {
  const r = ps3('queue', 'status', '--redis', redis.url, '--json');
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Status;
}

const doneLines = (c: Child): number => c.stdout().split('\n').filter((l) => l.startsWith('ps3 worker: done ')).length;

before(async () => {
  await writeModelDir(modelDir);
  files = await writeImages(imagesDir, 40);
  fs.mkdirSync(path.dirname(corrupt), { recursive: true });
  fs.writeFileSync(corrupt, Buffer.concat([fs.readFileSync(files[0]!).subarray(0, 8), Buffer.from('this is no PNG data')]));
  fs.writeFileSync(path.join(tmp, 'other', 'list.txt'), '# images that live elsewhere\ncorrupt.png\n');
  const r = ps3('encode', imagesDir, '--model', modelDir, '--out', cliOut);
  assert.equal(r.status, 0, r.stderr);
  redis = await Redis.start(path.join(tmp, 'redis'));
});

after(async () => {
  for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
  await redis?.down();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('40 images and a corrupt one, 3 workers, one killed mid-job, Redis restarted: one correct output per image', async () => {
  const add = ps3('queue', 'add', imagesDir, path.join(tmp, 'other', 'list.txt'), '--redis', redis.url, '--model', modelDir, '--out', out);
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, /queued 41 job\(s\)/);
  // queueing the same images again adds nothing
  assert.match(ps3('queue', 'add', imagesDir, '--redis', redis.url, '--model', modelDir, '--out', out).stdout, /queued 40 job/);
  assert.equal(status().waiting, 41);

  // one image is away for a while (a sync not yet arrived): its job is retried with back-off
  const away = `${files[39]!}.away`;
  fs.renameSync(files[39]!, away);

  for (let i = 0; i < 3; i++) workers.push(startCli(['worker', '--redis', redis.url, '--lock-ms', '3000']));
  const [victim, ...rest] = workers as [Child, Child, Child];

  // SIGKILL the first worker the moment it starts a job (it has finished a few already)
  const killedDuring = await new Promise<string>((resolve) => {
    const onData = (): void => {
      const last = victim.stdout().trim().split('\n').at(-1)!;
      if (doneLines(victim) >= 3 && last.startsWith('ps3 worker: started ')) {
        victim.proc.kill('SIGKILL');
        victim.proc.stdout!.off('data', onData);
        resolve(last.replace('ps3 worker: started ', ''));
      }
    };
    victim.proc.stdout!.on('data', onData);
  });

  // restart Redis once a good part of the work is done
  await waitFor('20 images done', () => (rest.reduce((a, w) => a + doneLines(w), doneLines(victim)) >= 20 ? true : undefined), 60000);
  await redis.down();
  await new Promise((r) => setTimeout(r, 300));
  await redis.up();

  const retried = `will retry ${files[39]!}: ${files[39]!}: cannot read (ENOENT) (attempt 1 of 5)`;
  await waitFor('the missing image to be retried', () => (workers.some((w) => w.stdout().includes(retried)) ? true : undefined), 90000);
  fs.renameSync(away, files[39]!);

  const final = await waitFor('every job to end', () => {
    const s = status();
    return s.done + s.failed === 41 && s.active === 0 ? s : undefined;
  }, 90000);
  assert.equal(final.done, 40);
  assert.equal(final.failed, 1);
  assert.equal(final.waiting + final.delayed, 0);
  assert.equal(final.failures[0]!.image, corrupt);
  assert.match(final.failures[0]!.reason, /corrupt\.png: (not an image|cannot decode|cannot read image header)/);

  // the job the dead worker held, if it still held it, was taken again by the stalled-job check;
  // a kill that lands after the job finished (these small encodes take tens of milliseconds)
  // leaves nothing stalled, and the per-image checks below cover that case
  // a worker logs "done" on its completed event, which comes after Redis already counts the job
  // done, so the line may still be on its way through the pipe when the status says all ended
  const restOut = (): string => rest.map((w) => w.stdout()).join('');
  if (/stalled/.test(restOut())) {
    const doneKilled = `done ${killedDuring} `;
    await waitFor(`a live worker to log "${doneKilled}"`, () => (restOut().includes(doneKilled) ? true : undefined), 15000);
  }

  // exactly one output per image, named by its content hash, the bytes of ps3 encode's
  const outputs = fs.readdirSync(out).sort();
  assert.equal(outputs.length, 40, outputs.join(' '));
  for (const f of files) {
    const hash = crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
    const got = fs.readFileSync(path.join(out, `${hash}.safetensors`));
    const want = fs.readFileSync(path.join(cliOut, `${path.basename(f, '.png')}.safetensors`));
    assert.ok(got.equals(want), `${path.basename(f)}: output differs from ps3 encode's`);
  }

  for (const w of rest) w.proc.kill('SIGTERM');
  for (const w of rest) assert.equal(await w.exited, 0, w.stderr());
  for (const w of rest) assert.match(w.stdout(), /stopped/);
});

test('queue commands: bad input exits 2 with one line', () => {
  const cases: Array<[string[], RegExp]> = [
    [['queue', 'add', imagesDir, '--redis', 'http://x', '--model', modelDir, '--out', out], /redis:\/\//],
    [['queue', 'add', imagesDir, '--redis', redis.url, '--model', path.join(tmp, 'nomodel'), '--out', out], /nomodel.*config\.json/],
    [['queue', 'status', '--redis', 'redis://127.0.0.1:1'], /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/],
  ];
  for (const [args, pattern] of cases) {
    const r = ps3(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
  }
});
