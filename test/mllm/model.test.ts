/** VILA-HD's pieces: token merging, the LM's causality and KV cache, the tokenizer, the selection loss's gradient. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { mergePlan, mergeTokens } from '../../src/mllm/projector.js';
import { embedTokens, lmForward, packedLayout } from '../../src/mllm/lm.js';
import { newVilaConfig, randomVilaWeights, loadVilaHd, writeVilaFiles } from '../../src/mllm/model.js';
import { loadLmTokenizer, newLmTokenizer, questionText, writeLmTokenizer } from '../../src/mllm/tokenizer.js';
import { buildCache, cacheDir, CacheReader, evidenceForced, looksOf } from '../../src/mllm/trainData.js';
import { batchLossAndGrads, sampleVisual } from '../../src/mllm/objective.js';
import { answerQuestion } from '../../src/mllm/answer.js';
import { renderScene } from '../../src/data/scene/render.js';
import { sceneRng } from '../../src/data/synth.js';
import { questionRng, sceneQuestions } from '../../src/data/qa/generate.js';
import { loadModel } from '../../src/model/load.js';
import { writeSafetensors, readSafetensors } from '../../src/io/safetensors.js';
import { isUserError } from '../../src/errors.js';
import { writeMicroPs3 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-vila-unit-'));
let ps3Dir = '';

before(async () => {
  await initEngine({});
  ps3Dir = await writeMicroPs3(path.join(tmp, 'ps3'), 3);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A micro low-res VILA-HD folder over the micro PS3 in tmp/NAME: its folder, config and weights, and the PS3 loaded. */
async function microVilaFolder(name: string, seed: number) {
  const ps3 = loadModel(ps3Dir, 'vision');
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const config = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: path.relative(dir, ps3Dir) });
  const w = randomVilaWeights(config, ps3.config, ['lowres'], seed);
  await writeVilaFiles(dir, config, w.entries());
  return { ps3, dir, config, w };
}

test('2x2 merging: a fully seen odd grid is zero-filled at its edge; a high-res grid keeps only whole chosen cells', () => {
  // 3 x 3 full grid, rows 0..8; zero row 9
  const full = mergePlan([{ height: 3, width: 3, offset: 0, ids: null }], 9);
  assert.deepEqual([...full], [0, 1, 3, 4, 2, 9, 5, 9, 6, 7, 9, 9, 8, 9, 9, 9]);
  // 4 x 4 grid with cells 0,1,4,5 (a whole 2x2 cell) and 2,3,6 (three of a cell) chosen, tokens from offset 10
  const ids = [0, 1, 2, 3, 4, 5, 6];
  const high = mergePlan([{ height: 4, width: 4, offset: 10, ids }], 99);
  assert.deepEqual([...high], [10, 11, 14, 15]);
  const tokens = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]);
  const merged = mergeTokens(tokens, [{ height: 2, width: 2, offset: 0, ids: null }]);
  assert.deepEqual(merged.shape, [1, 8]);
  assert.deepEqual([...merged.dataSync()], [1, 2, 3, 4, 5, 6, 7, 8]);
  tf.dispose([tokens, merged]);
});

test('the LM is causal, and a KV-cached continuation equals the whole sequence run at once', () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const config = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: ps3Dir });
  const w = randomVilaWeights(config, ps3.config, ['lowres'], 1);
  const ids = Int32Array.from([5, 9, 12, 7, 30, 4]);
  const whole = lmForward(w, 'lowres.lm', config.lm, embedTokens(w, 'lowres.lm', ids)).hidden;
  const changedTail = lmForward(w, 'lowres.lm', config.lm, embedTokens(w, 'lowres.lm', Int32Array.from([5, 9, 12, 8, 31, 2]))).hidden;
  const head = (t: tf.Tensor): number[] => [...tf.slice(t, [0, 0], [3, -1]).dataSync()];
  assert.deepEqual(head(whole), head(changedTail), 'positions 0-2 must not see positions 3-5');
  const prefix = lmForward(w, 'lowres.lm', config.lm, embedTokens(w, 'lowres.lm', ids.subarray(0, 4)), { keepKv: true });
  const rest = lmForward(w, 'lowres.lm', config.lm, embedTokens(w, 'lowres.lm', ids.subarray(4)), { cache: prefix.kv });
  const expected = tf.slice(whole, [4, 0], [2, -1]).dataSync();
  const got = rest.hidden.dataSync();
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-5, `row ${i}: ${got[i]} vs ${expected[i]}`);
  assert.throws(() => lmForward(w, 'lowres.lm', config.lm, tf.zeros([config.lm.contextLength + 1, config.lm.width])), (e: unknown) => isUserError(e) && /longer than the LM's context/.test(e.message));
  w.dispose();
  ps3.weights.dispose();
});

test('a packed layout gives each continuation the states of [prefix, continuation] run alone', () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const config = newVilaConfig({ preset: 'micro', methods: ['lowres'], ps3Model: ps3Dir });
  const w = randomVilaWeights(config, ps3.config, ['lowres'], 2);
  const p = 'lowres.lm';
  const prefix = Int32Array.from([5, 9, 12]);
  const continuations = [[7, 30, 4], [], [8], [31, 2]].map((c) => Int32Array.from(c));
  const layout = packedLayout(prefix.length, continuations.map((c) => c.length));
  assert.deepEqual([...layout.positions], [0, 1, 2, 3, 4, 5, 3, 3, 4]);
  const packed = lmForward(w, p, config.lm, embedTokens(w, p, Int32Array.from([...prefix, ...continuations.flatMap((c) => [...c])])), { layout }).hidden.arraySync() as number[][];
  let start = prefix.length;
  for (const c of continuations) {
    const alone = lmForward(w, p, config.lm, embedTokens(w, p, Int32Array.from([...prefix, ...c]))).hidden.arraySync() as number[][];
    const expected = alone.flat();
    const got = [...packed.slice(0, prefix.length), ...packed.slice(start, start + c.length)].flat();
    got.forEach((x, i) => assert.ok(Math.abs(x - expected[i]!) < 1e-5, `continuation [${[...c]}], value ${i}: ${x} vs ${expected[i]}`));
    start += c.length;
  }
  // the context limit counts the longest continuation, not the packed length
  const long = packedLayout(config.lm.contextLength - 2, [2, 2, 2]);
  assert.doesNotThrow(() => lmForward(w, p, config.lm, tf.zeros([long.positions.length, config.lm.width]), { layout: long }).hidden.dispose());
  const over = packedLayout(config.lm.contextLength - 2, [1, 3]);
  assert.throws(() => lmForward(w, p, config.lm, tf.zeros([over.positions.length, config.lm.width]), { layout: over }), (e: unknown) => isUserError(e) && /longer than the LM's context/.test(e.message));
  w.dispose();
  ps3.weights.dispose();
});

test('the LM tokenizer knows every word of generated questions and their options', () => {
  const tok = newLmTokenizer();
  let questions = 0;
  for (let i = 0; i < 12; i++) {
    const scene = renderScene(sceneRng(11, i), { width: 756, height: 756 });
    for (const q of sceneQuestions(scene, questionRng(11, i), { lowres: 189 })) {
      questions++;
      assert.deepEqual(tok.unknownWords(questionText(q.question, q.options)), [], q.question);
    }
  }
  assert.ok(questions >= 8, `only ${questions} questions`);
  assert.equal(tok.decode([...tok.encode('a red sign reading k3'), tok.eosId, 7]), 'a red sign reading k 3');
});

test('the LM tokenizer a run trains with gives the ids of the tokenizer.json it writes', async () => {
  const dir = path.join(tmp, 'lm-tokenizer');
  await writeLmTokenizer(dir, 64);
  const written = loadLmTokenizer(dir);
  const memory = newLmTokenizer();
  assert.equal(memory.size, written.size);
  assert.deepEqual([memory.padId, memory.unkId, memory.eosId], [written.padId, written.unkId, written.eosId]);
  assert.equal(memory.eosId, memory.size - 1, '[EOS] takes the highest id');
  const text = questionText('what does the red sign read', ['k 3', 'b 7']);
  assert.deepEqual([...memory.encode(text)], [...written.encode(text)]);
});

test('the selection loss is what trains the prompt head: its gradient reaches the head, and only through it', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const config = newVilaConfig({ preset: 'micro', methods: ['ps3'], ps3Model: ps3Dir });
  const w = randomVilaWeights(config, ps3.config, ['ps3'], 2);
  const spec = { method: 'ps3' as const, seed: 21, images: 2, looks: 1 };
  const dir = cacheDir(path.join(tmp, 'cache'), ps3Dir, spec);
  const questions = await buildCache(ps3, spec, dir);
  const reader = new CacheReader(dir);
  const batch = questions.slice(0, 2).map((q) => ({ question: q, arrays: reader.image(q.image) }));
  const tok = newLmTokenizer();
  const keys = ['ps3.prompt_head.fc2.weight', 'ps3.prompt_head.fc1.weight', 'ps3.lm.blocks.0.attn.qkv.weight'];
  const norm = (t: tf.Tensor): number => tf.tidy(() => tf.norm(t).dataSync()[0]!);
  const withSel = batchLossAndGrads(w, keys, 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 1 });
  const without = batchLossAndGrads(w, keys, 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 0 });
  assert.ok(withSel.selection > 0 && Number.isFinite(withSel.selection));
  assert.ok(norm(withSel.grads.get('ps3.prompt_head.fc2.weight')!) > 1e-6, 'selection loss must reach the prompt head');
  assert.ok(norm(withSel.grads.get('ps3.prompt_head.fc1.weight')!) > 1e-6);
  assert.equal(norm(without.grads.get('ps3.prompt_head.fc2.weight')!), 0, 'the answer loss alone does not touch the prompt head (training looks are box-forced)');
  assert.ok(norm(without.grads.get('ps3.lm.blocks.0.attn.qkv.weight')!) > 1e-6);
  // a central-difference check of the whole loss's gradient on one coordinate upstream of the
  // prompt head (the max pool and clamp of the selection make the head's own coordinates kinked)
  const key = 'ps3.lm.norm.bias';
  const g = batchLossAndGrads(w, [key], 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 1 });
  const analytic = g.grads.get(key)!.dataSync()[0]!;
  const base = w.get(key).dataSync();
  const eps = 1e-3;
  const at = (delta: number): number => {
    const v = Float32Array.from(base);
    v[0]! += delta;
    w.replace(key, tf.tensor(v, w.get(key).shape));
    return batchLossAndGrads(w, [key], 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 1 }).loss;
  };
  const numeric = (at(eps) - at(-eps)) / (2 * eps);
  at(0);
  assert.ok(Math.abs(numeric - analytic) < 0.03 * Math.abs(analytic) + 2e-4, `numeric ${numeric} vs analytic ${analytic}`);
  // the balanced and softmax forms (their values are tested in test/train/boxLoss.test.ts) reaches the objective
  // and train the head too
  const balanced = batchLossAndGrads(w, keys, 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 1, boxLoss: 'balanced' });
  assert.equal(balanced.answer, withSel.answer, 'the answer loss does not depend on the selection loss\'s form');
  assert.ok(balanced.selection > 0 && Math.abs(balanced.selection - withSel.selection) > 1e-3, `balanced ${balanced.selection} vs bce ${withSel.selection}`);
  assert.ok(norm(balanced.grads.get('ps3.prompt_head.fc2.weight')!) > 1e-6);
  const ranked = batchLossAndGrads(w, keys, 'ps3', config.lm, ps3, tok, batch, { selectionWeight: 1, boxLoss: 'softmax' });
  assert.equal(ranked.answer, withSel.answer);
  assert.ok(ranked.selection > 0 && Math.abs(ranked.selection - balanced.selection) > 1e-3, `softmax ${ranked.selection} vs balanced ${balanced.selection}`);
  assert.ok(norm(ranked.grads.get('ps3.prompt_head.fc2.weight')!) > 1e-6);
  w.dispose();
  ps3.weights.dispose();
});

test('a VILA-HD folder is loaded with every key checked: missing, misshaped and missing PS3 are named', async () => {
  const { ps3, dir, w } = await microVilaFolder('vila', 4);
  const ok = loadVilaHd(dir);
  assert.deepEqual(ok.config.methods, ['lowres']);
  ok.weights.dispose();
  ok.ps3.weights.dispose();
  const file = path.join(dir, 'model.safetensors');
  const arrays = readSafetensors(file);
  const bad = new Map(arrays);
  bad.delete('lowres.projector.fc1.weight');
  writeSafetensors(file, bad);
  assert.throws(() => loadVilaHd(dir), (e: unknown) => isUserError(e) && /missing key "lowres\.projector\.fc1\.weight"/.test(e.message));
  bad.set('lowres.projector.fc1.weight', { shape: [3, 3], data: new Float32Array(9) });
  writeSafetensors(file, bad);
  assert.throws(() => loadVilaHd(dir), (e: unknown) => isUserError(e) && /"lowres\.projector\.fc1\.weight" has shape \[3,3\]/.test(e.message));
  writeSafetensors(file, arrays);
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, ps3_model: 'nowhere' }));
  assert.throws(() => loadVilaHd(dir), (e: unknown) => isUserError(e) && /field ps3_model: .*nowhere is not a PS3 model folder/.test(e.message));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, lm: { ...(raw['lm'] as object), heads: 3 } }));
  assert.throws(() => loadVilaHd(dir), (e: unknown) => isUserError(e) && /field lm\.width: width must be a multiple of heads/.test(e.message));
  w.dispose();
  ps3.weights.dispose();
});

test('--min-looks: each question gets its own number of training looks, in range, and the cache its own folder', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const root = path.join(tmp, 'cache-looks');
  const fixed = { method: 'ps3' as const, seed: 21, images: 3, looks: 2 };
  const drawn = { ...fixed, minLooks: 1 };
  assert.equal(cacheDir(root, ps3Dir, { ...fixed, minLooks: 2 }), cacheDir(root, ps3Dir, fixed), 'minLooks = looks is the fixed cache');
  assert.notEqual(cacheDir(root, ps3Dir, drawn), cacheDir(root, ps3Dir, fixed));
  const dir = cacheDir(root, ps3Dir, drawn);
  const questions = await buildCache(ps3, drawn, dir);
  const looks = questions.map((q) => looksOf(drawn, q.image, q.index));
  assert.deepEqual([...new Set(looks)].sort(), [1, 2], `looks drawn: ${looks.join(',')}`);
  const reader = new CacheReader(dir);
  const rows = new Map<number, Set<number>>();
  questions.forEach((q, i) => {
    const n = reader.image(q.image).get(`high.${q.index}`)!.shape[0]!;
    rows.set(looks[i]!, (rows.get(looks[i]!) ?? new Set()).add(n));
  });
  // two looks leave more high-res tokens than one (after merging, the count depends on where the looks land)
  assert.ok(Math.min(...rows.get(2)!) > Math.max(...rows.get(1)!), [...rows].map(([k, v]) => `${k} looks: ${[...v].join(',')} tokens`).join('; '));
  ps3.weights.dispose();
});

test('--evidence-fraction: the drawn share of questions look with the evidence forced, the rest bottom-up, in a cache of its own', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const root = path.join(tmp, 'cache-evidence');
  const all = { method: 'ps3' as const, seed: 23, images: 3, looks: 1 };
  const half = { ...all, evidenceFraction: 0.5 };
  const none = { ...all, evidenceFraction: 0 };
  assert.equal(cacheDir(root, ps3Dir, { ...all, evidenceFraction: 1 }), cacheDir(root, ps3Dir, all), 'a fraction of 1 is the default cache');
  assert.equal(new Set([all, half, none].map((s) => cacheDir(root, ps3Dir, s))).size, 3);
  const questions = await buildCache(ps3, half, cacheDir(root, ps3Dir, half));
  await buildCache(ps3, all, cacheDir(root, ps3Dir, all));
  await buildCache(ps3, none, cacheDir(root, ps3Dir, none));
  const [readHalf, readAll, readNone] = [half, all, none].map((s) => new CacheReader(cacheDir(root, ps3Dir, s)));
  const high = (r: CacheReader, q: { image: number; index: number }): number[] => [...r.image(q.image).get(`high.${q.index}`)!.data];
  const forced = questions.map((q) => evidenceForced(half, q.image, q.index));
  assert.ok(forced.includes(true) && forced.includes(false), `forced: ${forced.join(',')}`);
  let differ = 0;
  questions.forEach((q, i) => {
    assert.deepEqual(high(readHalf!, q), high(forced[i] ? readAll! : readNone!, q), `question ${q.image}.${q.index}`);
    if (high(readAll!, q).join() !== high(readNone!, q).join()) differ++;
    // the selection loss's target is the evidence box either way
    assert.deepEqual([...readHalf!.image(q.image).get(`target.${q.index}.0`)!.data], [...readAll!.image(q.image).get(`target.${q.index}.0`)!.data]);
  });
  assert.ok(differ > 0, 'a forced look differs from a bottom-up one somewhere');
  ps3.weights.dispose();
});

test('a decoy sample reads the look of the question it names, and its own question\'s low-res tokens', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const spec = { method: 'ps3' as const, seed: 23, images: 3, looks: 1 };
  const dir = cacheDir(path.join(tmp, 'cache'), ps3Dir, spec);
  const questions = await buildCache(ps3, spec, dir);
  const q = questions.find((x) => questions.some((y) => y.image === x.image && y.index !== x.index))!;
  const other = questions.find((y) => y.image === q.image && y.index !== q.index)!;
  const config = newVilaConfig({ preset: 'micro', methods: ['ps3'], ps3Model: ps3Dir });
  const w = randomVilaWeights(config, ps3.config, ['ps3'], 3);
  const arrays = new CacheReader(dir).image(q.image);
  const values = (question: typeof q): number[] => {
    const { visual, low } = sampleVisual(w, 'ps3', { question, arrays });
    const out = [...visual.dataSync()];
    tf.dispose([visual, low!]);
    return out;
  };
  assert.notDeepEqual(values(q), values(other), 'the two looks differ');
  assert.deepEqual(values({ ...q, look: other.index }), values(other));
  w.dispose();
  ps3.weights.dispose();
});

test('--per-category: more questions of the same scenes, in a cache of its own', async () => {
  const ps3 = loadModel(ps3Dir, 'vision');
  const root = path.join(tmp, 'cache-per-category');
  const one = { method: 'lowres' as const, seed: 22, images: 3 };
  const four = { ...one, perCategory: 4 };
  assert.equal(cacheDir(root, ps3Dir, { ...one, perCategory: 1 }), cacheDir(root, ps3Dir, one), 'one a category is the default cache');
  assert.notEqual(cacheDir(root, ps3Dir, four), cacheDir(root, ps3Dir, one));
  const few = await buildCache(ps3, one, cacheDir(root, ps3Dir, one));
  const many = await buildCache(ps3, four, cacheDir(root, ps3Dir, four));
  assert.ok(many.length > few.length, `${many.length} questions at four a category, ${few.length} at one`);
  ps3.weights.dispose();
});

test('the choice term is -log of the truth\'s share of the softmax over the option scores eval qa answers by; off, it leaves the loss as it was', async () => {
  const { ps3, dir, config } = await microVilaFolder('choice-vila', 5);
  const model = loadVilaHd(dir);
  const spec = { method: 'lowres' as const, seed: 23, images: 2, looks: 1 };
  const cache = cacheDir(path.join(tmp, 'cache'), ps3Dir, spec);
  const questions = await buildCache(ps3, spec, cache);
  const reader = new CacheReader(cache);
  const batch = questions.slice(0, 3).map((q) => ({ question: q, arrays: reader.image(q.image) }));
  const keys = ['lowres.lm.norm.bias'];
  const on = batchLossAndGrads(model.weights, keys, 'lowres', config.lm, ps3, model.tokenizer, batch, { selectionWeight: 0, choiceWeight: 0.5 });
  const off = batchLossAndGrads(model.weights, keys, 'lowres', config.lm, ps3, model.tokenizer, batch, { selectionWeight: 0 });
  assert.equal(off.choice, 0);
  assert.ok(Math.abs(on.loss - (off.loss + 0.5 * on.choice)) < 1e-5, `${on.loss} vs ${off.loss} + 0.5 x ${on.choice}`);
  assert.ok(Math.abs(on.answer - off.answer) < 1e-6);
  // the same scores through the answering path (its KV cache), from the cached tokens
  let expected = 0;
  for (const { question: q, arrays } of batch) {
    const v = arrays.get('visual')!;
    const merged = tf.tensor(v.data, [...v.shape]);
    const a = await answerQuestion(model, 'lowres', { data: new Float32Array(0), batch: 1, height: 1, width: 1 }, q.question, q.options, {}, { merged, trunkTokens: 0 });
    merged.dispose();
    const top = Math.max(...a.scores);
    expected += (-(a.scores[q.answer]! - top) + Math.log(a.scores.reduce((s, x) => s + Math.exp(x - top), 0))) / batch.length;
  }
  assert.ok(on.choice > 0 && Math.abs(on.choice - expected) < 1e-3, `choice ${on.choice} vs ${expected}`);
});
