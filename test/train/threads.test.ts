/**
 * `ps3 train --threads`: a batch's towers on worker threads, its loss terms on the training
 * thread (src/train/gradShards.ts), give the loss, in-batch top-1 and gradients of the one-thread
 * step to float rounding — with regions (and their selections), the caption-word and hard-negative terms, a global caption, every loss
 * weighting — and a threaded run trains as a one-thread run does.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf, type BackendName } from '../../src/tensor/engine.js';
import { randomModel } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { boxToGtMap } from '../../src/model/selection.js';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.js';
import { synthVocabulary, writeWordTokenizer } from '../../src/data/wordTokenizer.js';
import { AdamW } from '../../src/train/optimizer.js';
import { collate, collateLabels, labelRows, type TrainSample } from '../../src/train/batch.js';
import { lossAndGrads, type LossWeights } from '../../src/train/objective.js';
import { resolveGroups } from '../../src/train/hardNegatives.js';
import { CONTRAST_WORDS } from '../../src/data/scene/contrastWords.js';
import { isUserError } from '../../src/errors.js';
import { ShardedStep, shardSizes } from '../../src/train/gradShards.js';
import { trainLoop, type StepMetrics, type TrainLoopOptions } from '../../src/train/trainer.js';
import type { Box } from '../../src/io/shards.js';
import { Rng } from '../../src/rng.js';

const config = presetConfig('micro');
const S = config.vision.scales[config.vision.scales.length - 1]!;
let tokenizer: TextTokenizer;
let samples: TrainSample[];

function sample(rng: Rng, words: string[], isGlobal: number, regions: Box[]): TrainSample {
  const pixels = Float32Array.from({ length: 3 * S * S }, () => rng.uniform(-1, 1));
  const x0 = rng.int(0, S / 2);
  const y0 = rng.int(0, S / 2);
  const gt = isGlobal ? new Float32Array(S * S).fill(1) : boxToGtMap([x0, y0, x0 + 20, y0 + 20], S);
  const word = (): string => words[rng.int(3, words.length - 1)]!;
  return { pixels, gt, isGlobal, caption: `a ${word()} ${word()}`, regions: regions.map((box) => ({ box, caption: `the ${word()} ${word()}` })) };
}

before(async () => {
  await initEngine();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-threads-'));
  await writeWordTokenizer(dir, synthVocabulary(), { contextLength: config.text.contextLength });
  tokenizer = await loadTokenizer(dir, { contextLength: config.text.contextLength, clean: config.text.tokenizerClean, padId: config.text.padId });
  const rng = new Rng(17);
  const words = synthVocabulary();
  // regions inside one cell of the first grid, so the forcing fits the budget; the third sample's caption is global
  samples = [
    sample(rng, words, 0, [[150, 150, 165, 165], [10, 180, 25, 195]]),
    sample(rng, words, 0, []),
    sample(rng, words, 1, [[180, 10, 195, 25]]),
  ];
  fs.rmSync(dir, { recursive: true, force: true });
});

function close(a: number, b: number, what: string, tol = 1e-4): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('shards are contiguous and as even as can be; a batch\'s labels cut into rows keep their regions', () => {
  assert.deepEqual(shardSizes(8, 2), [4, 4]);
  assert.deepEqual(shardSizes(3, 2), [2, 1]);
  assert.deepEqual(shardSizes(7, 3), [3, 2, 2]);
  assert.deepEqual(shardSizes(2, 4), [1, 1]);
  assert.deepEqual(shardSizes(5, 1), [5]);
  const labels = collateLabels(samples, tokenizer);
  const N = config.text.contextLength;
  const tail = labelRows(labels, 1, 3);
  assert.deepEqual([...tail.isGlobalText], [0, 1]);
  assert.deepEqual([...tail.text], [...labels.text.subarray(N, 3 * N)]);
  // the first sample's two regions stay behind; the third's is re-owned to row 1
  assert.deepEqual([...tail.regions!.owner], [1]);
  assert.deepEqual(tail.regions!.boxes, [labels.regions!.boxes[2]]);
  assert.deepEqual([...tail.regions!.text], [...labels.regions!.text.subarray(2 * N, 3 * N)]);
  assert.equal(labelRows(labels, 1, 2).regions, undefined);
});

test('two and three threads give the one-thread loss, top-1 and gradients', async () => {
  const model = randomModel(config, 3);
  const hardNegatives = { count: 2, weight: 1.5, groups: resolveGroups(tokenizer, CONTRAST_WORDS) };
  const weightings: LossWeights[] = [
    // the hard negatives: drawn once for the batch, cut into the shards' rows with their captions
    { contrastive: 1, priorBox: 1, posteriorBox: 1, hardNegatives },
    { contrastive: 0, priorBox: 0, posteriorBox: 0, hardNegatives },
    { contrastive: 1, priorBox: 1, posteriorBox: 1, words: 0.5, tokenWords: 0.5 },
    // the token-word term alone reads no pooling head
    { contrastive: 0, priorBox: 0, posteriorBox: 0, tokenWords: 1 },
    { contrastive: 1, priorBox: 0, posteriorBox: 0, box: 'balanced' },
    { contrastive: 0, priorBox: 1, posteriorBox: 2 },
    // the regions' selections: rows of shards with and without regions (3 threads: the middle one has none)
    { contrastive: 1, priorBox: 1, posteriorBox: 1, regionSelection: true },
    { contrastive: 0, priorBox: 1, posteriorBox: 2, box: 'softmax', regionSelection: true },
  ];
  for (const lossWeights of weightings) {
    const trainable = [...model.weights.keys()];
    const one = lossAndGrads(model.weights, model.config, collate(samples, S, tokenizer, undefined, lossWeights.hardNegatives), { trainable, lossWeights });
    if (lossWeights.hardNegatives) assert.ok(one.loss.hardNegatives > 0, 'the batch has hard negatives');
    for (const threads of [2, 3]) {
      const step = await ShardedStep.start(model.weights, model.config, { threads, trainable, lossWeights, backend: tf.getBackend() as BackendName });
      // the samples' arrays travel to the workers and back
      const copies = samples.map((s) => ({ ...s, pixels: s.pixels.slice(), gt: s.gt.slice() }));
      const many = await step.run(model.weights, copies, tokenizer).finally(() => step.close());
      const what = `${JSON.stringify(lossWeights)}, ${threads} threads`;
      for (const k of ['total', 'contrastive', 'priorBox', 'posteriorBox', 'words', 'tokenWords', 'hardNegatives'] as const) close(many.loss[k], one.loss[k], `${what}: ${k}`);
      assert.deepEqual(many.pairs, one.pairs, what);
      assert.deepEqual([...many.grads.keys()].sort(), [...one.grads.keys()].sort(), what);
      let largest = 0;
      for (const [k, g] of one.grads) {
        const a = g.dataSync();
        const b = many.grads.get(k)!.dataSync();
        const scale = Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 1e-6);
        for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i]! - b[i]!) / scale);
      }
      assert.ok(largest < 2e-3, `${what}: gradients differ by ${largest} of their largest entry`);
      assert.deepEqual(many.samples.map((s) => s.pixels.length), samples.map(() => 3 * S * S), 'the arrays came back');
      tf.dispose([...many.grads.values()]);
    }
    tf.dispose([...one.grads.values()]);
  }
  model.weights.dispose();
});

test('a run on two threads follows the one-thread run\'s curve', async () => {
  const run = async (threads: number): Promise<StepMetrics[]> => {
    const model = randomModel(config, 8);
    let i = 0;
    // the arrays move to the workers: each step's samples are copies
    const source = { next: async () => {
      const s = samples[i++ % 2]!;
      return { ...s, pixels: s.pixels.slice(), gt: s.gt.slice() };
    } };
    const options: TrainLoopOptions = {
      steps: 3, batch: 2, accum: 1, lr: 2e-3, warmup: 0, clip: 1, freeze: 'none', adamw: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0 },
      lossWeights: { contrastive: 1, priorBox: 1, posteriorBox: 1, words: 1 }, maxSeconds: 0, saveEvery: 1_000_000, threads,
    };
    const optimizer = new AdamW(options.adamw);
    const metrics: StepMetrics[] = [];
    await trainLoop(model, optimizer, source, tokenizer, options, { step: 0, samplesSeen: 0 }, { onStep: (m) => void metrics.push(m) });
    optimizer.dispose();
    model.weights.dispose();
    return metrics;
  };
  const [one, two] = [await run(1), await run(2)];
  assert.equal(two.length, 3);
  one.forEach((m, i) => {
    close(two[i]!.loss, m.loss, `step ${m.step} loss`, 1e-3);
    close(two[i]!.grad_norm, m.grad_norm, `step ${m.step} gradient norm`, 1e-3);
  });
  // the weights moved between steps, so agreeing on later steps says the updates agreed
  assert.notEqual(one[0]!.loss, one[2]!.loss);
});

test('a worker\'s user error stays a one-line user error; arrays already handed to a worker are refused, not lost', async () => {
  const model = randomModel(config, 4);
  const options = { threads: 2, trainable: [...model.weights.keys()], lossWeights: { contrastive: 1, priorBox: 1, posteriorBox: 1 }, backend: tf.getBackend() as BackendName };
  const bad = await ShardedStep.start(model.weights, model.config, options);
  const wrong = samples.slice(0, 2).map((s, i) => ({ ...s, pixels: s.pixels.slice(), gt: i === 1 ? new Float32Array(7) : s.gt.slice() }));
  await assert.rejects(bad.run(model.weights, wrong, tokenizer), (e: Error) => isUserError(e) && /gtSelectionMaps: 7 values/.test(e.message));
  await bad.close();
  const step = await ShardedStep.start(model.weights, model.config, options);
  try {
    const copies = samples.slice(0, 2).map((s) => ({ ...s, pixels: s.pixels.slice(), gt: s.gt.slice() }));
    const done = await step.run(model.weights, copies, tokenizer);
    tf.dispose([...done.grads.values()]);
    // the copies' arrays went to the workers: sent again, the message would vanish and the step wait forever
    await assert.rejects(step.run(model.weights, copies, tokenizer), /already handed to a worker/);
  } finally {
    await step.close();
    model.weights.dispose();
  }
});
