/**
 * A run killed at an arbitrary moment and resumed follows the loss curve of an uninterrupted run
 * with the same seed (the `micro` preset on a few synthetic 224-px scenes).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { killAfterMetricLines } from '../killMidRun.js';
import { readSafetensors } from '../../src/io/safetensors.js';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-resume-'));
const data = path.join(tmp, 'data');
const STEPS = '14';
const trainArgs = (out: string): string[] => [CLI, 'train', '--preset', 'micro', '--data', data, '--out', out, '--steps', STEPS, '--batch', '2', '--save-every', '2', '--warmup', '2', '--lr', '1e-3', '--seed', '7'];

interface Metric {
  step: number;
  loss: number;
  contrastive_loss: number;
  posterior_box_loss: number;
  lr: number;
}

function metrics(out: string): Metric[] {
  return fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Metric);
}

before(() => {
  const r = spawnSync(process.execPath, [CLI, 'data', 'synth', '--out', data, '--count', '8', '--size', '224', '--per-shard', '4', '--seed', '3'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('killed mid-run and resumed, training follows the uninterrupted loss curve', async () => {
  const a = path.join(tmp, 'a');
  const ra = spawnSync(process.execPath, trainArgs(a), { encoding: 'utf8' });
  assert.equal(ra.status, 0, ra.stderr);
  const full = metrics(a);
  assert.equal(full.length, Number(STEPS));

  const b = path.join(tmp, 'b');
  const killedAt = await killAfterMetricLines(trainArgs(b), b, 5);
  assert.ok(killedAt < Number(STEPS));

  const rb = spawnSync(process.execPath, [...trainArgs(b), '--resume'], { encoding: 'utf8' });
  assert.equal(rb.status, 0, rb.stderr);
  const resumed = metrics(b);
  assert.deepEqual(resumed.map((m) => m.step), full.map((m) => m.step));
  resumed.forEach((m, i) => {
    const ref = full[i]!.loss;
    assert.ok(Math.abs(m.loss - ref) <= 1e-4 * Math.max(1, Math.abs(ref)), `step ${m.step}: resumed loss ${m.loss} vs uninterrupted ${ref}`);
  });
  // the resumed checkpoint is a model folder like a released one
  const cp = path.join(b, 'checkpoint');
  for (const f of ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json', 'tokenizer.json']) assert.ok(fs.existsSync(path.join(cp, f)), f);
});

test('--stop-at: a run stopped at a step with a checkpoint, then resumed, follows the uninterrupted curve (the schedule stays that of --steps)', () => {
  const full = metrics(path.join(tmp, 'a')).slice(0, Number(STEPS));
  const h = path.join(tmp, 'h');
  const r = spawnSync(process.execPath, [...trainArgs(h), '--stop-at', '5'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /trained to step 5;/);
  assert.equal(metrics(h).length, 5);
  const state = JSON.parse(fs.readFileSync(path.join(h, 'checkpoint', 'trainer_state.json'), 'utf8')) as { step: number };
  assert.equal(state.step, 5);
  const again = spawnSync(process.execPath, [...trainArgs(h), '--resume', '--stop-at', '4'], { encoding: 'utf8' });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /^ps3: --stop-at 4: the run is already at step 5 /);
  const rest = spawnSync(process.execPath, [...trainArgs(h), '--resume'], { encoding: 'utf8' });
  assert.equal(rest.status, 0, rest.stderr);
  const resumed = metrics(h);
  assert.deepEqual(resumed.map((m) => m.step), full.map((m) => m.step));
  resumed.forEach((m, i) => {
    const ref = full[i]!;
    assert.equal(m.lr, ref.lr, `step ${m.step}: learning rate`);
    assert.ok(Math.abs(m.loss - ref.loss) <= 1e-4 * Math.max(1, Math.abs(ref.loss)), `step ${m.step}: loss ${m.loss} vs uninterrupted ${ref.loss}`);
  });
  const beyond = spawnSync(process.execPath, [...trainArgs(path.join(tmp, 'h2')), '--stop-at', '15'], { encoding: 'utf8' });
  assert.equal(beyond.status, 2);
  assert.match(beyond.stderr, /^ps3: --stop-at must be at most --steps/);
});

test('a kill between the two renames of a checkpoint swap leaves the previous checkpoint usable', () => {
  const a = path.join(tmp, 'a');
  // the state a kill right after "checkpoint -> .checkpoint-outgoing" leaves behind
  fs.renameSync(path.join(a, 'checkpoint'), path.join(a, '.checkpoint-outgoing'));
  const r = spawnSync(process.execPath, [...trainArgs(a).map((x) => (x === STEPS ? String(Number(STEPS) + 1) : x)), '--resume'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(a, 'checkpoint', 'model.safetensors')));
  assert.equal(metrics(a).at(-1)!.step, Number(STEPS) + 1);
});

test('training refuses to overwrite a run without --resume, and bad options exit 2 naming them', () => {
  const a = path.join(tmp, 'a');
  const r = spawnSync(process.execPath, trainArgs(a), { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /already holds a checkpoint/);
  const bad = spawnSync(process.execPath, [CLI, 'train', '--preset', 'micro', '--data', data, '--out', path.join(tmp, 'c'), '--batch', '-1'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--batch/);
  assert.doesNotMatch(bad.stderr, /at .*\.js/);
});

test('--regions: a run trains with them, and a resume with another count is refused (its data stream would differ)', () => {
  const d = path.join(tmp, 'd');
  const args = [CLI, 'train', '--preset', 'micro', '--data', data, '--out', d, '--steps', '2', '--batch', '2', '--save-every', '1', '--seed', '7', '--global-caption-prob', '0', '--regions', '4'];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(metrics(d).length, 2);
  const again = spawnSync(process.execPath, [...args.slice(0, -2), '--steps', '3', '--resume'], { encoding: 'utf8' });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /--resume: --regions 1 differs from the run's 4/);
  const bad = spawnSync(process.execPath, [...args.slice(0, -1), '0'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--regions must be at least 1/);
  // the regions' captions drive selection too: a selection-only run trains; without other regions it is refused
  const sel = path.join(tmp, 'd-sel');
  const withSel = [...args.slice(1, -2), '--regions', '3', '--region-selection', '--loss-weights', '0,1,1'].map((a) => (a === d ? sel : a));
  const rs = spawnSync(process.execPath, [CLI, ...withSel], { encoding: 'utf8' });
  assert.equal(rs.status, 0, rs.stderr);
  assert.ok(metrics(sel).every((m) => m.posterior_box_loss > 0 && m.contrastive_loss === 0), JSON.stringify(metrics(sel)));
  const noRegions = spawnSync(process.execPath, [CLI, ...withSel.slice(0, -5), '--region-selection'], { encoding: 'utf8' });
  assert.equal(noRegions.status, 2);
  assert.match(noRegions.stderr, /^ps3: --region-selection needs other regions to select: give --regions 2 or more\n$/);
});

test('--reinit text-tower,pool-head, and prompt-proj: those groups start from fresh random weights, everything else as --init gives it', () => {
  const init = path.join(tmp, 'a', 'checkpoint');
  const e = path.join(tmp, 'e');
  const r = spawnSync(process.execPath, [CLI, 'train', '--init', init, '--data', data, '--out', e, '--steps', '1', '--batch', '2', '--save-every', '1', '--seed', '5', '--lr', '1e-12', '--warmup', '0', '--reinit', 'text-tower,pool-head'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /text-tower, pool-head drawn afresh \(seed 5\)/);
  const before = readSafetensors(path.join(init, 'model.safetensors'));
  const after = readSafetensors(path.join(e, 'checkpoint', 'model.safetensors'));
  const maxDiff = (k: string): number => {
    const a = before.get(k)!.data as Float32Array;
    const b = after.get(k)!.data as Float32Array;
    return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  };
  for (const k of before.keys()) {
    const fresh = (k.startsWith('text_model.') && !k.startsWith('text_model.prompt_proj.')) || k.startsWith('vision_model.trunk.attn_pool.');
    // an lr of 1e-12 moves nothing visibly: what differs was drawn afresh
    if (fresh && !/norm.*weight|norm.*bias|\.bias$/.test(k)) assert.ok(maxDiff(k) > 1e-3, `${k} was not drawn afresh`);
    if (!fresh) assert.ok(maxDiff(k) < 1e-6, `${k} changed (${maxDiff(k)})`);
  }
  // prompt-proj: the prompt projection alone
  const g = path.join(tmp, 'g');
  const rp = spawnSync(process.execPath, [CLI, 'train', '--init', init, '--data', data, '--out', g, '--steps', '1', '--batch', '2', '--save-every', '1', '--seed', '5', '--lr', '1e-12', '--warmup', '0', '--reinit', 'prompt-proj'], { encoding: 'utf8' });
  assert.equal(rp.status, 0, rp.stderr);
  const afterPrompt = readSafetensors(path.join(g, 'checkpoint', 'model.safetensors'));
  for (const k of before.keys()) {
    const a = before.get(k)!.data as Float32Array;
    const d = (afterPrompt.get(k)!.data as Float32Array).reduce((m, v, i) => Math.max(m, Math.abs(v - a[i]!)), 0);
    if (/^text_model\.prompt_proj\..*fc\d\.weight$/.test(k)) assert.ok(d > 1e-3, `${k} was not drawn afresh`);
    if (!k.startsWith('text_model.prompt_proj.')) assert.ok(d < 1e-6, `${k} changed (${d})`);
  }
  const bad = spawnSync(process.execPath, [CLI, 'train', '--init', init, '--data', data, '--out', path.join(tmp, 'f'), '--steps', '1', '--batch', '2', '--reinit', 'text'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--reinit takes a comma-separated list of text-tower, pool-head, prompt-proj/);
});
