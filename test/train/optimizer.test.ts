import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BACKENDS, initEngine, tf } from '../../src/tensor/engine.js';
import { registerMissingKernels } from '../../src/tensor/kernels.js';
import { Weights } from '../../src/model/weights.js';
import { AdamW, clipGradients, decays } from '../../src/train/optimizer.js';
import { learningRate } from '../../src/train/schedule.js';

interface Ref {
  init: { w: number[]; b: number[] };
  lrs: number[];
  weight_decay: number;
  grads: Array<{ w: number[]; b: number[] }>;
  after: Array<{ w: number[]; b: number[] }>;
}

await initEngine();
// initEngine prepares only the backend it picks; the optimizer's kernel is needed on both
for (const backend of BACKENDS) registerMissingKernels(backend);

for (const backend of BACKENDS) {
  test(`AdamW matches torch.optim.AdamW step by step on ${backend} (decay on the matrix, none on the bias)`, async () => {
    await tf.setBackend(backend);
    const ref = JSON.parse(fs.readFileSync('test/data/adamw.json', 'utf8')) as Ref;
    // keys chosen so the exclusion rule decays the matrix and not the bias
    const weights = new Weights(new Map([['layer.weight', tf.tensor(ref.init.w, [2, 3])], ['layer.bias', tf.tensor(ref.init.b, [3])]]), true);
    const opt = new AdamW({ betas: [0.9, 0.95], eps: 1e-8, weightDecay: ref.weight_decay });
    ref.grads.forEach((g, i) => {
      const grads = new Map([['layer.weight', tf.tensor(g.w, [2, 3])], ['layer.bias', tf.tensor(g.b, [3])]]);
      opt.apply(weights, grads, ref.lrs[i]!);
      tf.dispose([...grads.values()]);
      const w = weights.get('layer.weight').dataSync();
      const b = weights.get('layer.bias').dataSync();
      ref.after[i]!.w.forEach((v, j) => assert.ok(Math.abs(w[j]! - v) < 1e-6, `step ${i} w[${j}] ${w[j]} vs ${v}`));
      ref.after[i]!.b.forEach((v, j) => assert.ok(Math.abs(b[j]! - v) < 1e-6, `step ${i} b[${j}] ${b[j]} vs ${v}`));
    });
    assert.equal(opt.step, 3);
    opt.dispose();
    weights.dispose();
  });
}

test('weight decay follows open_clip: rank >= 2 and not a norm, bias or logit scale', () => {
  assert.equal(decays('vision_model.trunk.blocks.0.attn.qkv.weight', [96, 32]), true);
  assert.equal(decays('vision_model.trunk.pos_embed', [1, 16, 32]), true);
  assert.equal(decays('vision_model.trunk.blocks.0.attn.qkv.bias', [96]), false);
  assert.equal(decays('vision_model.trunk.blocks.0.norm1.weight', [32]), false);
  assert.equal(decays('text_model.ln_final.weight', [32]), false);
  assert.equal(decays('vision_model.prior_prompt', [32]), false);
  assert.equal(decays('logit_scale', [1]), false);
  assert.equal(decays('text_model.transformer.resblocks.0.attn.in_proj_bias', [96]), false);
});

test('warm-up is linear from 0, then cosine decays to 0', () => {
  const o = { lr: 1, warmup: 4, steps: 14 };
  assert.equal(learningRate(0, o), 0.25);
  assert.equal(learningRate(3, o), 1);
  assert.equal(learningRate(4, o), 1);
  assert.ok(Math.abs(learningRate(9, o) - 0.5) < 1e-12);
  assert.ok(learningRate(13, o) < 0.03);
  assert.equal(learningRate(14, o), 0);
});

test('gradient clipping scales to the global norm and reports the norm before', () => {
  const grads = new Map([['a', tf.tensor([3, 0])], ['b', tf.tensor([0, 4])]]);
  const norm = clipGradients(grads, 1);
  assert.ok(Math.abs(norm - 5) < 1e-6);
  const a = grads.get('a')!.dataSync();
  assert.ok(Math.abs(a[0]! - 0.6) < 1e-5);
  tf.dispose([...grads.values()]);
});
