/**
 * VILA-HD through the CLI with micro models: train-mllm killed and resumed follows the
 * uninterrupted loss curve; a second method joins the same folder; eval qa answers with the LM;
 * ask answers and draws where it looked; bad input exits 2 with one line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { killAfterMetricLines } from '../killMidRun.js';
import { initEngine } from '../../src/tensor/engine.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { loadPixelValues } from '../../src/io/image.js';
import { isUserError } from '../../src/errors.js';
import { answerQuestion } from '../../src/mllm/answer.js';
import { disposeVilaHd, loadVilaHd } from '../../src/mllm/model.js';
import { trainVilaHd, type TrainVilaOptions } from '../../src/mllm/train.js';
import { assertBadInput, CLI, runCli, writeMicroPs3 } from './helpers.js';
import { writtenAnswer } from '../../src/cli/ask.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-cli-'));
const ps3 = path.join(tmp, 'ps3');
const cache = path.join(tmp, 'cache');
const bench = path.join(tmp, 'bench');
const STEPS = 6;
const trainArgs = (out: string, method = 'ps3'): string[] => [
  CLI, 'train-mllm', '--ps3', ps3, '--out', out, '--method', method, '--preset', 'micro', '--steps', String(STEPS), '--batch', '2', '--images', '3',
  '--save-every', '2', '--warmup', '2', '--lr', '2e-3', '--seed', '5', '--data-seed', '17', '--cache', cache,
];


function losses(out: string, method = 'ps3'): Array<{ step: number; loss: number }> {
  return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { method: string; step: number; loss: number }).filter((m) => m.method === method);
}

before(async () => {
  await initEngine({});
  await writeMicroPs3(ps3, 9);
  const r = runCli(['eval', 'make-4k', '--out', bench, '--count', '6', '--size', '224', '--lowres', '56', '--seed', '1000000']);
  assert.equal(r.status, 0, r.stderr);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('train-mllm runs to the end; the same run again is refused; a second method joins the folder', () => {
  const a = path.join(tmp, 'a');
  const ra = spawnSync(process.execPath, trainArgs(a), { encoding: 'utf8' });
  assert.equal(ra.status, 0, ra.stderr);
  const full = losses(a);
  assert.equal(full.length, STEPS);
  assert.ok(full.every((m) => Number.isFinite(m.loss)));

  // the same run again without --resume is refused; another method joins
  assertBadInput(trainArgs(a).slice(1), /already holds a ps3 run: pass --resume/);
  // a resume keeps the run's data: another scene count or evidence share is refused, naming it
  const more = trainArgs(a).slice(1).map((x) => (x === '3' ? '4' : x));
  assertBadInput([...more, '--resume'], /--resume: this ps3 run was made with --images 3, got 4/);
  assertBadInput([...trainArgs(a).slice(1), '--resume', '--evidence-fraction', '0.5'], /made with --evidence-fraction \(not given\), got 0.5/);
  assertBadInput([...trainArgs(a).slice(1), '--resume', '--decoy-looks', '0.5'], /made with --decoy-looks \(not given\), got 0.5/);
  const rl = spawnSync(process.execPath, trainArgs(a, 'lowres'), { encoding: 'utf8' });
  assert.equal(rl.status, 0, rl.stderr);
  const config = JSON.parse(fs.readFileSync(path.join(a, 'checkpoint', 'config.json'), 'utf8')) as { methods: string[]; ps3_model: string };
  assert.deepEqual(config.methods, ['ps3', 'lowres']);
  assert.equal(path.resolve(a, 'checkpoint', config.ps3_model), ps3);
  assert.equal(losses(a, 'lowres').length, STEPS);
  assert.equal(losses(a).length, STEPS, 'the ps3 metrics are kept');
});

test('train-mllm killed mid-run and resumed follows the uninterrupted loss curve', async () => {
  const a = path.join(tmp, 'a');
  const full = losses(a);
  const b = path.join(tmp, 'b');
  const killedAt = await killAfterMetricLines(trainArgs(b), b, 3);
  assert.ok(killedAt < STEPS);
  const rb = spawnSync(process.execPath, [...trainArgs(b), '--resume'], { encoding: 'utf8' });
  assert.equal(rb.status, 0, rb.stderr);
  const resumed = losses(b);
  assert.deepEqual(resumed.map((m) => m.step), full.map((m) => m.step));
  resumed.forEach((m, i) => assert.ok(Math.abs(m.loss - full[i]!.loss) < 1e-5, `step ${m.step}: ${m.loss} vs ${full[i]!.loss}`));
});

test('train-mllm --decoy-looks reads the same token cache, other looks, and resumes on its own curve', async () => {
  const plain = losses(path.join(tmp, 'a'));
  const caches = fs.readdirSync(cache).sort();
  const args = (out: string): string[] => [...trainArgs(out), '--decoy-looks', '1'];
  const d = path.join(tmp, 'decoy');
  const rd = spawnSync(process.execPath, args(d), { encoding: 'utf8' });
  assert.equal(rd.status, 0, rd.stderr);
  assert.deepEqual(fs.readdirSync(cache).sort(), caches, 'no new cache');
  const full = losses(d);
  assert.equal(full.length, STEPS);
  assert.ok(full.some((m, i) => Math.abs(m.loss - plain[i]!.loss) > 1e-4), 'the decoy looks change the losses');
  const e = path.join(tmp, 'decoy-resumed');
  assert.ok((await killAfterMetricLines(args(e), e, 3)) < STEPS);
  const re = spawnSync(process.execPath, [...args(e), '--resume'], { encoding: 'utf8' });
  assert.equal(re.status, 0, re.stderr);
  losses(e).forEach((m, i) => assert.ok(Math.abs(m.loss - full[i]!.loss) < 1e-5, `step ${m.step}: ${m.loss} vs ${full[i]!.loss}`));
});

test('eval qa with a VILA-HD folder answers with its LMs and reports the usual fields plus evidence recall', () => {
  const model = path.join(tmp, 'a', 'checkpoint');
  const out = path.join(tmp, 'qa.json');
  const r = runCli(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'ps3,lowres', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(out, 'utf8')) as { answered_by: string; reports: Array<Record<string, unknown>> };
  assert.equal(report.answered_by, 'vila-hd');
  const [p, l] = report.reports as [Record<string, number | null | object>, Record<string, number | null | object>];
  for (const field of ['accuracy', 'chance', 'per_category', 'tokens_median', 'ms_per_question_median']) assert.ok(field in p && p[field] !== undefined, field);
  assert.equal(p['answered'], 6);
  assert.ok((p['tokens_median'] as number) > (l['tokens_median'] as number), 'ps3 reads more tokens than low-res');
  assert.equal(l['tokens_median'], 16);
  const recall = p['evidence_recall_mean'] as number;
  assert.ok(recall >= 0 && recall <= 1);
  assert.ok(typeof p['random_recall_mean'] === 'number');
  assert.equal((p['settings'] as Record<string, unknown>)['evidence_looks'], false);
  // the evidence box forced into the first look: its patches are chosen (recall near 1, above the prompt's)
  const forcedOut = path.join(tmp, 'qa-forced.json');
  const f = runCli(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'ps3', '--evidence-looks', '--out', forcedOut]);
  assert.equal(f.status, 0, f.stderr);
  const forced = (JSON.parse(fs.readFileSync(forcedOut, 'utf8')) as { reports: Array<Record<string, unknown>> }).reports[0]!;
  assert.equal((forced['settings'] as Record<string, unknown>)['evidence_looks'], true);
  assert.ok((forced['evidence_recall_mean'] as number) > 0.8 && (forced['evidence_recall_mean'] as number) >= recall, String(forced['evidence_recall_mean']));
  assert.equal(runCli(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'lowres', '--evidence-looks']).status, 2);
  // the forced look cut to the evidence box's tokens: the same look, fewer tokens for the LM, other scores
  const onlyOut = path.join(tmp, 'qa-evidence-only.json');
  const e = runCli(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'ps3', '--evidence-looks', '--evidence-only', '--out', onlyOut]);
  assert.equal(e.status, 0, e.stderr);
  const only = (JSON.parse(fs.readFileSync(onlyOut, 'utf8')) as { reports: Array<Record<string, unknown>> }).reports[0]!;
  assert.deepEqual([(only['settings'] as Record<string, unknown>)['evidence_only'], (forced['settings'] as Record<string, unknown>)['evidence_only']], [true, false]);
  assert.equal(only['evidence_recall_mean'], forced['evidence_recall_mean'], 'the same look');
  assert.ok((only['lm_tokens_median'] as number) < (forced['lm_tokens_median'] as number), `${String(only['lm_tokens_median'])} < ${String(forced['lm_tokens_median'])}`);
  const scoresOf = (r: Record<string, unknown>): string[] => (r['predictions'] as Array<{ scores: number[] }>).map((x) => x.scores.join());
  assert.ok(scoresOf(only).some((x, i) => x !== scoresOf(forced)[i]), 'the LM reads other tokens');
  const bad = runCli(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'ps3', '--evidence-only']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--evidence-only cuts the forced look to the evidence box: give --evidence-looks too/);
  // the image-swap control: the same questions asked of other scenes' images get other scores
  const swappedOut = path.join(tmp, 'qa-swapped.json');
  const sw = runCli(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'lowres', '--other-image', '--out', swappedOut]);
  assert.equal(sw.status, 0, sw.stderr);
  assert.match(sw.stderr, /--other-image: each question is asked of another scene's image/);
  const swapped = JSON.parse(fs.readFileSync(swappedOut, 'utf8')) as { other_image: boolean; reports: Array<{ answered: number; predictions: Array<{ scores: number[] }> }> };
  assert.equal(swapped.other_image, true);
  assert.equal(swapped.reports[0]!.answered, 6);
  const own = (l['predictions'] as Array<{ scores: number[] }>).map((x) => x.scores.join());
  assert.ok(swapped.reports[0]!.predictions.some((x, i) => x.scores.join() !== own[i]), 'another image changes the LM\'s scores');
  assertBadInput(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'ps3', '--evidence-looks', '--other-image'], /--evidence-looks forces each question's own evidence box, which --other-image takes away/);
});

test('eval qa --hint-prompts aims the LM\'s looks with the text tower\'s prompt of each item\'s prompt field', () => {
  const model = path.join(tmp, 'a', 'checkpoint');
  const items = path.join(bench, 'questions.jsonl');
  const run = (extra: string[], out: string): Record<string, unknown> => {
    const r = runCli(['eval', 'qa', items, '--model', model, '--method', 'ps3', '--looks', '1', '--out', out, ...extra]);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(fs.readFileSync(out, 'utf8')) as { reports: Array<Record<string, unknown>> }).reports[0]!;
  };
  const head = run([], path.join(tmp, 'qa-head.json'));
  const hinted = run(['--hint-prompts'], path.join(tmp, 'qa-hint.json'));
  assert.deepEqual([(head['settings'] as Record<string, unknown>)['hint_prompts'], (hinted['settings'] as Record<string, unknown>)['hint_prompts']], [false, true]);
  assert.equal(hinted['answered'], 6);
  // another prompt chooses other patches, so the LM reads other tokens
  const scoresOf = (r: Record<string, unknown>): string[] => (r['predictions'] as Array<{ scores: number[] }>).map((x) => x.scores.join());
  assert.ok(scoresOf(hinted).some((x, i) => x !== scoresOf(head)[i]), 'the hint prompts change the looks');
  assertBadInput(['eval', 'qa', items, '--model', model, '--method', 'lowres', '--hint-prompts'], /--hint-prompts aims ps3's looks: give --method ps3/);
  assertBadInput(['eval', 'qa', items, '--model', model, '--method', 'ps3', '--hint-prompts', '--evidence-looks'], /--hint-prompts aims the looks, --evidence-looks forces them: give one of them/);
  assertBadInput(['eval', 'qa', items, '--model', ps3, '--method', 'ps3', '--hint-prompts'], /--hint-prompts needs a VILA-HD --model/);
  const bare = path.join(bench, 'no-prompts.jsonl');
  fs.writeFileSync(bare, fs.readFileSync(items, 'utf8').split('\n').filter(Boolean).map((l) => {
    const { prompt: _, ...item } = JSON.parse(l) as Record<string, unknown>;
    return JSON.stringify(item);
  }).join('\n'));
  assertBadInput(['eval', 'qa', bare, '--model', model, '--method', 'ps3', '--hint-prompts'], /--hint-prompts: no item of .*no-prompts\.jsonl has a "prompt" field/);
});

test('ask answers, says the tokens used and draws where it looked; a JSONL of questions streams', () => {
  const model = path.join(tmp, 'a', 'checkpoint');
  const out = path.join(tmp, 'ask');
  const image = path.join(bench, 'images', fs.readdirSync(path.join(bench, 'images'))[0]!);
  const r = runCli(['ask', image, 'What does the red sign read?', '--model', model, '--options', 'K3|K8|X3', '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const row = JSON.parse(r.stdout.trim()) as { answer: string; trunk_tokens: number; visual_tokens: number; pictures: string[] };
  assert.ok(['K3', 'K8', 'X3'].includes(row.answer));
  assert.ok(row.trunk_tokens > 16 && row.visual_tokens > 0);
  assert.equal(row.pictures.length, 2);
  for (const p of row.pictures) assert.ok(fs.statSync(p).size > 100);
  const many = runCli(['ask', path.join(bench, 'questions.jsonl'), '--model', model, '--method', 'lowres', '--out', path.join(tmp, 'ask2')]);
  assert.equal(many.status, 0, many.stderr);
  assert.equal(fs.readFileSync(path.join(tmp, 'ask2', 'answers.jsonl'), 'utf8').trim().split('\n').length, 6);
});

test('ask\'s text line: a written answer as it is; an empty one says the LM ended at once and points to --options', () => {
  assert.equal(writtenAnswer('red', false), 'red');
  assert.equal(writtenAnswer('K3', true), 'K3');
  assert.match(writtenAnswer('', false), /^\(no words: the LM ended its answer at once; .*--options/);
  // with options the answer is always one of them, never empty: nothing to explain
  assert.equal(writtenAnswer('', true), '');
});

test('without options the LM writes its answer; a method the folder lacks is refused', async () => {
  const model = loadVilaHd(path.join(tmp, 'a', 'checkpoint'));
  try {
    const image = path.join(bench, 'images', fs.readdirSync(path.join(bench, 'images'))[0]!);
    const pv = await loadPixelValues(image, { size: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const pixels = { data: pv.pixels, batch: 1, height: 224, width: 224 };
    const a = await answerQuestion(model, 'ps3', pixels, 'What does the red sign read?', undefined, { maxNewTokens: 3 });
    assert.equal(a.predicted, -1);
    assert.ok(a.text.split(' ').length <= 3);
    assert.ok(a.selection && a.selection.maps.length === 2);
    await assert.rejects(answerQuestion(model, 'anyres', pixels, 'What is it?', undefined), (e: unknown) => isUserError(e) && /holds no LM for method "anyres"/.test(e.message));
  } finally {
    disposeVilaHd(model);
  }
});

test('train-mllm --tune-trunk trains PS3\'s last block with the LM: the folder keeps a PS3 whose earlier weights are the original\'s', () => {
  const t = path.join(tmp, 'tuned');
  const args = [...trainArgs(t), '--tune-trunk', '1', '--trunk-lr', '1e-2'];
  const caches = fs.existsSync(cache) ? fs.readdirSync(cache) : [];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(losses(t).length, STEPS);
  assert.equal(fs.readdirSync(cache).filter((d) => !caches.includes(d)).length, 1, 'a cache of the states entering the block');
  const config = JSON.parse(fs.readFileSync(path.join(t, 'checkpoint', 'config.json'), 'utf8')) as { ps3_model: string };
  assert.equal(config.ps3_model, 'ps3');
  const before = readSafetensors(path.join(ps3, 'model.safetensors'));
  const after = readSafetensors(path.join(t, 'checkpoint', 'ps3', 'model.safetensors'));
  const same = (k: string): boolean => before.get(k)!.data.every((v, i) => v === after.get(k)!.data[i]);
  assert.ok(same('vision_model.trunk.blocks.0.mlp.fc2.weight') && same('vision_model.trunk.patch_embed.proj.weight'), 'the frozen part is the original');
  assert.ok(!same('vision_model.trunk.blocks.1.mlp.fc2.weight') && !same('vision_model.trunk.norm.weight'), 'the last block and the final norm learned');
  assertBadInput([...args.slice(1, -4), '--resume'], /made with --tune-trunk 1, got \(not given\)/);
  // another method tuning the trunk would change the tokens the ps3 LM reads
  assertBadInput([...trainArgs(t, 'lowres').slice(1), '--tune-trunk', '1'], /--tune-trunk changes the tokens every method of the folder reads, and .* holds ps3 trained on the PS3 as it is/);
  assertBadInput([...trainArgs(path.join(tmp, 'none')).slice(1), '--tune-trunk', '2'], /--tune-trunk 2: PS3's trunk has 2 blocks/);
  assertBadInput([...trainArgs(path.join(tmp, 'none')).slice(1), '--tune-trunk', 'last'], /--tune-trunk/);
  assert.ok(!fs.existsSync(path.join(tmp, 'none')));
});

test('train-mllm refuses bad options before any work', async () => {
  const base: TrainVilaOptions = {
    ps3, out: path.join(tmp, 'none'), method: 'ps3', preset: 'micro', steps: 2, batch: 1, lr: 1e-3, warmup: 0, clip: 1, seed: 0, dataSeed: 0, images: 1,
    looks: 1, selectionWeight: 1, saveEvery: 1, maxSeconds: 0, resume: false, embedPs3: false,
  };
  const { ps3: _omit, ...noPs3 } = base;
  const cases: Array<[TrainVilaOptions, RegExp]> = [
    [noPs3, /give --ps3 DIR/],
    [{ ...base, dataSeed: 1_000_000 }, /--data-seed must be an integer in \[0, 1000000\)/],
    [{ ...base, resume: true }, /--resume: no checkpoint/],
    [{ ...base, method: 'dense' as TrainVilaOptions['method'] }, /--method must be one of/],
    [{ ...base, steps: 0 }, /--steps must be a positive integer/],
    [{ ...base, ps3: path.join(tmp, 'nowhere') }, /model folder not found/],
    [{ ...base, looks: 2, minLooks: 3 }, /--min-looks must be an integer from 1 to --looks \(2\), got 3/],
    [{ ...base, method: 'lowres', minLooks: 1 }, /--min-looks sets PS3's training looks, which only --method ps3 has/],
    [{ ...base, perCategory: 0 }, /--per-category must be an integer from 1 to 16, got 0/],
    [{ ...base, evidenceFraction: 1.5 }, /--evidence-fraction must be from 0 to 1, got 1.5/],
    [{ ...base, method: 'lowres', evidenceFraction: 0.5 }, /--evidence-fraction sets how PS3's training looks are aimed, which only --method ps3 has/],
    [{ ...base, decoyLooks: 2 }, /--decoy-looks must be from 0 to 1, got 2/],
    [{ ...base, method: 'lowres', decoyLooks: 0.5 }, /--decoy-looks swaps PS3's looks between questions, which only --method ps3 has/],
    [{ ...base, task: 'captions', decoyLooks: 0.5 }, /--decoy-looks swaps the looks of the qa task's questions/],
    [{ ...base, tuneTrunk: 0 }, /--tune-trunk must be a positive integer \(blocks\), got 0/],
    [{ ...base, method: 'anyres', tuneTrunk: 1 }, /--tune-trunk trains PS3's last blocks for --method ps3 or lowres \(got --method anyres/],
    [{ ...base, task: 'mixed', tuneTrunk: 1 }, /--tune-trunk is for the qa task/],
    [{ ...base, looks: 2, tuneTrunk: 1 }, /one look a question: give --looks 1 \(got --looks 2\)/],
    [{ ...base, trunkLr: 1e-3 }, /--trunk-lr sets the learning rate of PS3's tuned blocks: give --tune-trunk too/],
  ];
  for (const [o, pattern] of cases) await assert.rejects(trainVilaHd(o), (e: unknown) => isUserError(e) && pattern.test(e.message), String(pattern));
  assert.ok(!fs.existsSync(path.join(tmp, 'none', 'checkpoint')));
});

test('bad input: empty or too long question, an image it cannot take, a VILA-HD folder with its PS3 or LM part missing or misshaped', () => {
  const model = path.join(tmp, 'a', 'checkpoint');
  const image = path.join(bench, 'images', fs.readdirSync(path.join(bench, 'images'))[0]!);
  assertBadInput([...trainArgs(path.join(tmp, 'none')).slice(1), '--box-loss', 'mean'], /--box-loss must be bce, balanced or softmax/);
  assertBadInput([...trainArgs(path.join(tmp, 'none')).slice(1), '--per-category', '20'], /--per-category must be from 1 to 16/);
  assertBadInput([...trainArgs(path.join(tmp, 'none')).slice(1), '--evidence-fraction', '-0.1'], /--evidence-fraction must be from 0 to 1/);
  assertBadInput([...trainArgs(path.join(tmp, 'none')).slice(1), '--decoy-looks', 'half'], /--decoy-looks/);
  assertBadInput(['ask', image, '  ', '--model', model], /the question is empty/);
  assertBadInput(['ask', image, 'what '.repeat(300), '--model', model], /longer than the LM's context/);
  const garbage = path.join(tmp, 'garbage.png');
  fs.writeFileSync(garbage, 'not an image');
  assertBadInput(['ask', garbage, 'What is it?', '--model', model], /garbage\.png/);

  const broken = path.join(tmp, 'broken');
  fs.cpSync(model, broken, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(broken, 'config.json'), JSON.stringify({ ...config, ps3_model: '../no-such-ps3' }));
  assertBadInput(['ask', image, 'What is it?', '--model', broken], /field ps3_model: .*no-such-ps3 is not a PS3 model folder/);
  fs.writeFileSync(path.join(broken, 'config.json'), JSON.stringify({ ...config, ps3_model: path.relative(broken, ps3) }));
  const arrays = readSafetensors(path.join(model, 'model.safetensors'));
  arrays.set('ps3.lm.blocks.1.mlp.fc1.weight', { shape: [2, 2], data: new Float32Array(4) });
  writeSafetensors(path.join(broken, 'model.safetensors'), arrays);
  assertBadInput(['eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', broken, '--method', 'ps3'], /"ps3\.lm\.blocks\.1\.mlp\.fc1\.weight" has shape \[2,2\]/);
  // a PS3 part with a missing key (checked in-process: the CLI path is the same load)
  const badPs3 = path.join(tmp, 'bad-ps3');
  fs.cpSync(ps3, badPs3, { recursive: true });
  const ps3Arrays = readSafetensors(path.join(ps3, 'model.safetensors'));
  ps3Arrays.delete('vision_model.prior_prompt');
  writeSafetensors(path.join(badPs3, 'model.safetensors'), ps3Arrays);
  fs.cpSync(model, broken, { recursive: true });
  fs.writeFileSync(path.join(broken, 'config.json'), JSON.stringify({ ...config, ps3_model: path.relative(broken, badPs3) }));
  assert.throws(() => loadVilaHd(broken), (e: unknown) => isUserError(e) && /missing key "vision_model\.prior_prompt"/.test(e.message));
});
