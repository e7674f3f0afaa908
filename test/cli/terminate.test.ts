/**
 * No hangs: each long command, killed (SIGINT, SIGTERM) or failing at several points, ends, and
 * leaves no child process behind.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-terminate-'));
const data = path.join(tmp, 'data');
// generous: the machine may be busy; a hang is forever
const ENDS_WITHIN_MS = 90_000;

interface Running {
  readonly child: ChildProcess;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(...args: string[]): Running {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Running = {
    child,
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  // both streams: what a command reports goes to one or the other
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on('data', (d: Buffer) => {
      run.stderr += d.toString();
    });
  }
  return run;
}

async function waitFor(run: Running, pattern: RegExp, ms = ENDS_WITHIN_MS): Promise<void> {
  const t0 = Date.now();
  while (!pattern.test(run.stderr)) {
    if (run.child.exitCode !== null || run.child.signalCode !== null) assert.fail(`ended before ${pattern}: ${run.stderr}`);
    if (Date.now() - t0 > ms) {
      run.child.kill('SIGKILL');
      assert.fail(`no ${pattern} within ${ms} ms: ${run.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ends(run: Running): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const timer = setTimeout(() => run.child.kill('SIGKILL'), ENDS_WITHIN_MS);
  const r = await run.exited;
  clearTimeout(timer);
  assert.notEqual(r.signal, 'SIGKILL', `did not end within ${ENDS_WITHIN_MS} ms: ${run.stderr}`);
  assert.doesNotMatch(run.stderr, /still held the process open/);
  return r;
}

/** Process ids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // the command name may hold spaces: the parent id is the second field after its ")"
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // it ended while being read
    }
  }
  return found;
}

/** Running, not ended (a zombie has ended; only its parent's reaping is left). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

before(() => {
  const r = spawnSync(process.execPath, [CLI, 'data', 'synth', '--out', data, '--count', '2', '--size', '112'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('train: SIGTERM and SIGINT while the sample worker runs, and at once, end the process', async () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const run = start('train', '--preset', 'micro', '--data', data, '--out', path.join(tmp, `train-${signal}`), '--steps', '100000', '--batch', '1');
    await waitFor(run, /^training /m);
    run.child.kill(signal);
    const r = await ends(run);
    assert.equal(r.signal, signal, run.stderr);
  }
  const early = start('train', '--preset', 'micro', '--data', data, '--out', path.join(tmp, 'train-early'), '--steps', '100000', '--batch', '1');
  early.child.kill('SIGTERM');
  assert.equal((await ends(early)).signal, 'SIGTERM');
});

test('train: a failure inside the loop (no usable sample) closes the worker and exits 2', async () => {
  const bad = path.join(tmp, 'bad-data');
  for (const sub of ['images', 'annotations']) {
    fs.mkdirSync(path.join(bad, sub), { recursive: true });
    fs.writeFileSync(path.join(bad, sub, 'shard-000000.tar'), 'not a tar file');
  }
  fs.cpSync(path.join(data, 'tokenizer'), path.join(bad, 'tokenizer'), { recursive: true });
  const run = start('train', '--preset', 'micro', '--data', bad, '--out', path.join(tmp, 'train-bad'), '--steps', '2', '--batch', '1');
  const r = await ends(run);
  assert.equal(r.code, 2, run.stderr);
  assert.match(run.stderr, /ps3: .*no usable sample/);
});

test('eval cost: SIGTERM while a measurement runs ends the command and its child process', async () => {
  const run = start('eval', 'cost', '--preset', 'micro', '--resolutions', '112,224', '--methods', 'pretrain,ps3', '--repeats', '50', '--out', path.join(tmp, 'cost'));
  await waitFor(run, /^eval cost: /m);
  let children: number[] = [];
  const t0 = Date.now();
  while (children.length === 0 && Date.now() - t0 < ENDS_WITHIN_MS) {
    children = childrenOf(run.child.pid!);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(children.length > 0, `no measurement process started: ${run.stderr}`);
  run.child.kill('SIGTERM');
  assert.equal((await ends(run)).signal, 'SIGTERM');
  const t1 = Date.now();
  while (children.some(alive) && Date.now() - t1 < 30_000) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(children.filter(alive), [], 'a measurement process outlived the command');
  assert.ok(!fs.existsSync(path.join(tmp, 'cost', 'cost.json')));
});

test('demo: SIGINT while synthesising data and SIGTERM while training end the process', async () => {
  const common = ['--quick', '--preset', 'micro', '--train-images', '2', '--batch', '1', '--questions', '1', '--retrieval', '1', '--candidates', '2', '--cost-resolutions', '112'];
  const one = start('demo', ...common, '--out', path.join(tmp, 'demo-1'));
  await waitFor(one, /data +synthesising/);
  one.child.kill('SIGINT');
  assert.equal((await ends(one)).signal, 'SIGINT');
  const two = start('demo', ...common, '--train-minutes', '10', '--out', path.join(tmp, 'demo-2'));
  await waitFor(two, /train +pre-training/);
  two.child.kill('SIGTERM');
  assert.equal((await ends(two)).signal, 'SIGTERM');
  assert.ok(!fs.existsSync(path.join(tmp, 'demo-2', 'report.json')));
});

test('data synth: SIGTERM mid-way ends the process', async () => {
  const run = start('data', 'synth', '--out', path.join(tmp, 'synth'), '--count', '500', '--size', '1512');
  await waitFor(run, /^synth: /m);
  run.child.kill('SIGTERM');
  assert.equal((await ends(run)).signal, 'SIGTERM');
});
