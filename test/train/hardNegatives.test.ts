/**
 * `ps3 train --hard-negatives K` (src/train/hardNegatives.ts): captions one word of a group away
 * from each pair's own, and the term that ranks the pair's own caption above them — against a
 * float64 cross-entropy written out by hand (PyTorch's `F.cross_entropy` over the logits
 * [own, negatives]), and through a whole step and the CLI.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.js';
import { synthVocabulary, writeWordTokenizer } from '../../src/data/wordTokenizer.js';
import { CONTRAST_WORDS } from '../../src/data/scene/contrastWords.js';
import { drawNegatives, hardNegativeLoss, perturbCaptions, resolveGroups } from '../../src/train/hardNegatives.js';
import { collateLabels, labelRows, type TrainSample } from '../../src/train/batch.js';
import { isUserError } from '../../src/errors.js';
import { Rng } from '../../src/rng.js';
import { spawnSync } from 'node:child_process';

const CLI = path.resolve('dist/src/cli/main.js');

const N = 16;
let tokenizer: TextTokenizer;
let groups: number[][];

before(async () => {
  await initEngine();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-hardneg-'));
  await writeWordTokenizer(dir, synthVocabulary(), { contextLength: N });
  tokenizer = await loadTokenizer(dir, { contextLength: N, clean: 'lower', padId: 0 });
  groups = resolveGroups(tokenizer, CONTRAST_WORDS);
  fs.rmSync(dir, { recursive: true, force: true });
});

const idOf = (word: string): number => tokenizer.encode([word])[0]!;

test('the scenes\' word groups resolve to distinct single ids; a word the tokenizer lacks is named', () => {
  assert.equal(groups.length, CONTRAST_WORDS.length);
  groups.forEach((g, i) => assert.equal(new Set(g).size, CONTRAST_WORDS[i]!.length));
  assert.ok(groups.flat().every((id) => id !== tokenizer.padId));
  assert.throws(() => resolveGroups(tokenizer, [['red', 'vermilion']]), (e: unknown) => isUserError(e) && /"vermilion"/.test((e as Error).message));
  assert.throws(() => resolveGroups(tokenizer, [['red', 'red']]), (e: unknown) => isUserError(e) && /two or more distinct/.test((e as Error).message));
});

test('each negative differs from its caption in one word, for another of that word\'s group; the K negatives take different words', () => {
  const captions = ['an orange sign reading o 5', 'a green hexagon marked with the letter u', 'the background', 'two red stars'];
  const ids = tokenizer.encode(captions);
  const K = 3;
  const skip = Float32Array.from([0, 0, 0, 1]);
  const { text, valid } = perturbCaptions(ids, N, K, groups, new Rng(4), skip);
  const groupOf = (id: number): number => groups.findIndex((g) => g.includes(id));
  for (let r = 0; r < captions.length; r++) {
    const row = ids.subarray(r * N, (r + 1) * N);
    const changed = new Set<number>();
    for (let k = 0; k < K; k++) {
      const neg = text.subarray((r * K + k) * N, (r * K + k + 1) * N);
      const diff = [...row.keys()].filter((i) => row[i] !== neg[i]);
      if (r >= 2) {
        // nothing to swap, or a skipped (global) row: its own caption back, not valid
        assert.deepEqual(diff, [], `row ${r}`);
        assert.equal(valid[r * K + k], 0);
        continue;
      }
      assert.equal(valid[r * K + k], 1);
      assert.equal(diff.length, 1, `row ${r}, negative ${k}`);
      const at = diff[0]!;
      assert.ok(groupOf(row[at]!) >= 0 && groupOf(row[at]!) === groupOf(neg[at]!), `row ${r}: ${row[at]} -> ${neg[at]} in one group`);
      changed.add(at);
    }
    // orange, sign-less o and 5: three words to swap; green, hexagon, u: three
    if (r < 2) assert.equal(changed.size, 3, `row ${r}: the negatives take different words`);
  }
  // the article "a" is not the letter a
  const row1 = text.subarray(K * N, 2 * K * N);
  assert.ok([...Array(K).keys()].every((k) => row1[k * N] === idOf('a')));
});

test('a batch\'s draws are a function of its captions (a resumed run draws them again), and shards keep their rows\' negatives', () => {
  const spec = { count: 2, weight: 1, groups };
  const sample = (caption: string, regions: string[]): TrainSample => ({ pixels: new Float32Array(0), gt: new Float32Array(0), isGlobal: 0, caption, regions: regions.map((c) => ({ caption: c, box: [0, 0, 1, 1] })) });
  const samples = [sample('a red circle', ['two blue squares', 'a sign reading k 4']), sample('a cyan ring', []), sample('a pink star', ['the letter q on a grey cross'])];
  const a = collateLabels(samples, tokenizer, spec);
  const b = collateLabels(samples, tokenizer, spec);
  assert.deepEqual([...a.negatives!.text], [...b.negatives!.text]);
  assert.deepEqual([...a.negatives!.regionText!], [...b.negatives!.regionText!]);
  const other = collateLabels([samples[1]!, samples[0]!, samples[2]!], tokenizer, spec);
  assert.notDeepEqual([...other.negatives!.text], [...a.negatives!.text]);
  const tail = labelRows(a, 1, 3);
  assert.deepEqual([...tail.negatives!.text], [...a.negatives!.text.subarray(2 * N, 6 * N)]);
  assert.deepEqual([...tail.negatives!.valid], [...a.negatives!.valid.subarray(2, 6)]);
  // the first sample's two regions stay behind, the third's comes along
  assert.deepEqual([...tail.negatives!.regionText!], [...a.negatives!.regionText!.subarray(4 * N, 6 * N)]);
  assert.equal(labelRows(a, 1, 2).negatives!.regionText, undefined);
  const drawn = drawNegatives(spec, a.text, Float32Array.from([0, 1, 0]), a.regions!.text);
  assert.deepEqual([...drawn.valid.subarray(2, 4)], [0, 0], 'a global caption has no negatives');
});

test('the term is the cross-entropy of the own caption among its negatives, invalid ones left out', () => {
  const rng = new Rng(11);
  const P = 3;
  const K = 2;
  const D = 5;
  const unit = (n: number): number[][] =>
    Array.from({ length: n }, () => {
      const v = Array.from({ length: D }, () => rng.normal());
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    });
  const image = unit(P);
  const text = unit(P);
  const neg = unit(P * K);
  // pair 1 has one valid negative; pair 2 none (it drops out of the mean)
  const valid = Float32Array.from([1, 1, 0, 1, 0, 0]);
  const logScale = 1.7;
  const dot = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);
  let sum = 0;
  let rows = 0;
  for (let p = 0; p < P; p++) {
    const logits = [dot(image[p]!, text[p]!), ...[0, 1].filter((k) => valid[p * K + k]).map((k) => dot(image[p]!, neg[p * K + k]!))].map((c) => c * Math.exp(logScale));
    if (logits.length === 1) continue;
    const max = Math.max(...logits);
    sum += max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0)) - logits[0]!;
    rows++;
  }
  const got = hardNegativeLoss(tf.tensor2d(image), tf.tensor2d(text), tf.tensor2d(neg), valid, tf.scalar(logScale));
  assert.ok(Math.abs(got.dataSync()[0]! - sum / rows) < 1e-5, `${got.dataSync()[0]} vs ${sum / rows}`);
  const none = hardNegativeLoss(tf.tensor2d(image), tf.tensor2d(text), tf.tensor2d(neg), new Float32Array(P * K), tf.scalar(logScale));
  assert.equal(none.dataSync()[0], 0);
  tf.dispose([got, none]);
});

test('ps3 train --hard-negatives K trains with the term and logs it; a bad K exits 2 naming the option', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-hardneg-cli-'));
  const data = path.join(tmp, 'data');
  const synth = spawnSync(process.execPath, [CLI, 'data', 'synth', '--out', data, '--count', '2', '--size', '224', '--seed', '3'], { encoding: 'utf8' });
  assert.equal(synth.status, 0, synth.stderr);
  const out = path.join(tmp, 'run');
  const args = [CLI, 'train', '--preset', 'micro', '--data', data, '--out', out, '--steps', '2', '--batch', '2', '--regions', '3', '--global-caption-prob', '0', '--seed', '7', '--hard-negatives', '2', '--hard-negative-weight', '0.5'];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { hard_negative_loss: number; loss: number });
  assert.equal(metrics.length, 2);
  // a pair with three swappable words and two negatives: at the start the own caption has about a third of the softmax
  assert.ok(metrics.every((m) => m.hard_negative_loss > 0.3 && m.hard_negative_loss < 3), JSON.stringify(metrics));
  for (const [flag, value, message] of [['--hard-negatives', '1.5', /--hard-negatives must be an integer/], ['--hard-negatives', '-1', /--hard-negatives must be >= 0/], ['--hard-negative-weight', '0', /--hard-negative-weight must be positive/]] as const) {
    const fresh = path.join(tmp, `bad${value}`);
    const bad = spawnSync(process.execPath, [...args.slice(0, 7), fresh, ...args.slice(8).filter((a, i, all) => a !== flag && all[i - 1] !== flag), flag, value], { encoding: 'utf8' });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, new RegExp(`^ps3: .*${message.source}`));
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.ok(!fs.existsSync(fresh), `${fresh} was written`);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});
