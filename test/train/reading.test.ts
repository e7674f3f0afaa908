/**
 * The reading stage: glyph crops along a palette curriculum, the objective on PS3's trunk, and
 * `ps3 train-read` (kill-and-resume on the same curve, a PS3 folder to go on from, refusals).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel, loadModel, type PS3Model } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { Weights } from '../../src/model/weights.js';
import { GLYPH_CHARS } from '../../src/data/glyphs.js';
import { COLOURS, luminance } from '../../src/data/scene/colours.js';
import { glyphCrop, paletteAt, parseCurriculum, type GlyphCropSpec } from '../../src/data/glyphCrops.js';
import { lookRows } from '../../src/train/readingLook.js';
import { packForced } from '../../src/model/selection.js';
import { blockCells, cropTokens, keepLoss, newReadingHead, readingLogits, readingLossAndGrads, readingTrainable, type KeepBatch, type ReadingBatch, type ReadingStep } from '../../src/train/reading.js';
import { keepBatchAt, keepDistance, keepPool } from '../../src/train/readingKeep.js';
import { look, lowRes, ScaledImages } from '../../src/model/encoder.js';
import { finalNorm } from '../../src/model/vit.js';
import { normalise } from '../../src/io/pixels.js';
import { glyphBatch } from '../../src/train/readingEval.js';
import { sceneGlyphs } from '../../src/data/sceneGlyphs.js';
import { renderScene } from '../../src/data/scene/render.js';
import { sceneRng } from '../../src/data/synth.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { killAfterMetricLines } from '../killMidRun.js';

const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-read-'));
const spec = (curriculum = 'grey:4,named'): GlyphCropSpec => ({ size: 56, glyphPx: [18, 32], curriculum: parseCurriculum(curriculum) });

/** The distinct colours of a crop, and whether its one-pixel border holds the background alone. */
function inspect(rgb: Uint8Array, size: number): { colours: Array<[number, number, number]>; borderPlain: boolean; background: [number, number, number] } {
  const seen = new Map<string, [number, number, number]>();
  for (let p = 0; p < size * size; p++) {
    const c: [number, number, number] = [rgb[p * 3]!, rgb[p * 3 + 1]!, rgb[p * 3 + 2]!];
    seen.set(c.join(','), c);
  }
  const background: [number, number, number] = [rgb[0]!, rgb[1]!, rgb[2]!];
  let borderPlain = true;
  for (let i = 0; i < size; i++) {
    for (const [x, y] of [[i, 0], [i, size - 1], [0, i], [size - 1, i]] as const) {
      const p = (y * size + x) * 3;
      if (rgb[p] !== background[0] || rgb[p + 1] !== background[1] || rgb[p + 2] !== background[2]) borderPlain = false;
    }
  }
  return { colours: [...seen.values()], borderPlain, background };
}

test('parseCurriculum: counted stages, then one that goes on; mistakes refused by name', () => {
  const c = parseCurriculum('grey:10,random:5,named');
  assert.deepEqual(c, [{ palette: 'grey', crops: 10 }, { palette: 'random', crops: 5 }, { palette: 'named', crops: null }]);
  assert.equal(paletteAt(c, 9), 'grey');
  assert.equal(paletteAt(c, 10), 'random');
  assert.equal(paletteAt(c, 15), 'named');
  assert.equal(paletteAt(c, 10_000_000), 'named');
  assert.deepEqual(parseCurriculum('named'), [{ palette: 'named', crops: null }]);
  assert.throws(() => parseCurriculum('grey'.concat(',')), /PALETTE:CROPS/);
  assert.throws(() => parseCurriculum('blue:3,named'), /unknown palette "blue"/);
  assert.throws(() => parseCurriculum('grey,named'), /stage "grey" needs a positive whole count/);
  assert.throws(() => parseCurriculum('grey:0,named'), /stage "grey:0" needs a positive whole count/);
  assert.throws(() => parseCurriculum('grey:5,named:9'), /last stage goes on/);
});

test('glyph crops: a function of seed and index; each palette as described; the glyph whole inside', () => {
  const s = spec('grey:50,random:50,named');
  assert.deepEqual(glyphCrop(s, 3, 7).rgb, glyphCrop(s, 3, 7).rgb);
  assert.notDeepEqual(glyphCrop(s, 3, 7).rgb, glyphCrop(s, 3, 8).rgb);
  assert.notDeepEqual(glyphCrop(s, 3, 7).rgb, glyphCrop(s, 4, 7).rgb);
  const named = COLOURS.map((c) => c.rgb);
  const chars = new Set<number>();
  for (let i = 0; i < 150; i++) {
    const crop = glyphCrop(s, 1, i);
    chars.add(crop.char);
    assert.equal(crop.palette, i < 50 ? 'grey' : i < 100 ? 'random' : 'named');
    const { colours, borderPlain, background } = inspect(crop.rgb, s.size);
    assert.equal(colours.length, 2, `crop ${i}: a glyph in one colour on a plain ground`);
    assert.ok(borderPlain, `crop ${i}: the glyph touches the edge`);
    const ink = colours.find((c) => c.join() !== background.join())!;
    if (crop.palette === 'grey') {
      for (const c of colours) assert.ok(c[0] === c[1] && c[1] === c[2], `crop ${i}: ${c} is not a grey`);
      assert.ok(Math.abs(ink[0] - background[0]) >= 100);
    } else if (crop.palette === 'random') {
      assert.ok(Math.abs(luminance(ink) - luminance(background)) > 90);
    } else {
      // each within the scenes' jitter (8) of a named colour, the pair far apart in luminance
      for (const c of colours) assert.ok(named.some((n) => n.every((v, k) => Math.abs(v - c[k]!) <= 8)), `crop ${i}: ${c} is no named colour`);
      assert.ok(Math.abs(luminance(ink) - luminance(background)) > 90 - 16);
    }
  }
  assert.ok(chars.size > 25, `characters drawn: ${chars.size} of ${GLYPH_CHARS.length}`);
  // a labelled shape on a muted ground: the glyph and the shape in named colours (jittered by 8
  // and 12), far apart in luminance, and the ground around the shape somewhere
  const near = (c: readonly number[], by: number): boolean => named.some((n) => n.every((v, k) => Math.abs(v - c[k]!) <= by));
  let grounds = 0;
  for (let i = 0; i < 40; i++) {
    const crop = glyphCrop(s, 2, i, 'shape');
    const { colours } = inspect(crop.rgb, s.size);
    const inks = colours.filter((c) => near(c, 8));
    const shapes = colours.filter((c) => near(c, 12));
    assert.ok(inks.some((ink) => shapes.some((sh) => Math.abs(luminance(ink) - luminance(sh)) > 90 - 20)), `shape crop ${i}: no named glyph on a named shape among ${colours.length} colours`);
    if (colours.length >= 3) grounds++;
  }
  assert.ok(grounds > 20, `crops showing the ground beside the shape: ${grounds} of 40`);
});

test('glyph batch: each crop a g x g block of the top-scale grid, pixels normalised', async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 1);
  const b = glyphBatch(model, spec(), 0, 0, 5);
  const grid = 224 / 14;
  assert.equal(b.cells.length, 5 * 16);
  for (let i = 0; i < 5; i++) {
    const cells = b.cells.subarray(i * 16, i * 16 + 16);
    const [r0, c0] = [Math.floor(cells[0]! / grid), cells[0]! % grid];
    cells.forEach((cell: number, k: number) => assert.equal(cell, (r0 + Math.floor(k / 4)) * grid + c0 + (k % 4)));
    assert.ok(r0 + 4 <= grid && c0 + 4 <= grid);
  }
  const crop = glyphCrop(spec(), 0, 2);
  assert.ok(Math.abs(b.pixels[2 * 3 * 56 * 56 + 1 * 56 * 56]! - (crop.rgb[1]! / 127.5 - 1)) < 1e-6);
  assert.equal(b.labels[2], crop.char);
  model.weights.dispose();
});

test('scene glyphs: each one-character label cut whole in the block of patches nearest centred on it, with its label colour', () => {
  let found = 0;
  const heights: number[] = [];
  for (let i = 0; i < 3; i++) {
    const scene = renderScene(sceneRng(1_000_000, i), { width: 1512, height: 1512 });
    const glyphs = sceneGlyphs(scene, 14, 4);
    const labelled = scene.objects.filter((o) => o.label !== null && o.label.length === 1);
    assert.ok(glyphs.length <= labelled.length && glyphs.length > 0, `scene ${i}: ${glyphs.length} of ${labelled.length}`);
    for (const g of glyphs) {
      assert.equal(g.rgb.length, 56 * 56 * 3);
      assert.ok(g.row0 >= 0 && g.col0 >= 0 && (g.row0 + 4) * 14 <= 1512 && (g.col0 + 4) * 14 <= 1512);
      // the object whose label it is: its label colour is in the block, and its box overlaps it
      const o = labelled.find((o) => GLYPH_CHARS[g.char] === o.label!.toUpperCase() && o.box[0] < (g.col0 + 4) * 14 && o.box[2] > g.col0 * 14 && o.box[1] < (g.row0 + 4) * 14 && o.box[3] > g.row0 * 14);
      assert.ok(o, `a ${GLYPH_CHARS[g.char]} at cell (${g.row0}, ${g.col0}) is no labelled object's`);
      let ink = 0;
      for (let p = 0; p < 56 * 56; p++) if (g.rgb[p * 3] === o.labelRgb![0] && g.rgb[p * 3 + 1] === o.labelRgb![1] && g.rgb[p * 3 + 2] === o.labelRgb![2]) ink++;
      assert.ok(ink >= 6, `the ${GLYPH_CHARS[g.char]} at (${g.row0}, ${g.col0}) shows ${ink} pixels of its label colour`);
      heights.push(g.height);
      found++;
    }
  }
  assert.ok(found >= 5, `glyphs found: ${found}`);
  assert.ok(Math.max(...heights) <= 56 && Math.min(...heights) >= 12);
});

test('reading objective: the loss is the softmax cross-entropy of the logits; steps on a batch lower it; only the trunk and head learn', async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 2);
  const w = new Weights(new Map([...model.weights.entries(), ...newReadingHead(32, GLYPH_CHARS.length, 2)]));
  const trainable = readingTrainable(w.keys());
  assert.ok(trainable.includes('reading_head.weight') && trainable.includes('vision_model.trunk.blocks.0.attn.qkv.weight') && trainable.includes('vision_model.trunk.patch_embed.proj.weight'));
  assert.ok(!trainable.some((k) => k.includes('pos_emb') || k.startsWith('text_model.') || k.includes('attn_pool') || k.includes('selection')));
  const b = glyphBatch(model, spec(), 0, 0, 6);
  const logits = readingLogits(w, model.config.vision, b).arraySync() as number[][];
  const expected = logits.reduce((sum, row, i) => {
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    return sum + lse - row[b.labels[i]!]!;
  }, 0) / logits.length;
  const first = readingLossAndGrads(w, model.config.vision, b, trainable);
  assert.ok(Math.abs(first.loss - expected) < 1e-4, `loss ${first.loss} vs ${expected}`);
  assert.deepEqual([...first.grads.keys()], trainable);
  tf.dispose([...first.grads.values()]);
  let loss = first.loss;
  for (let step = 0; step < 8; step++) {
    const r = readingLossAndGrads(w, model.config.vision, b, trainable);
    for (const [k, g] of r.grads) w.replace(k, tf.tidy(() => tf.sub(w.get(k), tf.mul(g, 0.5))));
    tf.dispose([...r.grads.values()]);
    loss = r.loss;
  }
  assert.ok(loss < first.loss - 0.5, `loss after 8 steps ${loss} against ${first.loss}`);
  w.dispose();
});

/** Six descent steps on the reading loss plus the keep term at weight 50 bring the trunk's tokens nearer the kept ones; `check` sees each step. */
function keepDescent(w: Weights, model: PS3Model, batch: ReadingBatch, trainable: string[], pool: KeepBatch[], check?: (r: ReadingStep, step: number) => void): void {
  const before = keepDistance(w, model, pool);
  for (let step = 0; step < 6; step++) {
    const r = readingLossAndGrads(w, model.config.vision, batch, trainable, { batch: keepBatchAt(pool, step), weight: 50 });
    check?.(r, step);
    for (const [k, g] of r.grads) w.replace(k, tf.tidy(() => tf.sub(w.get(k), tf.mul(g, 0.01))));
    tf.dispose([...r.grads.values()]);
  }
  const after = keepDistance(w, model, pool);
  assert.ok(after < before * 0.9, `keep distance ${after} against ${before}`);
}

test('keep term: crops of every scale cut as the encoder resizes the scene, with the kept trunk\'s tokens; no pull at the kept trunk itself', async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 2);
  const other = randomModel(presetConfig('micro'), 5);
  const cfg = model.config.vision;
  const pool = keepPool(model, other.weights, { seed: 4, scenes: 2, cropsPerScale: 6, side: 56, batch: 4 });
  // 2 scenes x 6 crops a scale = 12 a scale, 3 batches of 4 each, the scales taking turns
  assert.deepEqual(pool.map((b) => b.scale), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
  assert.equal(keepBatchAt(pool, 10), pool[1]);
  const again = keepPool(model, other.weights, { seed: 4, scenes: 2, cropsPerScale: 6, side: 56, batch: 4 });
  assert.deepEqual(again.map((b) => [...b.cells]), pool.map((b) => [...b.cells]));
  // each crop is its block of the scene as the encoder sees that scale
  const S = cfg.scales[2]!;
  const scenes = [0, 1].map((i) => new ScaledImages(cfg, { data: normalise({ data: renderScene(sceneRng(4, i), { width: S, height: S }).rgb, width: S, height: S }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), batch: 1, height: S, width: S }));
  for (const b of pool.slice(0, 3)) {
    const image = scenes.map((sc) => sc.at(b.scale!));
    const grid = image[0]!.width / 14;
    const [row0, col0] = [Math.floor(b.cells[0]! / grid), b.cells[0]! % grid];
    assert.deepEqual([...b.cells.slice(0, 4)], [0, 1, 2, 3].map((q) => row0 * grid + col0 + q));
    const at = (c: number, y: number, x: number): number[] => image.map((im) => im.data[c * im.height * im.width + (row0 * 14 + y) * im.width + col0 * 14 + x]!);
    for (const [c, y, x] of [[0, 0, 0], [1, 20, 33], [2, 55, 55]] as const) assert.ok(at(c, y, x).includes(b.pixels[(c * 56 + y) * 56 + x]!), `scale ${b.scale} pixel ${c},${y},${x}`);
    // the kept tokens are the other trunk's
    const kept = cropTokens(other.weights, cfg, b);
    assert.deepEqual([...(kept.dataSync() as Float32Array)], [...b.kept]);
    kept.dispose();
  }
  assert.equal(keepDistance(other.weights, model, pool), 0);
  // the term is the mean squared difference of every token's every channel
  const mine = Array.from(cropTokens(model.weights, cfg, pool[0]!).dataSync());
  const hand = mine.reduce((sum, v, i) => sum + (v - pool[0]!.kept[i]!) ** 2, 0) / mine.length;
  const term = keepLoss(model.weights, cfg, pool[0]!);
  assert.ok(Math.abs(term.dataSync()[0]! - hand) < 1e-5 * hand, `${term.dataSync()[0]} vs ${hand}`);
  term.dispose();

  const w = new Weights(new Map([...model.weights.entries(), ...newReadingHead(32, GLYPH_CHARS.length, 2)]));
  const trainable = readingTrainable(w.keys());
  const b = glyphBatch(model, spec(), 0, 0, 4);
  const plain = readingLossAndGrads(w, cfg, b, trainable);
  assert.ok(Number.isNaN(plain.keep));
  // kept at its own tokens, the term is zero and pulls nowhere
  const self = readingLossAndGrads(w, cfg, b, trainable, { batch: keepPool(model, model.weights, { seed: 4, scenes: 1, cropsPerScale: 4, side: 56, batch: 4 })[0]!, weight: 3 });
  assert.equal(self.keep, 0);
  assert.ok(Math.abs(self.loss - plain.loss) < 1e-6);
  for (const k of trainable) {
    const [g0, g1] = [plain.grads.get(k)!.dataSync(), self.grads.get(k)!.dataSync()];
    assert.ok(g0.every((v, i) => Math.abs(v - g1[i]!) < 1e-5), k);
  }
  // kept at another trunk's, the term is as reported and its steps bring the tokens nearer
  keepDescent(w, model, b, trainable, pool, (r, step) => {
    assert.ok(r.keep > 0);
    // the loss reported is the reading cross-entropy alone
    if (step === 0) assert.ok(Math.abs(r.loss - plain.loss) < 1e-6);
  });
  tf.dispose([...plain.grads.values(), ...self.grads.values()]);
  w.dispose();
  other.weights.dispose();
});

const readArgs = (out: string, extra: string[] = []): string[] => [CLI, 'train-read', '--preset', 'micro', '--out', out, '--steps', '10', '--batch', '4', '--save-every', '2', '--warmup', '2', '--curriculum', 'grey:16,named', '--eval-every', '5', '--eval-crops', '16', '--eval-scenes', '2', ...extra];

function metrics(out: string): Array<Record<string, number | string>> {
  return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
}

test('ps3 train-read: killed mid-run and resumed, it follows the uninterrupted curve; the checkpoint is a PS3 folder plus its head', async () => {
  const a = path.join(tmp, 'a');
  const ra = spawnSync(process.execPath, readArgs(a), { encoding: 'utf8' });
  assert.equal(ra.status, 0, ra.stderr);
  const full = metrics(a);
  assert.deepEqual(full.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(full.map((m) => m.palette), ['grey', 'grey', 'grey', 'grey', 'named', 'named', 'named', 'named', 'named', 'named']);
  for (const m of [full[4]!, full[9]!]) assert.ok(typeof m['val_grey'] === 'number' && typeof m['val_named'] === 'number' && typeof m['val_scene'] === 'number');

  const b = path.join(tmp, 'b');
  const killedAt = await killAfterMetricLines(readArgs(b), b, 5);
  assert.ok(killedAt < 10);
  const rb = spawnSync(process.execPath, [...readArgs(b, ['--resume'])].filter((x) => x !== '--preset' && x !== 'micro'), { encoding: 'utf8' });
  assert.equal(rb.status, 0, rb.stderr);
  const resumed = metrics(b);
  assert.deepEqual(resumed.map((m) => m.step), full.map((m) => m.step));
  resumed.forEach((m, i) => assert.ok(Math.abs((m.loss as number) - (full[i]!.loss as number)) < 1e-4, `step ${m.step}: ${m.loss} vs ${full[i]!.loss}`));

  await initEngine();
  const model = loadModel(path.join(a, 'checkpoint'));
  assert.equal(model.config.vision.trunk.width, 32);
  const head = readSafetensors(path.join(a, 'checkpoint', 'reading_head.safetensors'));
  assert.deepEqual(head.get('reading_head.weight')!.shape, [GLYPH_CHARS.length, 32]);
  // the trunk learnt, the position embedding stayed
  const start = randomModel(presetConfig('micro'), 0);
  const moved = (k: string): boolean => model.weights.values(k).some((v, i) => v !== start.weights.values(k)[i]);
  assert.ok(moved('vision_model.trunk.blocks.1.mlp.fc2.weight'));
  assert.ok(!moved('vision_model.trunk.pos_embed'));
  model.weights.dispose();
  start.weights.dispose();

  // the next stage: another curriculum from the checkpoint, its head carried on
  const c = path.join(tmp, 'c');
  const rc = spawnSync(process.execPath, [CLI, 'train-read', '--init', path.join(a, 'checkpoint'), '--out', c, '--steps', '2', '--batch', '4', '--curriculum', 'shape', '--eval-every', '0'], { encoding: 'utf8' });
  assert.equal(rc.status, 0, rc.stderr);
  assert.match(rc.stderr, /head from .*a\/checkpoint\/reading_head\.safetensors/);
  assert.deepEqual(metrics(c).map((m) => m.palette), ['shape', 'shape']);
});

test('read in a look: crops beside a scene\'s low-res keys and values are the encoder\'s own look at those cells', async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 3);
  const cfg = model.config.vision;
  const [S, P, side] = [224, 14, 28];
  const scene = renderScene(sceneRng(1_000_000, 0), { width: S, height: S });
  const pixels = { data: normalise({ data: scene.rgb, width: S, height: S }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), batch: 1, height: S, width: S };
  const images = new ScaledImages(cfg, pixels);
  const top = images.at(cfg.scales.length - 1);
  const grid = S / P;
  // two 2 x 2 blocks of the top scale, cut from the image the encoder sees there
  const blocks: Array<[number, number]> = [[2, 4], [9, 1]];
  const crops = new Float32Array(blocks.length * 3 * side * side);
  blocks.forEach(([r0, c0], b) => {
    for (let c = 0; c < 3; c++) for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) crops[((b * 3 + c) * side + y) * side + x] = top.data[(c * S + r0 * P + y) * S + c0 * P + x]!;
  });
  const cells = blocks.map(([r, c]) => blockCells(r, c, 2, grid));
  const low = lowRes(model.weights, cfg, pixels, true, images);
  const batch = { batch: 2, side, pixels: crops, cells: Int32Array.from(cells.flatMap((x) => [...x])) };
  const inLook = cropTokens(model.weights, cfg, { ...batch, context: low.kvCache }); // [2, 4, D]
  const alone = cropTokens(model.weights, cfg, batch);
  // the encoder's look at exactly those cells: its tokens in row-major order of the cells
  const ids = [...cells.flatMap((x) => [...x])].sort((a, b) => a - b);
  const chosen = cfg.scales.slice(1).map((_, i) => [i === cfg.scales.length - 2 ? Int32Array.from(ids) : new Int32Array(0)]);
  const hidden = look(model.weights, cfg, images, 1, chosen, low.kvCache);
  const theirs = finalNorm(model.weights, cfg.trunk, hidden[hidden.length - 1]!).arraySync() as number[][][];
  const mine = inLook.arraySync() as number[][][];
  let worst = 0;
  cells.forEach((block, b) => block.forEach((cell, j) => mine[b]![j]!.forEach((v, d) => (worst = Math.max(worst, Math.abs(v - theirs[0]![ids.indexOf(cell)]![d]!))))));
  assert.ok(worst < 1e-4, `largest difference ${worst}`);
  const apart = tf.max(tf.abs(tf.sub(inLook, alone))).dataSync()[0]!;
  assert.ok(apart > 1e-2, `alone and in a look alike (${apart})`);
  tf.dispose([inLook, alone, ...hidden, ...low.hiddenStates]);
  low.kvCache.forEach((kv) => tf.dispose([kv.k, kv.v]));
  model.weights.dispose();
});

test('a look\'s rows of a block: the chosen cells numbered scale by scale, row-major; a cell not chosen is an error', () => {
  const map = (height: number, width: number, on: number[]) => ({ height, width, data: Uint8Array.from({ length: height * width }, (_, j) => (on.includes(j) ? 1 : 0)) });
  // scale 1: cells 1, 3 (rows 0, 1); scale 2: cells 0, 5, 6, 9, 10 (rows 2-6)
  const maps = [map(2, 2, [1, 3]), map(4, 4, [0, 5, 6, 9, 10])];
  assert.deepEqual([...lookRows(maps, 1, blockCells(1, 1, 2, 4))], [3, 4, 5, 6]);
  assert.deepEqual([...lookRows(maps, 0, Int32Array.from([3]))], [1]);
  assert.throws(() => lookRows(maps, 1, blockCells(0, 0, 2, 4)), /cell 1 of scale 2 is not in the look/);
  assert.deepEqual(packForced([16, 16, 4, 36, 8], 36), [[0, 1, 2], [3], [4]]);
});

test('ps3 eval reading: the head on crops of every palette and on held-out scenes\' characters; JSON and a chart', () => {
  const report = path.join(tmp, 'reading', 'r.json');
  const r = spawnSync(process.execPath, [CLI, 'eval', 'reading', '--model', path.join(tmp, 'a', 'checkpoint'), '--scenes', '3', '--crops', '20', '--out', report], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(fs.readFileSync(report, 'utf8')) as { crops: Record<string, number>; crop: number; scenes: { count: number; glyphs: number; accuracy: number | null; byHeight: Array<{ n: number }> }; chance: number };
  assert.deepEqual(Object.keys(j.crops), ['grey', 'named', 'random', 'shape']);
  for (const v of Object.values(j.crops)) assert.ok(v >= 0 && v <= 1 && Math.abs(v * 20 - Math.round(v * 20)) < 1e-9);
  assert.equal(j.crop, 56);
  assert.equal(j.scenes.count, 3);
  assert.equal(j.scenes.byHeight.reduce((n, b) => n + b.n, 0), j.scenes.glyphs);
  assert.ok(Math.abs(j.chance - 1 / 36) < 1e-12);
  assert.ok(fs.statSync(report.replace(/\.json$/, '.png')).size > 1000);
  // --in-look: the same scenes' characters, each read from the look forced onto its block
  const looked = path.join(tmp, 'reading', 'look.json');
  const rl = spawnSync(process.execPath, [CLI, 'eval', 'reading', '--model', path.join(tmp, 'a', 'checkpoint'), '--scenes', '3', '--crops', '20', '--in-look', '--out', looked], { encoding: 'utf8' });
  assert.equal(rl.status, 0, rl.stderr);
  const jl = JSON.parse(fs.readFileSync(looked, 'utf8')) as { scenes: { glyphs: number; accuracy: number; in_look: { glyphs: number; accuracy: number; look_tokens: number } } };
  assert.ok(j.scenes.glyphs > 0);
  assert.equal(jl.scenes.glyphs, j.scenes.glyphs);
  assert.equal(jl.scenes.accuracy, j.scenes.accuracy, 'the crop reading is unchanged');
  assert.equal(jl.scenes.in_look.glyphs, j.scenes.glyphs);
  assert.ok(jl.scenes.in_look.accuracy >= 0 && jl.scenes.in_look.accuracy <= 1);
  // micro's look takes 24 patches: each block's 16 and a few more
  assert.ok(jl.scenes.in_look.look_tokens >= 16 && jl.scenes.in_look.look_tokens <= 24, String(jl.scenes.in_look.look_tokens));
  assert.match(rl.stdout, /scene characters in a look/);
  const plain = spawnSync(process.execPath, [CLI, 'eval', 'reading', '--model', 'models/ps3-tiny', '--out', path.join(tmp, 'reading', 'x.json')], { encoding: 'utf8' });
  assert.equal(plain.status, 2);
  assert.match(plain.stderr.trim(), /^ps3: models\/ps3-tiny: no reading_head\.safetensors \(give a "ps3 train-read" checkpoint folder\)$/);
});

test('keep term in a look: one scene\'s crops of a high-res scale, clear of its labels and signs, beside its own low-res pass, both kept; no pull at the kept trunk itself', async () => {
  await initEngine();
  const model = randomModel(presetConfig('micro'), 2);
  const other = randomModel(presetConfig('micro'), 5);
  const cfg = model.config.vision;
  const o = { seed: 4, scenes: 2, cropsPerScale: 6, side: 56, batch: 3, inLook: true };
  const pool = keepPool(model, other.weights, o);
  // at most one batch for each of 2 scenes x the 2 high-res scales, up to 3 crops each, in a fixed
  // order (micro's crops are a quarter of its top scale: many cannot keep clear of the labels)
  assert.ok(pool.length >= 1 && pool.length <= 4, `${pool.length} batches`);
  assert.ok(pool.every((b) => b.scale === 1 || b.scale === 2));
  assert.ok(pool.every((b) => b.batch >= 1 && b.batch <= 3 && b.cells.length === b.batch * 16 && b.lowres !== undefined));
  assert.deepEqual(keepPool(model, other.weights, o).map((b) => [b.scale, ...b.cells]), pool.map((b) => [b.scale, ...b.cells]));
  const s0 = cfg.scales[0]!;
  const S = cfg.scales[2]!;
  // no crop touches a label or a sign of its scene (known by its low-res image)
  const drawn = [0, 1].map((i) => renderScene(sceneRng(4, i), { width: S, height: S }));
  const lows = drawn.map((d) => new ScaledImages(cfg, { data: normalise({ data: d.rgb, width: S, height: S }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), batch: 1, height: S, width: S }).sized(s0, s0));
  for (const k of pool) {
    const i = lows.findIndex((l) => l.every((v, j) => v === k.lowres!.pixels[j]));
    assert.ok(i >= 0, 'the batch\'s low-res image is one of its scenes\'');
    const grid = cfg.scales[k.scale!]! / 14;
    const px = S / grid;
    for (let c = 0; c < k.batch; c++) {
      const first = k.cells[c * 16]!;
      const [y0, x0] = [Math.floor(first / grid) * px, (first % grid) * px];
      for (const w of drawn[i]!.objects.filter((x) => x.label !== null).map((x) => x.box)) assert.ok(w[2] <= x0 || w[0] >= x0 + 4 * px || w[3] <= y0 || w[1] >= y0 + 4 * px, `scene ${i} scale ${k.scale} crop ${c} touches ${w}`);
    }
  }
  const b = pool[0]!;
  // the kept tokens: the other trunk's low-res pass, and the crops as a look beside it, not alone
  const pass = lowRes(other.weights, cfg, { data: b.lowres!.pixels, batch: 1, height: s0, width: s0 }, true);
  const low = finalNorm(other.weights, cfg.trunk, pass.hiddenStates[pass.hiddenStates.length - 1]!);
  const near = (x: ArrayLike<number>, y: ArrayLike<number>): boolean => Array.from(x).every((v, i) => Math.abs(v - y[i]!) < 1e-5);
  assert.ok(near(low.dataSync(), b.lowres!.kept));
  const look = cropTokens(other.weights, cfg, { ...b, context: pass.kvCache });
  assert.ok(near(look.dataSync(), b.kept));
  const alone = cropTokens(other.weights, cfg, b);
  assert.ok(!near(alone.dataSync(), b.kept), 'the look\'s kept tokens are not the crops\' alone');
  tf.dispose([low, look, alone, ...pass.hiddenStates, ...pass.kvCache.flatMap((kv) => [kv.k, kv.v])]);
  assert.equal(keepDistance(other.weights, model, pool), 0);
  // the term: the mean squared difference over the low-res tokens and the look's together
  const mine = tf.tidy(() => {
    const p = lowRes(model.weights, cfg, { data: b.lowres!.pixels, batch: 1, height: s0, width: s0 }, true);
    return [finalNorm(model.weights, cfg.trunk, p.hiddenStates[p.hiddenStates.length - 1]!).dataSync(), cropTokens(model.weights, cfg, { ...b, context: p.kvCache }).dataSync()];
  });
  const sq = (x: ArrayLike<number>, y: ArrayLike<number>): number => Array.from(x).reduce((sum, v, i) => sum + (v - y[i]!) ** 2, 0);
  const hand = (sq(mine[0]!, b.lowres!.kept) + sq(mine[1]!, b.kept)) / (mine[0]!.length + mine[1]!.length);
  const term = keepLoss(model.weights, cfg, b);
  assert.ok(Math.abs(term.dataSync()[0]! - hand) < 1e-5 * hand, `${term.dataSync()[0]} vs ${hand}`);
  term.dispose();

  const w = new Weights(new Map([...model.weights.entries(), ...newReadingHead(32, GLYPH_CHARS.length, 2)]));
  const trainable = readingTrainable(w.keys());
  const batch = glyphBatch(model, spec(), 0, 0, 4);
  const plain = readingLossAndGrads(w, cfg, batch, trainable);
  const self = readingLossAndGrads(w, cfg, batch, trainable, { batch: keepPool(model, model.weights, { ...o, scenes: 1 })[0]!, weight: 3 });
  // zero up to rounding: the pool's pass and the step's order their sums alike but not always identically
  assert.ok(self.keep < 1e-9, String(self.keep));
  for (const k of trainable) assert.ok(near(plain.grads.get(k)!.dataSync(), self.grads.get(k)!.dataSync()), k);
  keepDescent(w, model, batch, trainable, pool);
  tf.dispose([...plain.grads.values(), ...self.grads.values()]);
  w.dispose();
  other.weights.dispose();
});

test('ps3 train-read --keep: the keep term in metrics.jsonl and at the checks (val_keep); a resume keeps it', () => {
  const from = path.join(tmp, 'a', 'checkpoint');
  const k = path.join(tmp, 'k');
  const args = (out: string, extra: string[]): string[] => [CLI, 'train-read', '--out', out, '--steps', '4', '--batch', '4', '--curriculum', 'named', '--eval-every', '2', '--eval-crops', '8', '--eval-scenes', '1', '--keep', from, '--keep-scenes', '2', '--keep-batch', '4', ...extra];
  const r = spawnSync(process.execPath, args(k, ['--init', from, '--keep-weight', '2']), { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = metrics(k);
  assert.deepEqual(m.map((x) => x.step), [1, 2, 3, 4]);
  // the run starts at the kept trunk: nothing to keep at the first step, then the tokens move
  assert.equal(m[0]!['keep'], 0);
  assert.ok((m[3]!['keep'] as number) > 0);
  for (const x of [m[1]!, m[3]!]) assert.ok(typeof x['val_keep'] === 'number' && x['val_keep'] >= 0);
  assert.ok((m[3]!['val_keep'] as number) > 0);
  const again = spawnSync(process.execPath, args(k, ['--resume', '--keep-weight', '3']), { encoding: 'utf8' });
  assert.equal(again.status, 2);
  // in a look: the keep term and val_keep are the look's, and a resume must keep it
  const l = path.join(tmp, 'kl');
  const inLook = spawnSync(process.execPath, args(l, ['--init', from, '--keep-weight', '2', '--keep-in-look', '--steps', '2']), { encoding: 'utf8' });
  assert.equal(inLook.status, 0, inLook.stderr);
  const ml = metrics(l);
  assert.ok((ml[0]!['keep'] as number) < 1e-9);
  assert.ok((ml[1]!['keep'] as number) > 0 && (ml[1]!['val_keep'] as number) > 0);
  const plain = spawnSync(process.execPath, args(l, ['--resume', '--keep-weight', '2', '--steps', '2']), { encoding: 'utf8' });
  assert.equal(plain.status, 2);
  assert.match(plain.stderr.trim(), /--keep-in-look differ from the run's \(\{.*"inLook":true\}\)/);
  assert.match(again.stderr.trim(), /^ps3: --resume: --keep, --keep-weight, --keep-scenes, --keep-batch and --keep-in-look differ from the run's \(\{"from":".*","weight":2,"scenes":2,"batch":4\}\); a resumed run keeps its crops and schedule$/);
});

test('ps3 train-read --context-scenes: the crops read as one look beside a scene; the checks read real looks too (val_scene_look); a resume keeps it', () => {
  const from = path.join(tmp, 'a', 'checkpoint');
  const c = path.join(tmp, 'ctx');
  const args = (extra: string[]): string[] => [CLI, 'train-read', '--out', c, '--steps', '3', '--batch', '4', '--curriculum', 'named', '--eval-every', '3', '--eval-crops', '8', '--eval-scenes', '2', ...extra];
  const r = spawnSync(process.execPath, args(['--init', from, '--context-scenes', '2']), { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /crops read as one look beside the low-res tokens of 2 scenes/);
  const m = metrics(c);
  assert.deepEqual(m.map((x) => x.step), [1, 2, 3]);
  assert.ok(m.every((x) => Number.isFinite(x.loss as number)));
  const v = m[2]!['val_scene_look'];
  assert.ok(typeof v === 'number' && v >= 0 && v <= 1, String(v));
  assert.ok(!('val_scene_look' in m[0]!));
  const again = spawnSync(process.execPath, args(['--resume', '--steps', '4']), { encoding: 'utf8' });
  assert.equal(again.status, 2);
  assert.match(again.stderr.trim(), /^ps3: --resume: --steps differs from the run's \(3\)/);
  const other = spawnSync(process.execPath, args(['--resume', '--context-scenes', '3']), { encoding: 'utf8' });
  assert.equal(other.status, 2);
  assert.match(other.stderr.trim(), /^ps3: --resume: --context-scenes differs from the run's \(2\); a resumed run keeps its crops and schedule$/);
});

test('ps3 train-read: mistakes exit 2 with one line naming them, before any step', () => {
  const refused = (args: string[], pattern: RegExp): void => {
    const r = spawnSync(process.execPath, [CLI, 'train-read', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
  };
  const out = path.join(tmp, 'never');
  refused(['--preset', 'micro', '--out', out, '--crop', '50'], /--crop 50: a crop must be a whole number of 14 px patches/);
  refused(['--preset', 'micro', '--out', out, '--crop', '84'], /--crop 84: 36 patches, more than a look of this model holds \(24; at most 56 px\)/);
  refused(['--preset', 'micro', '--out', out, '--crop', '56', '--glyph-px', '20-60'], /a 60 px glyph does not fit a 56 px crop/);
  refused(['--preset', 'micro', '--out', out, '--glyph-px', 'big'], /--glyph-px must be MIN-MAX/);
  refused(['--preset', 'micro', '--out', out, '--curriculum', 'grey:10,blue'], /unknown palette "blue"/);
  refused(['--preset', 'micro', '--out', out, '--seed', '1000000'], /--seed must be below 1000000/);
  refused(['--out', out], /give --init DIR or --preset NAME/);
  refused(['--init', path.join(tmp, 'nowhere'), '--out', out], /nowhere/);
  refused(['--preset', 'micro', '--out', out, '--keep', 'models/ps3-tiny'], /--keep models\/ps3-tiny: "vision_model\.[a-z_.0-9]+" is \[[0-9, ]+\], the model's is \[[0-9, ]+\]/);
  refused(['--preset', 'micro', '--out', out, '--keep', path.join(tmp, 'nowhere')], /nowhere/);
  refused(['--preset', 'micro', '--out', out, '--keep', path.join(tmp, 'a', 'checkpoint'), '--keep-weight', '0'], /--keep-weight must be positive/);
  refused(['--preset', 'micro', '--out', out, '--keep', path.join(tmp, 'a', 'checkpoint'), '--keep-scenes', '1', '--keep-batch', '30'], /--keep-batch 30: more than the 24 crops a scale that --keep-scenes 1 give/);
  refused(['--preset', 'micro', '--out', out, '--keep-in-look'], /--keep-in-look reads the keep term in a look: give --keep DIR too/);
  assert.ok(!fs.existsSync(out), 'a refused run wrote its --out');
  refused(['--out', path.join(tmp, 'a'), '--resume', '--curriculum', 'named'], /--resume: --curriculum, --glyph-px and --crop differ from the run's \(.*\); a resumed run keeps its crops and schedule/);
  refused(['--preset', 'micro', '--out', path.join(tmp, 'a')], /already holds a checkpoint/);
  // a head of another shape in the --init folder
  const odd = path.join(tmp, 'odd');
  fs.cpSync(path.join(tmp, 'a', 'checkpoint'), odd, { recursive: true });
  writeSafetensors(path.join(odd, 'reading_head.safetensors'), new Map([['reading_head.weight', { shape: [10, 32], data: new Float32Array(320) }], ['reading_head.bias', { shape: [10], data: new Float32Array(10) }]]));
  refused(['--init', odd, '--out', out], /reading_head\.safetensors: "reading_head\.weight" is \[10, 32\], expected \[36, 32\]/);
  assert.ok(!fs.existsSync(out), 'a refused run wrote its --out');
});
