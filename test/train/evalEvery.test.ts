/**
 * `ps3 train --eval-every N`: every N steps a held-out check (selection recall and retrieval, PS3
 * against low-res) lands in metrics.jsonl as val_* numbers, and only on those steps.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-evalevery-'));
const data = path.join(tmp, 'data');

before(() => {
  const r = spawnSync(process.execPath, [CLI, 'data', 'synth', '--out', data, '--count', '4', '--size', '224', '--per-shard', '2', '--seed', '5'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('val_* metrics every N steps, in [0, 1] (the prompt cosine in [-1, 1])', () => {
  const out = path.join(tmp, 'run');
  const r = spawnSync(process.execPath, [CLI, 'train', '--preset', 'micro', '--data', data, '--out', out, '--steps', '2', '--batch', '2', '--eval-every', '2', '--eval-scenes', '3'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | null>);
  assert.equal(lines.length, 2);
  const keys = ['val_topdown_recall', 'val_bottomup_recall', 'val_random_recall', 'val_retrieval_ps3', 'val_retrieval_lowres', 'val_prompt_cosine'];
  lines.forEach((m) => {
    const evaluated = m['step']! % 2 === 0;
    for (const k of keys) {
      assert.equal(k in m, evaluated, `${k} at step ${m['step']}`);
      // a cosine may be negative
      const low = k === 'val_prompt_cosine' ? -1 : 0;
      if (evaluated) assert.ok(typeof m[k] === 'number' && m[k]! >= low && m[k]! <= 1 + 1e-6, `${k} = ${m[k]}`);
    }
  });
  assert.match(r.stderr, /step 2 held-out: topdown_recall/);
});

test('--eval-scenes below 3 is refused before training, one line, exit 2', () => {
  const out = path.join(tmp, 'refused');
  const r = spawnSync(process.execPath, [CLI, 'train', '--preset', 'micro', '--data', data, '--out', out, '--steps', '2', '--batch', '2', '--eval-every', '1', '--eval-scenes', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /--eval-scenes must be at least 3/);
  assert.equal(fs.existsSync(out), false);
});
