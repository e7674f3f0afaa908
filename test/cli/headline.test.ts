/**
 * The headline commands end to end through `ps3`, on the micro shape and tiny inputs: what each
 * writes, with the fields and files its documentation promises, and numbers that agree with
 * themselves (an accuracy is the mean of its predictions).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel } from '../../src/model/load.js';
import { PRESETS, presetConfig } from '../../src/model/presets.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { synthVocabulary, writeWordTokenizer } from '../../src/data/wordTokenizer.js';
import { writeMicroVila } from '../mllm/helpers.js';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-headline-'));
const modelDir = path.join(tmp, 'model');
const image = path.resolve('assets/sample-4k.jpg');
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

function ps3(...args: string[]): { stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, `ps3 ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

function isPng(file: string): boolean {
  return fs.readFileSync(file).subarray(0, 4).equals(PNG);
}

function mean(xs: readonly boolean[]): number {
  return xs.filter(Boolean).length / xs.length;
}

before(async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 3);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) arrays.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  fs.mkdirSync(modelDir);
  writeSafetensors(path.join(modelDir, 'model.safetensors'), arrays);
  fs.writeFileSync(path.join(modelDir, 'config.json'), JSON.stringify(PRESETS['micro']!.config));
  await writeWordTokenizer(modelDir, synthVocabulary(), { contextLength: model.config.text.contextLength });
  model.weights.dispose();
  tf.disposeVariables();
});

test('encode: the documented feature keys and one heat map PNG per high-res scale', () => {
  const out = path.join(tmp, 'encode');
  ps3('encode', image, '--model', modelDir, '--prompt', 'a red sign', '--out', out);
  const scales = presetConfig('micro').vision.scales;
  const high = scales.slice(1);
  const keys = [...readSafetensors(path.join(out, 'sample-4k.safetensors')).keys()].sort();
  const expected = ['last_hidden_state', 'pooled_output', ...high.flatMap((_, i) => [`selection_probs.${i}`, `bottomup_selection_probs.${i}`, `topdown_selection_probs.${i}`, `selection_maps.${i}`])].sort();
  assert.deepEqual(keys, expected);
  const pngs = fs.readdirSync(out).filter((f) => f.endsWith('.png')).sort();
  assert.deepEqual(pngs, high.map((s) => `sample-4k-scale${s}.png`).sort());
  for (const p of pngs) assert.ok(isPng(path.join(out, p)));
});

test('similarity: a score and a picture per text, in similarity.json and on stdout', () => {
  const out = path.join(tmp, 'similarity');
  const r = ps3('similarity', image, '--model', modelDir, '--text', 'a red sign', '--text', 'a blue circle', '--json', '--out', out);
  const printed = JSON.parse(r.stdout) as Array<{ text: string; cosine: number; probability: number; picture: string[] }>;
  const written = JSON.parse(fs.readFileSync(path.join(out, 'similarity.json'), 'utf8')) as { image: string; results: typeof printed };
  assert.deepEqual(written.results, printed);
  assert.deepEqual(printed.map((p) => p.text), ['a red sign', 'a blue circle']);
  for (const p of printed) {
    assert.ok(p.cosine >= -1 && p.cosine <= 1, String(p.cosine));
    assert.ok(p.probability >= 0 && p.probability <= 1, String(p.probability));
    assert.equal(p.picture.length, presetConfig('micro').vision.scales.length - 1);
    for (const f of p.picture) assert.ok(isPng(path.join(out, f)));
  }
  assert.notEqual(printed[0]!.cosine, printed[1]!.cosine);
});

test('bench encode: the JSON line\'s fields, cold, warm and repeated, with the dense ONNX pass', () => {
  const fields = ['ms_total', 'ms_decode', 'ms_lowres', 'ms_select', 'ms_highres', 'tokens', 'rss_peak_mb', 'ms_set_up', 'cpu_s_set_up', 'weights_mb'];
  const runs = [[], ['--warmup'], ['--repeats', '3']].map((extra) => JSON.parse(ps3('bench', 'encode', '--preset', 'micro', '--random-init', '--dense', '--json', ...extra).stdout.trim()) as Record<string, unknown>);
  for (const [i, r] of runs.entries()) {
    for (const f of fields) assert.ok(typeof r[f] === 'number' && Number.isFinite(r[f]) && (r[f] as number) >= 0, `${f}: ${String(r[f])}`);
    assert.equal(r['warmup'], i === 1);
    assert.equal(typeof r['huge_pages'], 'boolean');
    assert.equal(r['repeats'], i === 2 ? 3 : 1);
    if (i === 2) {
      // the report is the median run's, against the median dense pass
      const totals = r['runs_ms_total'] as number[];
      const dense = r['dense_runs_ms'] as number[];
      assert.equal(totals.length, 3);
      assert.equal(dense.length, 3);
      assert.equal(r['ms_total'], [...totals].sort((a, b) => a - b)[1]);
      assert.equal((r['dense'] as Record<string, number>)['ms'], [...dense].sort((a, b) => a - b)[1]);
    } else assert.equal(r['runs_ms_total'], undefined);
    assert.ok((r['tokens'] as number) > 0);
    assert.ok((r['ms_total'] as number) >= (r['ms_decode'] as number));
    const gflops = r['gflops'] as Record<string, number>;
    assert.ok(Number.isFinite(gflops['total']) && gflops['total']! > 0);
    const dense = r['dense'] as Record<string, number>;
    assert.ok(dense['ms']! > 0 && dense['tokens']! > 0);
    assert.ok(Math.abs((r['ratio_to_dense'] as number) - (r['ms_total'] as number) / dense['ms']!) < 1e-9);
    assert.ok(Math.abs((r['cpu_ratio_to_dense'] as number) - ((r['cpu_s'] as number) * 1000) / dense['cpu_ms']!) < 1e-9);
    // the stage profile: every part the micro preset runs, and the parts (with "other") make up the whole, in wall and CPU time
    const stages = r['stages'] as Record<string, { ms: number; cpu_ms: number; share: number; cpu_share: number }>;
    assert.deepEqual(Object.keys(stages).sort(), ['convnet', 'decode', 'gather', 'highResTrunk', 'lowResTrunk', 'other', 'patchEmbed', 'pool', 'posEmbed', 'resize', 'selectionHead']);
    const sum = (k: 'share' | 'cpu_share'): number => Object.values(stages).reduce((a, t) => a + t[k], 0);
    assert.ok(Math.abs(sum('share') - 1) < 1e-6 && Math.abs(sum('cpu_share') - 1) < 1e-6, `shares sum to ${sum('share')} and ${sum('cpu_share')}`);
  }
});

test('eval make-4k, qa and retrieval on tiny inputs: reports whose accuracy is the mean of their predictions', () => {
  const bench = path.join(tmp, 'bench');
  ps3('eval', 'make-4k', '--out', bench, '--count', '3', '--size', '1512');
  const questions = fs.readFileSync(path.join(bench, 'questions.jsonl'), 'utf8').trim().split('\n');
  assert.equal(questions.length, 3);
  const qaOut = path.join(tmp, 'qa', 'qa.json');
  const plot = path.join(tmp, 'qa', 'plots', 'accuracy.png');
  ps3('eval', 'qa', path.join(bench, 'questions.jsonl'), '--model', modelDir, '--method', 'ps3,lowres', '--out', qaOut, '--plot', plot);
  const qa = JSON.parse(fs.readFileSync(qaOut, 'utf8')) as { reports: Array<{ method: string; accuracy: number; predictions: Array<{ correct: boolean }> }> };
  assert.deepEqual(qa.reports.map((r) => r.method), ['ps3', 'lowres']);
  for (const r of qa.reports) {
    assert.equal(r.predictions.length, 3);
    assert.equal(r.accuracy, mean(r.predictions.map((p) => p.correct)));
  }
  assert.ok(isPng(plot));
  const retrievalOut = path.join(tmp, 'retrieval.json');
  ps3('eval', 'retrieval', '--model', modelDir, '--method', 'ps3,lowres', '--count', '2', '--candidates', '2', '--size', '448', '--out', retrievalOut);
  const retrieval = JSON.parse(fs.readFileSync(retrievalOut, 'utf8')) as { candidates: number; reports: Array<{ method: string; accuracy: number; predictions: Array<{ correct: boolean }> }> };
  assert.equal(retrieval.candidates, 2);
  for (const r of retrieval.reports) {
    assert.equal(r.predictions.length, 2);
    assert.equal(r.accuracy, mean(r.predictions.map((p) => p.correct)));
  }
});

test('eval cost on the micro shape: rows for each method, labelled random weights, and three plots', () => {
  const out = path.join(tmp, 'cost');
  ps3('eval', 'cost', '--preset', 'micro', '--resolutions', '112', '--methods', 'ps3,lowres', '--in-process', '--out', out);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'cost.json'), 'utf8')) as { rows: Array<{ method: string; status: string; ms: number; tokens: number }> };
  assert.deepEqual(report.rows.map((r) => [r.method, r.status]), [['ps3', 'ok'], ['lowres', 'ok']]);
  for (const r of report.rows) assert.ok(r.ms > 0 && r.tokens > 0);
  const pngs = fs.readdirSync(out).filter((f) => f.endsWith('.png'));
  assert.equal(pngs.length, 3);
});

test('demo --quick end to end: VILA-HD answers held-out questions, the scaling curves and pictures exist, the report records what ran', async () => {
  const out = path.join(tmp, 'demo');
  // a VILA-HD with ps3 and lowres LMs only: the report must say anyres and s2 are missing, not fail
  const vila = await writeMicroVila(path.join(tmp, 'vila'), modelDir, ['ps3', 'lowres'], 4);
  const { stdout } = ps3('demo', '--quick', '--preset', 'micro', '--vila', vila, '--out', out, '--train-minutes', '0.02', '--train-images', '2', '--batch', '1', '--questions', '6', '--scaling-questions', '3', '--retrieval', '2', '--candidates', '2', '--cost-resolutions', '112');
  type Point = { x: number; accuracy: number | null; tokens: number | null; questions: number };
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as {
    run: { command: string; options: Record<string, unknown>; quick: boolean; date: string; machine: { cores: number; cpu: string }; out_folder_reused: boolean; weights: Record<string, string>; load_average: { start: number[]; end: number[] }; wall_seconds: number };
    qa: Record<string, { accuracy: number | null; tokens: number | null; ms_per_question: number | null; status: string; answered?: number; correct?: number; interval95?: [number, number]; evidence_recall?: number | null; random_recall?: number | null; reason?: string }>;
    vila: { model: string; benchmark: { questions: number; seed: number; chance: number; options_only: number }; look: { question: string; pictures: string[] } | null; differences: Record<string, { difference: number; interval95: [number, number] }>; image_control: { method: string; own_image: number; other_image: number; questions: number }[] };
    scaling: { test_time: Point[]; resolution: Point[]; budget: number };
    retrieval: Record<string, number | null>;
    cost: Array<{ method: string; resolution: number; status: string }>;
    training: { steps: number };
    pictures: string[];
    seconds: Record<string, number>;
  };
  assert.match(report.run.command, /^ps3 demo --quick --preset micro /);
  assert.equal(report.run.quick, true);
  assert.equal(report.run.options['batch'], 1);
  assert.equal(report.run.options['preset'], 'micro');
  assert.equal(report.run.machine.cores, os.cpus().length);
  assert.equal(report.run.machine.cpu, os.cpus()[0]!.model.trim());
  assert.ok(Math.abs(Date.now() - Date.parse(report.run.date)) < 3_600_000);
  assert.equal(report.run.out_folder_reused, false);
  assert.equal(report.run.load_average.start.length, 3);
  assert.ok(report.run.wall_seconds > 0);
  assert.match(report.run.weights['cost']!, /random weights/);
  assert.match(report.run.weights['qa']!, /VILA-HD/);
  for (const s of ['retrieval', 'sample']) assert.match(report.run.weights[s]!, /trained here/);

  // qa: VILA-HD's methods answered every question; the ones its folder lacks are named missing
  assert.deepEqual(Object.keys(report.qa).sort(), ['anyres', 'lowres', 'ps3', 's2']);
  assert.equal(report.vila.benchmark.questions, 6);
  assert.ok(report.vila.benchmark.seed >= 1_000_000, 'held-out seed');
  assert.ok(report.vila.benchmark.options_only >= 0 && report.vila.benchmark.options_only <= 1, 'the options-only reader\'s accuracy');
  for (const m of ['ps3', 'lowres']) {
    const q = report.qa[m]!;
    assert.equal(q.status, 'ok', m);
    assert.equal(q.answered, 6, m);
    assert.ok(q.accuracy !== null && q.accuracy >= 0 && q.accuracy <= 1, `${m} accuracy ${q.accuracy}`);
    assert.equal(q.accuracy, Math.round((q.correct! / 6) * 1000) / 1000);
    assert.ok(q.interval95![0] <= q.accuracy && q.accuracy <= q.interval95![1], `${m} interval`);
    assert.ok(q.tokens! > 0 && q.ms_per_question! > 0);
  }
  assert.ok(report.qa['ps3']!.tokens! > report.qa['lowres']!.tokens!, 'ps3 adds high-res tokens');
  assert.ok(report.qa['ps3']!.evidence_recall !== null && report.qa['ps3']!.random_recall !== null);
  for (const m of ['anyres', 's2']) {
    assert.equal(report.qa[m]!.status, 'missing');
    assert.equal(report.qa[m]!.accuracy, null);
    assert.match(report.qa[m]!.reason!, new RegExp(`holds no ${m} LM`));
  }
  assert.deepEqual(Object.keys(report.vila.differences), ['ps3-lowres']);
  // the image-swap control: the lowres LM on every question, the ps3 LM on the scaling curves'
  // first 3, each against its own answers to the same questions
  const [lowControl, ps3Control] = report.vila.image_control;
  assert.equal(report.vila.image_control.length, 2);
  assert.equal(lowControl!.method, 'lowres');
  assert.equal(lowControl!.questions, 6);
  assert.equal(lowControl!.own_image, report.qa['lowres']!.accuracy);
  assert.equal(ps3Control!.method, 'ps3');
  assert.equal(ps3Control!.questions, 3);
  assert.equal(ps3Control!.own_image, report.scaling.test_time[0]!.accuracy);
  for (const c of report.vila.image_control) assert.ok(c.other_image >= 0 && c.other_image <= 1);

  // the scaling curves: looks 1, 2 (quick) and the high-res top scales, each on the first 3 questions
  assert.deepEqual(report.scaling.test_time.map((p) => p.x), [1, 2]);
  assert.deepEqual(report.scaling.resolution.map((p) => p.x), presetConfig('micro').vision.scales.slice(2));
  for (const p of [...report.scaling.test_time, ...report.scaling.resolution]) {
    assert.ok(p.accuracy !== null && p.accuracy >= 0 && p.accuracy <= 1);
    assert.ok(p.tokens! > 0);
    assert.equal(p.questions, 3);
  }
  assert.ok(report.scaling.test_time[1]!.tokens! > report.scaling.test_time[0]!.tokens!, 'a second look adds tokens');

  assert.deepEqual(Object.keys(report.retrieval).sort(), ['lowres', 'ps3']);
  assert.ok(report.training.steps >= 1);
  assert.deepEqual([...new Set(report.cost.map((c) => c.resolution))], [112]);
  for (const stage of ['vila', 'vila_benchmark', 'vila_answers', 'selection', 'retrieval', 'cost', 'sample', 'train']) assert.ok(report.seconds[stage]! >= 0, stage);

  // pictures: the curves, accuracy vs tokens, where VILA-HD looked, and the PS3 sections' own
  for (const p of ['scaling-test-time.png', 'scaling-resolution.png', 'accuracy-vs-tokens.png']) assert.ok(report.pictures.includes(p), p);
  assert.ok(report.vila.look !== null && report.vila.look.pictures.length === presetConfig('micro').vision.scales.length - 1);
  for (const p of report.vila.look!.pictures) assert.ok(report.pictures.includes(p), p);
  for (const p of report.pictures) {
    assert.ok(isPng(path.join(out, p)), p);
    const meta = await sharp(path.join(out, p)).metadata();
    assert.ok(meta.width! > 0 && meta.height! > 0, p);
  }
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.doesNotMatch(md, /fresh clone|trained weights\)/);
  assert.match(md, /^# PS3 demo report \(quick/);
  assert.ok(md.includes(report.run.command));
  assert.match(md, /Cost versus resolution .*random weights/);
  assert.match(md, /95 % interval/);
  assert.match(md, /\| anyres \| missing: /);
  assert.ok(md.includes(`](${report.vila.look!.pictures[0]!})`), 'report.md shows where VILA-HD looked');
  assert.match(stdout, /VILA-HD accuracy: ps3 /);
});

test('demo: --vila that is not a VILA-HD folder exits 2 with one line before any work', () => {
  const out = path.join(tmp, 'demo-bad-vila');
  const r = spawnSync(process.execPath, [CLI, 'demo', '--quick', '--vila', modelDir, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr.trim(), /^ps3: --vila .*: not a VILA-HD folder/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.ok(!fs.existsSync(path.join(out, 'report.json')));
});
