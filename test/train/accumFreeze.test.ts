/**
 * `--accum N` and `--freeze`, on the micro shape: N micro-batches accumulated give the gradient of
 * one batch N times larger (losses that are means over samples: the box losses; SigLIP's
 * contrastive loss depends on which samples share a batch by definition), and a frozen group's
 * weights do not move while the others do.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.js';
import { synthVocabulary, writeWordTokenizer } from '../../src/data/wordTokenizer.js';
import { AdamW } from '../../src/train/optimizer.js';
import { trainLoop, type FreezeGroup, type StepMetrics, type TrainLoopOptions } from '../../src/train/trainer.js';
import type { TrainSample } from '../../src/train/batch.js';
import { Rng } from '../../src/rng.js';

const config = presetConfig('micro');
const S = config.vision.scales[config.vision.scales.length - 1]!;
let tokenizer: TextTokenizer;
let samples: TrainSample[];

function sample(rng: Rng, caption: string): TrainSample {
  const pixels = Float32Array.from({ length: 3 * S * S }, () => rng.uniform(-1, 1));
  const gt = new Float32Array(S * S);
  const x0 = rng.int(0, S / 2);
  const y0 = rng.int(0, S / 2);
  for (let y = y0; y < y0 + S / 4; y++) for (let x = x0; x < x0 + S / 4; x++) gt[y * S + x] = 1;
  return { pixels, gt, isGlobal: 0, caption };
}

before(async () => {
  await initEngine();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-accum-'));
  await writeWordTokenizer(dir, synthVocabulary(), { contextLength: config.text.contextLength });
  tokenizer = await loadTokenizer(dir, { contextLength: config.text.contextLength, clean: config.text.tokenizerClean, padId: config.text.padId });
  const rng = new Rng(11);
  const words = synthVocabulary();
  samples = Array.from({ length: 4 }, (_, i) => sample(rng, `a ${words[i + 3]} ${words[i + 9]}`));
});

async function oneStep(model: PS3Model, o: Partial<TrainLoopOptions>): Promise<StepMetrics> {
  let i = 0;
  const source = { next: async () => samples[i++ % samples.length]! };
  const options: TrainLoopOptions = {
    steps: 1, batch: 1, accum: 1, lr: 1e-3, warmup: 0, clip: 0, freeze: 'none', adamw: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0 },
    lossWeights: { contrastive: 0, priorBox: 1, posteriorBox: 1 }, maxSeconds: 0, saveEvery: 1_000_000, ...o,
  };
  const optimizer = new AdamW(options.adamw);
  let metrics: StepMetrics | undefined;
  await trainLoop(model, optimizer, source, tokenizer, options, { step: 0, samplesSeen: 0 }, { onStep: (m) => void (metrics = m) });
  optimizer.dispose();
  return metrics!;
}

test('accumulating 2 micro-batches of 1 equals one batch of 2 (loss and gradient norm), and differs from a batch of 1', async () => {
  const runs: StepMetrics[] = [];
  for (const o of [{ batch: 2, accum: 1 }, { batch: 1, accum: 2 }, { batch: 1, accum: 1 }]) {
    const model = randomModel(config, 5);
    runs.push(await oneStep(model, o));
    model.weights.dispose();
  }
  const [big, accumulated, single] = runs as [StepMetrics, StepMetrics, StepMetrics];
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a), Math.abs(b));
  assert.ok(close(accumulated.loss, big.loss), `loss ${accumulated.loss} vs ${big.loss}`);
  assert.ok(close(accumulated.grad_norm, big.grad_norm), `gradient norm ${accumulated.grad_norm} vs ${big.grad_norm}`);
  // the check can fail: one sample alone has another loss and gradient
  assert.ok(!close(single.grad_norm, big.grad_norm), `gradient norm of one sample ${single.grad_norm} equals the batch's`);
});

test('--freeze text, prompts, all-but-selection, trunk and features: frozen weights stay, the others move', async () => {
  const changed = async (freeze: FreezeGroup): Promise<{ moved: string[]; still: string[] }> => {
    const model = randomModel(config, 6);
    const before = new Map([...model.weights.entries()].map(([k, t]) => [k, t.dataSync().slice()]));
    await oneStep(model, { freeze, lossWeights: { contrastive: 1, priorBox: 1, posteriorBox: 1 }, batch: 2 });
    const moved: string[] = [];
    const still: string[] = [];
    for (const [k, t] of model.weights.entries()) {
      const a = before.get(k)!;
      const b = t.dataSync();
      (a.some((v, i) => v !== b[i]) ? moved : still).push(k);
    }
    model.weights.dispose();
    tf.disposeVariables();
    return { moved, still };
  };
  const text = await changed('text');
  assert.ok(text.moved.length > 0);
  assert.deepEqual(text.moved.filter((k) => k.startsWith('text_model.')), []);
  assert.ok(text.moved.some((k) => k.startsWith('vision_model.')));
  const prompts = await changed('prompts');
  assert.deepEqual(prompts.moved.filter((k) => k.startsWith('text_model.')), []);
  assert.ok(prompts.moved.some((k) => k.startsWith('vision_model.selection_feature_proj.')));
  const selection = await changed('all-but-selection');
  assert.ok(selection.moved.length > 0);
  const selectionModules = ['vision_model.selection_feature_proj.', 'vision_model.highres_selection_feature_module.', 'vision_model.prompt_proj_for_highres.'];
  // logit_scale is clamped after every step, not trained when frozen: it may only be rewritten unchanged
  assert.deepEqual(selection.moved.filter((k) => !selectionModules.some((m) => k.startsWith(m))), []);
  const trunk = await changed('trunk');
  const isSelection = (k: string): boolean => selectionModules.some((m) => k.startsWith(m));
  assert.deepEqual(trunk.moved.filter((k) => k.startsWith('vision_model.') && !isSelection(k) && k !== 'vision_model.prior_prompt'), []);
  assert.ok(trunk.moved.includes('vision_model.prior_prompt'));
  assert.ok(trunk.moved.some((k) => k.startsWith('text_model.')));
  assert.ok(trunk.moved.some((k) => k.startsWith('text_model.prompt_proj.')));
  assert.ok(trunk.moved.some(isSelection));
  // features: only what selection alone reads moves — the selection modules, the prior prompt, the text prompt projection
  const features = await changed('features');
  const selectionOnly = (k: string): boolean => isSelection(k) || k === 'vision_model.prior_prompt' || k.startsWith('text_model.prompt_proj.');
  assert.deepEqual(features.moved.filter((k) => !selectionOnly(k)), []);
  assert.ok(features.moved.some((k) => k.startsWith('text_model.prompt_proj.')));
  assert.ok(features.moved.includes('vision_model.prior_prompt'));
  assert.ok(features.moved.some(isSelection));
});
