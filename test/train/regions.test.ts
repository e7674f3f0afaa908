/**
 * `--regions`: other local boxes of a batch's images pooled from the same look and added to the
 * contrastive term (src/model/pretrain.ts, src/train/objective.ts), on a random `micro` model.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { encodePretrain, maskedTokenMean, pretrainSelection } from '../../src/model/pretrain.js';
import { encodeText } from '../../src/model/text.js';
import { boxLoss, boxTargets } from '../../src/train/loss.js';
import { boxAreaAtGrid, boxCells, boxToGtMap, forcingCapacity, ownForcedAtTop } from '../../src/model/selection.js';
import { inBatchTop1, lossAndGrads, pretrainObjective, pretrainTowers, wordLoss, type PretrainBatch } from '../../src/train/objective.js';
import { Rng } from '../../src/rng.js';
import type { Box } from '../../src/io/shards.js';

const S = 224;
let model: PS3Model;
let pixels: Float32Array;

before(async () => {
  await initEngine();
  model = randomModel(presetConfig('micro'), 5);
  const rng = new Rng(9);
  pixels = Float32Array.from({ length: 2 * 3 * S * S }, () => rng.uniform(-1, 1));
});

// boxes inside one cell of the first grid (28 px): the forcing, made at that grid, fits the budget
const own: Box[] = [[30, 30, 50, 50], [90, 30, 110, 52]];
const gt = (): Float32Array => {
  const out = new Float32Array(2 * S * S);
  own.forEach((b, i) => out.set(boxToGtMap(b, S), i * S * S));
  return out;
};
const ids = (rows: number, seed: number): Int32Array => {
  const rng = new Rng(seed);
  const N = model.config.text.contextLength;
  return Int32Array.from({ length: rows * N }, () => rng.int(1, model.config.text.vocabSize - 2));
};

test('a region with the sample\'s own box pools to the sample\'s own feature; every region box is in the look', () => {
  const regions = { owner: Int32Array.from([0, 1, 0]), boxes: [own[0]!, [145, 145, 165, 165], [172, 4, 190, 24]] as Box[] };
  const prompt = tf.randomNormal([2, model.config.vision.trunk.width], 0, 1, 'float32', 3);
  const out = encodePretrain(model.weights, model.config.vision, { data: pixels, batch: 2, height: S, width: S }, prompt, gt(), [0, 0], regions);
  assert.deepEqual(out.regionPooled!.shape, [3, model.config.vision.trunk.width]);
  const pooled = out.pooledOutput.arraySync() as number[][];
  const region = out.regionPooled!.arraySync() as number[][];
  region[0]!.forEach((v, d) => assert.ok(Math.abs(v - pooled[0]![d]!) < 1e-5, `dim ${d}: ${v} vs ${pooled[0]![d]}`));
  // the other regions differ from it (other tokens)
  assert.ok(region[2]!.some((v, d) => Math.abs(v - pooled[0]![d]!) > 1e-3));
  // forced: every patch a region's box touches at the top grid was chosen for its image
  const top = out.selectionMaps.at(-1)!;
  const cells = top.height * top.width;
  regions.boxes.forEach((box, k) => {
    const share = boxAreaAtGrid(box, S, top.height, top.width);
    share.forEach((v, g) => {
      if (v > 0) assert.equal(top.data[regions.owner[k]! * cells + g], 1, `region ${k}, cell ${g} not looked at`);
    });
  });
  tf.dispose([prompt, out.pooledOutput, out.regionPooled!, ...out.bottomupSelectionProbs, ...out.topdownSelectionProbs]);
});

test('regions filling the top budget exactly (forcingCapacity) are all in the look, each box patch by patch', () => {
  const capacity = forcingCapacity(model.config.vision, S);
  // 2 x 2 top patches each, away from image 0's own box (top cells 2-3, 2-3), each across four
  // first-grid cells: forced there, they would take 16 top patches each and overflow
  const at = (x: number, y: number): Box => [x * 14 + 1, y * 14 + 1, x * 14 + 27, y * 14 + 27];
  const boxes = [at(9, 9), at(11, 5), at(5, 11), at(13, 13)];
  const forcedCount = new Set([...ownForcedAtTop(own[0]!, S, capacity), ...boxes.flatMap((b) => boxCells(b, S, capacity.top, capacity.top))]).size;
  assert.equal(forcedCount, capacity.budget);
  const regions = { owner: Int32Array.from([0, 0, 0, 0]), boxes };
  const prompt = tf.randomNormal([2, model.config.vision.trunk.width], 0, 1, 'float32', 4);
  const out = encodePretrain(model.weights, model.config.vision, { data: pixels, batch: 2, height: S, width: S }, prompt, gt(), [0, 0], regions);
  const top = out.selectionMaps.at(-1)!;
  for (const box of boxes) for (const g of boxCells(box, S, top.height, top.width)) assert.equal(top.data[g], 1, `${box.join()}: patch ${g} not looked at`);
  tf.dispose([prompt, out.pooledOutput, out.regionPooled!, ...out.bottomupSelectionProbs, ...out.topdownSelectionProbs]);
});

test('regions join the SigLIP batch: [B + R] pairs, and their captions get a gradient', () => {
  const base: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 0]) };
  const withRegions: PretrainBatch = { ...base, regions: { owner: Int32Array.from([1, 0]), boxes: [[150, 150, 172, 170], [180, 20, 200, 44]], text: ids(2, 2) } };
  const keys = ['text_model.token_embedding.weight', 'logit_bias'].filter((k) => model.weights.has(k));
  assert.equal(keys.length, 2, 'the micro model has a token embedding and a logit bias');
  const a = lossAndGrads(model.weights, model.config, base, { trainable: keys });
  const b = lossAndGrads(model.weights, model.config, withRegions, { trainable: keys });
  assert.ok(Number.isFinite(b.loss.contrastive) && b.loss.contrastive !== a.loss.contrastive);
  // the box terms see the samples' own boxes only
  assert.ok(Math.abs(a.loss.priorBox - b.loss.priorBox) < 1e-6);
  // the region captions' token rows get a gradient the two-sample batch does not give them
  const N = model.config.text.contextLength;
  const regionToken = withRegions.regions!.text.find((t) => !base.text.includes(t))!;
  assert.ok(regionToken !== undefined, 'a token only the region captions use');
  const ga = a.grads.get(keys[0]!)!.arraySync() as number[][];
  const gb = b.grads.get(keys[0]!)!.arraySync() as number[][];
  assert.ok(ga[regionToken]!.every((v) => v === 0));
  assert.ok(gb[regionToken]!.some((v) => v !== 0));
  assert.ok(N > 0);
  tf.dispose([...a.grads.values(), ...b.grads.values()]);
});

test('regions are checked: an owner outside the batch is refused with the counts', () => {
  const prompt = tf.zeros([2, model.config.vision.trunk.width]);
  assert.throws(() => encodePretrain(model.weights, model.config.vision, { data: pixels, batch: 2, height: S, width: S }, prompt, gt(), [0, 0], { owner: Int32Array.from([2]), boxes: [[0, 0, 8, 8]] }), /regions: 1 owners \(of 2 images\) for 1 boxes/);
  prompt.dispose();
});

test('box weights 0: the total is the contrastive term and no gradient is asked of what only the box terms read', () => {
  const batch: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 0]) };
  const r = lossAndGrads(model.weights, model.config, batch, { lossWeights: { contrastive: 1, priorBox: 0, posteriorBox: 0 } });
  assert.ok(Math.abs(r.loss.total - r.loss.contrastive) < 1e-6);
  assert.ok(r.loss.priorBox > 0, 'the box terms are still reported');
  const keys = [...r.grads.keys()];
  assert.ok(keys.includes('text_model.token_embedding.weight') && keys.some((k) => k.startsWith('vision_model.trunk.blocks.')));
  assert.ok(!keys.some((k) => /selection_feature_proj|highres_selection_feature_module|prompt_proj|prior_prompt/.test(k)), keys.filter((k) => /select|prompt/.test(k)).join());
  tf.dispose([...r.grads.values()]);
});

test('pairs: the in-batch top-1 counts captions whose own image has the highest logit, over B + R pairs', () => {
  const batch: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 0]), regions: { owner: Int32Array.from([1, 0]), boxes: [[145, 145, 165, 165], [172, 4, 190, 24]], text: ids(2, 2) } };
  const r = lossAndGrads(model.weights, model.config, batch, { trainable: ['logit_bias'] });
  assert.equal(r.pairs.count, 4);
  assert.ok([0, 0.25, 0.5, 0.75, 1].includes(r.pairs.top1), String(r.pairs.top1));
  tf.dispose([...r.grads.values()]);
  // rows are images, columns texts: text 0's best image is 0, text 1's is 2, text 2's is 2
  const logits = tf.tensor2d([[5, 0, 1], [1, 0, 0], [0, 3, 2]]);
  assert.deepEqual(inBatchTop1(logits), { top1: 2 / 3, count: 3 });
  logits.dispose();
});

test('word loss: BCE of each local box feature\'s word scores (e^t cos with the token embedding + b) against its caption\'s words (over the batch\'s words), alone in the total when the others weigh 0', () => {
  const batch: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 1]), regions: { owner: Int32Array.from([1]), boxes: [[145, 145, 165, 165]], text: ids(1, 2) } };
  const out = tf.tidy(() => {
    const o = pretrainObjective(model.weights, model.config, batch, { contrastive: 1, priorBox: 0, posteriorBox: 0, words: 1 });
    // by hand below, on the features of one pass: rows = the local sample 0 and the region
    const pass = encodePretrain(model.weights, model.config.vision, batch.pixels, tf.reshape(model.weights.get('vision_model.prior_prompt'), [1, -1]).tile([2, 1]), batch.gtSelectionMaps, batch.isGlobalText, batch.regions);
    return [wordLoss(model.weights, model.config, pass.pooledOutput, pass.regionPooled, batch), pass.pooledOutput, pass.regionPooled!, o.words];
  });
  const [words, pooled, region, objectiveWords] = out as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  assert.ok(Number.isFinite(objectiveWords.dataSync()[0]!) && objectiveWords.dataSync()[0]! > 0);
  const E = model.weights.get('text_model.token_embedding.weight').arraySync() as number[][];
  const scale = model.weights.get('logit_scale').dataSync()[0]!;
  const bias = model.weights.get('logit_bias').dataSync()[0]!;
  const V = E.length;
  const N = model.config.text.contextLength;
  const feats = [(pooled.arraySync() as number[][])[0]!, (region.arraySync() as number[][])[0]!];
  const caps = [batch.text.subarray(0, N), batch.regions!.text];
  const sets = caps.map((c) => new Set([...c].filter((id) => id !== model.config.text.padId)));
  const common = [...sets[0]!].filter((id) => sets[1]!.has(id));
  let sum = 0;
  let count = 0;
  feats.forEach((f, p) => {
    for (let v = 0; v < V; v++) {
      if (!(sets[0]!.has(v) || sets[1]!.has(v)) || common.includes(v)) continue;
      const norm = (x: number[]): number => Math.sqrt(x.reduce((a, c) => a + c * c, 0));
      const z = (Math.exp(scale) * f.reduce((a, x, d) => a + x * E[v]![d]!, 0)) / (norm(f) * norm(E[v]!)) + bias;
      const y = sets[p]!.has(v) ? 1 : 0;
      sum += -(y * Math.log(1 / (1 + Math.exp(-z))) + (1 - y) * Math.log(1 / (1 + Math.exp(z))));
      count++;
    }
  });
  assert.ok(Math.abs(words.dataSync()[0]! - sum / count) < 1e-3, `${words.dataSync()[0]} vs ${sum / count}`);
  tf.dispose(out);
  const r = lossAndGrads(model.weights, model.config, batch, { lossWeights: { contrastive: 0, priorBox: 0, posteriorBox: 0, words: 1 } });
  assert.ok(Math.abs(r.loss.total - r.loss.words) < 1e-6 && r.loss.words > 0);
  assert.ok(r.grads.has('vision_model.trunk.attn_pool.latent') && r.grads.has('logit_scale') && !r.grads.has('text_model.prompt_proj.fc1.weight'));
  tf.dispose([...r.grads.values()]);
  // a batch of global captions alone has no word to score: the term and its gradient are zero
  const global: PretrainBatch = { ...batch, isGlobalText: Float32Array.from([1, 1]), gtSelectionMaps: new Float32Array(2 * S * S).fill(1) };
  delete (global as { regions?: unknown }).regions;
  for (const lw of [{ words: 1 }, { tokenWords: 1 }]) {
    const g = lossAndGrads(model.weights, model.config, global, { lossWeights: { contrastive: 0, priorBox: 0, posteriorBox: 0, ...lw } });
    assert.ok(g.loss.total === 0, `${g.loss.total}`);
    assert.ok(g.grads.size > 0 && [...g.grads.values()].every((t) => t.dataSync().every((v) => v === 0)));
    tf.dispose([...g.grads.values()]);
  }
});

test('masked token mean: the plain mean of the tokens whose mask is above 0; a row that keeps none takes every token', () => {
  const tokens = tf.tensor3d([[[1, 2], [3, 4], [5, 6]], [[0, 1], [2, 3], [4, 8]]]);
  const mean = maskedTokenMean(tokens, Float32Array.from([0.5, 0, 0.25, 0, 0, 0]));
  assert.deepEqual(mean.arraySync(), [[3, 4], [2, 4]]);
  tf.dispose([tokens, mean]);
});

test('token-word term: the word loss on each box\'s mean high-res token (the tokens its pooling reads), which reaches the trunk without the pooling head', () => {
  const batch: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 1]), regions: { owner: Int32Array.from([1]), boxes: [[145, 145, 165, 165]], text: ids(1, 2) } };
  const lossWeights = { contrastive: 0, priorBox: 0, posteriorBox: 0, tokenWords: 1 };
  const [objective, byHand, boxTokens, pooled] = tf.tidy(() => {
    const o = pretrainObjective(model.weights, model.config, batch, lossWeights);
    const towers = pretrainTowers(model.weights, model.config, batch, lossWeights);
    return [o.tokenWords, wordLoss(model.weights, model.config, towers.boxTokens!, towers.regionTokens, batch), towers.boxTokens!, towers.pooledOutput!];
  }) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  assert.deepEqual(boxTokens.shape, [2, model.config.vision.trunk.width]);
  assert.ok(Math.abs(objective.dataSync()[0]! - byHand.dataSync()[0]!) < 1e-6 && objective.dataSync()[0]! > 0);
  // a mean of tokens, not the pooled feature
  assert.ok(boxTokens.dataSync().some((v, d) => Math.abs(v - pooled.dataSync()[d]!) > 1e-3));
  tf.dispose([objective, byHand, boxTokens, pooled]);
  const r = lossAndGrads(model.weights, model.config, batch, { lossWeights });
  assert.ok(Math.abs(r.loss.total - r.loss.tokenWords) < 1e-6 && r.loss.words === 0);
  assert.ok(r.grads.has('vision_model.trunk.blocks.0.attn.qkv.weight') && r.grads.has('text_model.token_embedding.weight'));
  assert.ok(!r.grads.has('vision_model.trunk.attn_pool.latent') && !r.grads.has('text_model.prompt_proj.fc1.weight'));
  const norm = tf.tidy(() => tf.norm(r.grads.get('vision_model.trunk.blocks.0.attn.qkv.weight')!).dataSync()[0]!);
  assert.ok(norm > 0, 'the trunk gets a gradient');
  tf.dispose([...r.grads.values()]);
});

test('region selection: each region\'s rows are its image\'s bottom-up map and its own caption\'s top-down map, its box the target', () => {
  const regionBoxes: Box[] = [[145, 145, 165, 165], [172, 4, 190, 24], own[0]!];
  const batch: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 0]), regions: { owner: Int32Array.from([1, 0, 0]), boxes: regionBoxes, text: ids(3, 2) } };
  const N = model.config.text.contextLength;
  const cfg = model.config.vision;
  for (const contrastive of [1, 0]) {
    const towers = pretrainTowers(model.weights, model.config, batch, { contrastive, priorBox: 1, posteriorBox: 1, regionSelection: true });
    const rs = towers.regionSelection!;
    assert.equal(rs.topdownSelectionProbs.length, cfg.scales.length - 1);
    regionBoxes.forEach((box, k) => {
      const b = batch.regions!.owner[k]!;
      // the region alone: its image, its caption as the sample's own, its box as the ground truth
      const alone = tf.tidy(() => {
        const prompt = encodeText(model.weights, model.config.text, batch.regions!.text.subarray(k * N, (k + 1) * N), 1).prompt;
        const one = pretrainSelection(model.weights, cfg, { data: pixels.subarray(b * 3 * S * S, (b + 1) * 3 * S * S), batch: 1, height: S, width: S }, prompt, boxToGtMap(box, S));
        return [...one.topdownSelectionProbs, ...one.bottomupSelectionProbs, ...one.gtAtScale.map((g) => tf.tensor(g))];
      });
      const ns = rs.topdownSelectionProbs.length;
      rs.topdownSelectionProbs.forEach((p, i) => {
        const got = p.slice([k, 0, 0], [1, -1, -1]).dataSync();
        const want = alone[i]!.dataSync();
        got.forEach((v, g) => assert.ok(Math.abs(v - want[g]!) < 1e-5, `contrastive ${contrastive}, region ${k}, scale ${i}, patch ${g}: ${v} vs ${want[g]}`));
        const bottomup = rs.bottomupSelectionProbs[i]!.slice([k, 0, 0], [1, -1, -1]).dataSync();
        const ownBottomup = towers.bottomupSelectionProbs[i]!.slice([b, 0, 0], [1, -1, -1]).dataSync();
        assert.deepEqual(bottomup, ownBottomup);
        const cells = want.length;
        const gtWant = alone[2 * ns + i]!.dataSync();
        rs.gtAtScale[i]!.subarray(k * cells, (k + 1) * cells).forEach((v, g) => assert.ok(Math.abs(v - gtWant[g]!) < 1e-6, `region ${k}, scale ${i}: box share ${v} vs ${gtWant[g]}`));
      });
      tf.dispose(alone);
    });
    // region 2 names image 0's own box with another caption: the same target, another top-down map
    const top = (p: tf.Tensor, row: number): Float32Array => p.slice([row, 0, 0], [1, -1, -1]).dataSync() as Float32Array;
    assert.ok(top(rs.topdownSelectionProbs[0]!, 2).some((v, g) => Math.abs(v - top(towers.topdownSelectionProbs[0]!, 0)[g]!) > 1e-4));
    tf.dispose([...towers.bottomupSelectionProbs, ...towers.topdownSelectionProbs, ...rs.bottomupSelectionProbs, ...rs.topdownSelectionProbs]);
    tf.dispose([towers.textPooled, towers.regionText, towers.pooledOutput, towers.regionPooled].filter((t): t is tf.Tensor => t !== null));
  }
});

test('region selection: the box terms average the samples\' and the regions\' rows; the caption prompts and the selection get a gradient from it', () => {
  const batch: PretrainBatch = { pixels: { data: pixels, batch: 2, height: S, width: S }, text: ids(2, 1), gtSelectionMaps: gt(), isGlobalText: Float32Array.from([0, 1]), regions: { owner: Int32Array.from([1, 0, 0]), boxes: [[145, 145, 165, 165], [172, 4, 190, 24], [40, 100, 70, 130]], text: ids(3, 2) } };
  for (const kind of ['bce', 'softmax'] as const) {
    const weights = { contrastive: 0, priorBox: 1, posteriorBox: 1, box: kind, regionSelection: true };
    const towers = pretrainTowers(model.weights, model.config, batch, weights);
    const rs = towers.regionSelection!;
    const r = lossAndGrads(model.weights, model.config, batch, { lossWeights: weights });
    // one local sample (the other's caption is global) and three regions, each row weighed alike
    const ownTerm = boxLoss(towers.topdownSelectionProbs, boxTargets(towers.gtAtScale), batch.isGlobalText, kind).dataSync()[0]!;
    const regionTerm = boxLoss(rs.topdownSelectionProbs, boxTargets(rs.gtAtScale), [0, 0, 0], kind).dataSync()[0]!;
    const want = (ownTerm * 1 + regionTerm * 3) / 4;
    assert.ok(Math.abs(r.loss.posteriorBox - want) < 1e-4 * Math.max(1, want), `${kind}: ${r.loss.posteriorBox} vs ${want}`);
    const plain = lossAndGrads(model.weights, model.config, batch, { lossWeights: { ...weights, regionSelection: false } });
    assert.ok(Math.abs(plain.loss.posteriorBox - ownTerm) < 1e-5, `${kind}: without region selection the term is the samples' own`);
    for (const k of ['text_model.prompt_proj.fc1.weight', 'vision_model.selection_feature_proj.fc1.weight']) assert.ok(r.grads.has(k), k);
    const g = r.grads.get('text_model.prompt_proj.fc1.weight')!.dataSync();
    const gp = plain.grads.get('text_model.prompt_proj.fc1.weight')!.dataSync();
    assert.ok(g.some((v, i) => Math.abs(v - gp[i]!) > 1e-7), `${kind}: the regions' prompts add to the prompt projection's gradient`);
    tf.dispose([...r.grads.values(), ...plain.grads.values(), ...towers.bottomupSelectionProbs, ...towers.topdownSelectionProbs, ...rs.bottomupSelectionProbs, ...rs.topdownSelectionProbs]);
  }
});
