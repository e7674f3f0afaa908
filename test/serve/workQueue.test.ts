/** The server's bounded work queue and the queue's small helpers, without processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AbortedError, QueueFullError, WorkQueue } from '../../src/serve/workQueue.js';
import { jobId, outputPath, redisConnection, writeAtomic } from '../../src/serve/batchJobs.js';
import { quantile } from '../../src/serve/load.js';

function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

test('at most `concurrency` run, at most `maxWaiting` wait, the rest are refused; order kept', async () => {
  const q = new WorkQueue(1, 2);
  const g = gate();
  const order: number[] = [];
  const first = q.run(async () => { await g.promise; order.push(0); });
  const second = q.run(async () => void order.push(1));
  const third = q.run(async () => void order.push(2));
  assert.equal(q.running, 1);
  assert.equal(q.depth, 2);
  await assert.rejects(q.run(async () => undefined), (e: unknown) => e instanceof QueueFullError && e.retryAfterSeconds >= 1);
  g.open();
  await Promise.all([first, second, third]);
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(q.running, 0);
  assert.equal(q.depth, 0);
});

test('a waiting job whose signal aborts leaves the queue and frees its place; a failing job frees its slot', async () => {
  const q = new WorkQueue(1, 1);
  const g = gate();
  const running = q.run(async () => g.promise);
  const ac = new AbortController();
  const leaving = q.run(async () => 'never', ac.signal);
  assert.equal(q.depth, 1);
  ac.abort();
  await assert.rejects(leaving, AbortedError);
  assert.equal(q.depth, 0);
  const next = q.run(async () => 'next');
  g.open();
  await running;
  assert.equal(await next, 'next');
  await assert.rejects(q.run(async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await q.run(async () => 'after'), 'after');
  assert.equal(q.running, 0);
});

test('job ids depend on content and settings; outputs are named by content; writes are atomic', () => {
  const base = { image: '/a.png', hash: 'a'.repeat(64), model: '/m', out: '/o' };
  assert.equal(jobId(base), jobId({ ...base, image: '/b.png' }));
  assert.notEqual(jobId(base), jobId({ ...base, looks: 2 }));
  assert.notEqual(jobId(base), jobId({ ...base, hash: 'b'.repeat(64) }));
  assert.equal(outputPath(base), path.join('/o', `${'a'.repeat(64)}.safetensors`));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-atomic-'));
  const file = path.join(dir, 'x.bin');
  writeAtomic(file, Buffer.from('one'));
  writeAtomic(file, Buffer.from('two'));
  assert.equal(fs.readFileSync(file, 'utf8'), 'two');
  assert.deepEqual(fs.readdirSync(dir), ['x.bin']);
  fs.rmSync(dir, { recursive: true });
});

test('Redis URLs become connection options; others are refused with one line', () => {
  assert.deepEqual(
    { ...redisConnection('redis://:s%40cret@host:6380/2', false) },
    { host: 'host', port: 6380, db: 2, password: 's@cret', maxRetriesPerRequest: null },
  );
  assert.throws(() => redisConnection('http://host', false), /redis:\/\/ or rediss:\/\//);
  assert.throws(() => redisConnection('nonsense', false), /not a URL/);
  assert.throws(() => redisConnection('redis://h/x', false), /database number/);
});

test('quantile: nearest rank', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(quantile(v, 0.5), 50);
  assert.equal(quantile(v, 0.99), 99);
  assert.equal(quantile([7], 0.99), 7);
});
