/**
 * The budget arithmetic of src/model/selection.ts (`baseBudgets`, `lookBudgets`, `chooseLook`,
 * `planLooks`) and the per-scale grids (`gridAtScale`, `imageSizeAtScale`). Expectations follow
 * the rules of ../shared/design/ps3-spec.md ("Budget arithmetic") and ps3_spec.py's
 * `budgets`/`choose`/`encode`, worked out by hand in the comments (integer floor division,
 * "remainder to the last scale").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, type VisionConfig } from '../../src/io/config.js';
import { baseBudgets, boxAreaAtGrid, boxCells, boxesToGtMap, boxGroundTruthPerScale, boxToGtMap, chooseLook, forcingCapacity, gridAtScale, groundTruthPerScale, imageSizeAtScale, lookBudgets, ownForcedAtTop, planLooks } from '../../src/model/selection.js';
import { presetConfig } from '../../src/model/presets.js';
import { resize } from '../../src/tensor/resample.js';
import { boxTargets } from '../../src/train/loss.js';

// Compiled to dist/test/model/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');

const fixture: VisionConfig = parseConfig(JSON.parse(fs.readFileSync(path.join(fixtures, 'config.json'), 'utf8')), 'fixture').vision;

function so400m(scales: number[], extra: Record<string, unknown> = {}): VisionConfig {
  return parseConfig(
    {
      model_type: 'ps3',
      vision_config: { model_name: 'vit_so400m_patch14_siglip_378', ps3_scales: scales, max_select_num: 2560, ...extra },
      text_config: { width: 1152, heads: 16, prompt_proj_dim: 1152 },
    },
    'so400m',
  ).vision;
}
const released4k = so400m([378, 756, 1512, 3780]);
const released15k = so400m([378, 756, 1512]);

const sum = (xs: readonly number[]): number => xs.reduce((a, c) => a + c, 0);

// ---------------------------------------------------------------------------------------------
// baseBudgets

test('baseBudgets: the released 4K split is 2560 = 85 + 341 + 2134', () => {
  // pixels 756^2 : 1512^2 : 3780^2 = 1 : 4 : 25 (of 30): floor(2560/30) = 85, floor(4 * 2560/30) = 341,
  // floor(25 * 2560/30) = 2133; 2560 - 2559 = 1 more to the last scale -> 2134
  assert.deepEqual(baseBudgets(released4k), [85, 341, 2134]);
});

test('baseBudgets: the released 1.5K split is 2560 = 512 + 2048', () => {
  // 1 : 4 of 5 -> 512, 2048 exactly
  assert.deepEqual(baseBudgets(released15k), [512, 2048]);
});

test('baseBudgets: the fixture split is 96 = 3 + 12 + 81', () => {
  // 112^2 : 224^2 : 560^2 = 1 : 4 : 25: floor(3.2) = 3, floor(12.8) = 12, 80; 96 - 95 -> last gets 81
  assert.deepEqual(baseBudgets(fixture), [3, 12, 81]);
});

test('baseBudgets: what rounding loses goes to the last scale', () => {
  // 1000: floor(33.33) = 33, floor(133.33) = 133, floor(833.33) = 833 -> 999, last + 1 = 834
  assert.deepEqual(baseBudgets({ ...released4k, maxSelectNum: 1000 }), [33, 133, 834]);
  // 1001 over 1 : 4: floor(200.2) = 200, floor(800.8) = 800 -> 1000, last + 1 = 801
  assert.deepEqual(baseBudgets({ ...released15k, maxSelectNum: 1001 }), [200, 801]);
});

test('baseBudgets: max_select_num_each_scale is used as given', () => {
  const cfg = so400m([378, 756, 1512, 3780], { max_select_num_each_scale: [100, 400, 2060] });
  const b = baseBudgets(cfg);
  assert.deepEqual(b, [100, 400, 2060]);
  b[0] = 7; // a copy: the config is not changed through it
  assert.deepEqual(baseBudgets(cfg), [100, 400, 2060]);
});

// ---------------------------------------------------------------------------------------------
// lookBudgets

test('lookBudgets: no token count and no restriction is the base budget (a copy)', () => {
  const base = [3, 12, 81];
  const b = lookBudgets(base, null, null);
  assert.deepEqual(b, [3, 12, 81]);
  assert.notEqual(b, base);
  b[2] = 0;
  assert.deepEqual(base, [3, 12, 81]);
});

test('lookBudgets: a token count scales each budget down, remainder to the last scale', () => {
  // 1000 of 2560: floor(85000/2560 = 33.2) = 33, floor(341000/2560 = 133.2) = 133,
  // floor(2134000/2560 = 833.6) = 833 -> 999, last + 1 = 834
  assert.deepEqual(lookBudgets([85, 341, 2134], 1000, null), [33, 133, 834]);
  // 32 of 96: 1, 4, 27 exactly
  assert.deepEqual(lookBudgets([3, 12, 81], 32, null), [1, 4, 27]);
  // 48 of 96: floor(1.5) = 1, 6, floor(40.5) = 40 -> 47, last + 1 = 41
  assert.deepEqual(lookBudgets([3, 12, 81], 48, null), [1, 6, 41]);
  // the full count changes nothing
  assert.deepEqual(lookBudgets([3, 12, 81], 96, null), [3, 12, 81]);
  // 1 token: floor(3/96) = 0, floor(12/96) = 0, floor(81/96) = 0, last + 1
  assert.deepEqual(lookBudgets([3, 12, 81], 1, null), [0, 0, 1]);
});

test('lookBudgets: only_select_first_n_scale rescales the first n, later scales keep 1, the last absorbs the difference', () => {
  // fixture, n = 2: head 3 + 12 = 15 of 96: floor(3/15*96 = 19.2) = 19, floor(12/15*96 = 76.8) = 76,
  // then 1; sum 96, so the last gets 96 - 96 = 0 more -> [19, 76, 1] (the fixture's first_n_scale case: 96 tokens)
  assert.deepEqual(lookBudgets([3, 12, 81], null, 2), [19, 76, 1]);
  // 4K, n = 2: head 426: floor(85/426*2560 = 510.8) = 510, floor(341/426*2560 = 2049.2) = 2049, 1 -> 2560
  assert.deepEqual(lookBudgets([85, 341, 2134], null, 2), [510, 2049, 1]);
  // 1.5K, n = 1: 2560, then 1 -> 2561; the last gets 2560 - 2561 = -1 more -> [2560, 0]
  assert.deepEqual(lookBudgets([512, 2048], null, 1), [2560, 0]);
  // n = all scales changes nothing (85/2560*2560 etc. are exact here)
  assert.deepEqual(lookBudgets([85, 341, 2134], null, 3), [85, 341, 2134]);
  // fixture, n = 1: 96, 1, 1 -> 98; the last gets 96 - 98 = -2 more -> [96, 1, -1]. This is the
  // reference's arithmetic as written (its topk then fails on k = -1); see the encoder test.
  assert.deepEqual(lookBudgets([3, 12, 81], null, 1), [96, 1, -1]);
});

test('lookBudgets: with both, the token count applies first and the last scale is topped up to the FULL base sum', () => {
  // 32 tokens -> [1, 4, 27]; n = 2: head 5 of 32: floor(1/5*32 = 6.4) = 6, floor(4/5*32 = 25.6) = 25, 1
  // -> 32; the last gets sum(base) - 32 = 96 - 32 = 64 more -> [6, 25, 65] (as ps3_spec.py's choose does)
  assert.deepEqual(lookBudgets([3, 12, 81], 32, 2), [6, 25, 65]);
  // 1000 -> [33, 133, 834]; head 166: floor(198.8) = 198, floor(801.2) = 801, 1 -> 1000; + 1560 -> 1561
  assert.deepEqual(lookBudgets([85, 341, 2134], 1000, 2), [198, 801, 1561]);
});

// ---------------------------------------------------------------------------------------------
// chooseLook

const pick = (ids: readonly Int32Array[]): number[][] => ids.map((a) => Array.from(a));

test('chooseLook: top-k per scale, ties broken by the lower row-major index, indices sorted ascending', () => {
  const probs = [Float32Array.from([0.5, 0.9, 0.5, 0.9, 0.1, 0.5]), Float32Array.from([0.2, 0.2, 0.2, 0.2])];
  // scale 0: 0.9 at 1 and 3, then the 0.5 tie goes to index 0 (not 2 or 5)
  // scale 1: all tied: the two lowest indices
  const got = chooseLook(probs, null, [3, 2]);
  assert.ok(got.every((a) => a instanceof Int32Array));
  assert.deepEqual(pick(got), [[0, 1, 3], [0, 1]]);
  // a descending-probability scale still comes back sorted by index
  assert.deepEqual(pick(chooseLook([Float32Array.from([0.1, 0.2, 0.3, 0.4])], null, [3])), [[1, 2, 3]]);
});

test('chooseLook: patches taken by an earlier look are excluded', () => {
  const probs = [Float32Array.from([0.5, 0.9, 0.5, 0.9, 0.1, 0.5])];
  const taken = [Uint8Array.from([0, 1, 0, 0, 0, 0])];
  // 1 is gone: 3 (0.9), then the 0.5s at 0 and 2
  assert.deepEqual(pick(chooseLook(probs, taken, [3])), [[0, 2, 3]]);
  // a probability of exactly 0 is still available (only taken patches are excluded)
  assert.deepEqual(pick(chooseLook([Float32Array.from([0, 0, 1])], [Uint8Array.from([0, 0, 1])], [2])), [[0, 1]]);
});

test('chooseLook: a scale short of patches hands its shortfall to the NEXT scale only', () => {
  const probs = [new Float32Array(4).fill(0.5), new Float32Array(9).fill(0.5), new Float32Array(25).fill(0.5)];
  const taken = [Uint8Array.from([1, 0, 1, 0]), new Uint8Array(9), new Uint8Array(25)];
  const budgets = [3, 2, 5];
  // scale 0 has 2 left of 3 wanted: takes both, scale 1 wants 2 + 1 = 3, scale 2 keeps 5
  const got = chooseLook(probs, taken, budgets);
  assert.deepEqual(pick(got), [[1, 3], [0, 1, 2], [0, 1, 2, 3, 4]]);
  assert.deepEqual(budgets, [3, 2, 5], 'the budgets passed in are not modified');
});

test('chooseLook: shortfalls chain forward, never backward, and the last scale just takes what is left', () => {
  const probs = [new Float32Array(4).fill(0.5), new Float32Array(4).fill(0.5), new Float32Array(6).fill(0.5)];
  // scale 0: 1 left of 2 -> passes 1; scale 1: 2 left of 3 + 1 = 4 -> passes 2; scale 2: 3 + 2 = 5 wanted
  const taken = [Uint8Array.from([1, 1, 1, 0]), Uint8Array.from([0, 1, 1, 0]), new Uint8Array(6)];
  assert.deepEqual(pick(chooseLook(probs, taken, [2, 3, 3])), [[3], [0, 3], [0, 1, 2, 3, 4]]);
  // the last scale short: takes its 2 remaining patches; nothing goes back to earlier scales
  const taken2 = [new Uint8Array(4), new Uint8Array(4), Uint8Array.from([1, 1, 0, 1, 0, 1])];
  assert.deepEqual(pick(chooseLook(probs, taken2, [1, 1, 5])), [[0], [0], [2, 4]]);
  // a short middle scale does not give scale 0 any more
  const taken3 = [new Uint8Array(4), Uint8Array.from([1, 1, 1, 1]), new Uint8Array(6)];
  assert.deepEqual(pick(chooseLook(probs, taken3, [1, 2, 1])), [[0], [], [0, 1, 2]]);
});

test('chooseLook: a zero budget chooses nothing', () => {
  assert.deepEqual(pick(chooseLook([Float32Array.from([0.9, 0.8])], null, [0])), [[]]);
});

// ---------------------------------------------------------------------------------------------
// planLooks

test('planLooks: "all" is ceil(max tokens / per-look budget) full looks', () => {
  // fixture square: 8^2 + 16^2 + 40^2 = 1920 patches, 96 a look -> 20 looks
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numLookClose: 'all' }), Array(20).fill(null));
  // released 4K square: 54^2 + 108^2 + 270^2 = 87480 patches, 2560 a look -> ceil(34.17) = 35
  assert.equal(planLooks([85, 341, 2134], 87480, { numLookClose: 'all' }).length, 35);
  // restricted to the first 2 fixture scales: 64 + 256 = 320 -> ceil(3.33) = 4
  assert.equal(planLooks([19, 76, 1], 320, { numLookClose: 'all' }).length, 4);
});

test('planLooks: a number of looks N is clamped to what covers every patch', () => {
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numLookClose: 2 }), [null, null]);
  assert.equal(planLooks([3, 12, 81], 1920, { numLookClose: 50 }).length, 20);
  assert.equal(planLooks([3, 12, 81], 1920, { numLookClose: 20 }).length, 20);
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numLookClose: 0 }), []);
});

test('planLooks: a token budget T: the first look at T if T <= per-look, the last at T mod per-look (or all of it)', () => {
  // 32 <= 96: one look of 32 (the fixture's bottomup_tokens_small: 16 + 32 = 48 tokens)
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 32 }), [32]);
  // exactly one look's worth: one look at 96
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 96 }), [96]);
  // 144 = 96 + 48: a full look, then 144 mod 96 = 48 (the fixture's bottomup_tokens: 16 + 144 tokens)
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 144 }), [null, 48]);
  // 192 mod 96 = 0 -> the last look is a full 96
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 192 }), [null, 96]);
  // 250: ceil(250/96) = 3 looks: full, full, 250 - 192 = 58
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 250 }), [null, null, 58]);
  // more than there are patches: clamped to 1920 = 20 x 96 -> 19 full looks and a last full one
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 5000 }), [...Array(19).fill(null), 96]);
  // 1900: 20 looks, the last at 1900 - 19 x 96 = 76
  assert.deepEqual(planLooks([3, 12, 81], 1920, { numTokenLookClose: 1900 }), [...Array(19).fill(null), 76]);
  // released 4K: 3000 = 2560 + 440
  assert.deepEqual(planLooks([85, 341, 2134], 87480, { numTokenLookClose: 3000 }), [null, 440]);
});

test('planLooks: neither option is a programming error', () => {
  assert.throws(() => planLooks([3, 12, 81], 1920, {}), RangeError);
});

test('"all" looks on the fixture choose 1,900 of the 1,920 high-res patches, as the reference does', () => {
  // budgets [3, 12, 81] over 20 looks: scale 0 takes 20 x 3 = 60 of 64, scale 1 20 x 12 = 240 of
  // 256, scale 2 has only 1600 - 19 x 81 = 61 left for the 81 of the last look: unspent budget only
  // moves to larger scales, so 60 + 240 + 1600 = 1900 (bottomup_all: 16 + 1900 = 1916 tokens).
  const sizes = [64, 256, 1600];
  // any probabilities: use a fixed, busy pattern
  const probs = sizes.map((n, s) => Float32Array.from({ length: n }, (_, i) => ((i * 7919 + s * 104729) % 1000) / 1000));
  const union = sizes.map((n) => new Uint8Array(n));
  const base = baseBudgets(fixture);
  const plan = planLooks(base, sum(sizes), { numLookClose: 'all' });
  assert.equal(plan.length, 20);
  const perLook: number[] = [];
  for (const num of plan) {
    const chosen = chooseLook(probs, perLook.length ? union : null, lookBudgets(base, num, null));
    let n = 0;
    chosen.forEach((ids, s) => ids.forEach((g) => {
      assert.equal(union[s]![g], 0, `look ${perLook.length} chose scale ${s} patch ${g} twice`);
      union[s]![g] = 1;
      n++;
    }));
    perLook.push(n);
  }
  assert.deepEqual(union.map((m) => m.reduce((a, c) => a + c, 0)), [60, 240, 1600]);
  assert.deepEqual(perLook, [...Array(19).fill(96), 61 + 3 + 12]);
});

// ---------------------------------------------------------------------------------------------
// Grids

test('gridAtScale: a square input at the top scale has square grids; scale 0 is the low-res grid', () => {
  assert.deepEqual([0, 1, 2, 3].map((i) => gridAtScale(fixture, 560, 560, i)), [[4, 4], [8, 8], [16, 16], [40, 40]]);
  assert.deepEqual([0, 1, 2, 3].map((i) => gridAtScale(released4k, 3780, 3780, i)), [[27, 27], [54, 54], [108, 108], [270, 270]]);
});

test('gridAtScale: a wide 420 x 560 input keeps its aspect ratio at the high-res scales (6x8, 12x16, 30x40)', () => {
  // w > h: int(56 / 560 * 420) = 42 -> 42 // 14 = 3 patches, x 14 x zoom (2, 4, 10): 84 x 112, 168 x 224, 420 x 560
  assert.deepEqual([0, 1, 2, 3].map((i) => imageSizeAtScale(fixture, 420, 560, i)), [[56, 56], [84, 112], [168, 224], [420, 560]]);
  assert.deepEqual([0, 1, 2, 3].map((i) => gridAtScale(fixture, 420, 560, i)), [[4, 4], [6, 8], [12, 16], [30, 40]]);
});

test('gridAtScale: tall inputs, including one narrower than a patch at low res', () => {
  // h >= w: the mirror image of the wide case
  assert.deepEqual([1, 2, 3].map((i) => gridAtScale(fixture, 560, 420, i)), [[8, 6], [16, 12], [40, 30]]);
  // 560 x 100: int(56 / 560 * 100) = 10 -> 10 // 14 = 0 -> at least 1 patch: widths 28, 56, 140
  assert.deepEqual([1, 2, 3].map((i) => imageSizeAtScale(fixture, 560, 100, i)), [[112, 28], [224, 56], [560, 140]]);
  assert.deepEqual([1, 2, 3].map((i) => gridAtScale(fixture, 560, 100, i)), [[8, 2], [16, 4], [40, 10]]);
  // released 4K, 3780 x 2520: int(378 / 3780 * 2520) = 252 = 18 patches -> 36, 72, 180 wide
  assert.deepEqual([1, 2, 3].map((i) => gridAtScale(released4k, 3780, 2520, i)), [[54, 36], [108, 72], [270, 180]]);
});

test('gridAtScale: the input size only sets the aspect ratio, not the grid size', () => {
  assert.deepEqual([1, 2, 3].map((i) => gridAtScale(fixture, 1000, 1000, i)), [[8, 8], [16, 16], [40, 40]]);
  assert.deepEqual([1, 2, 3].map((i) => gridAtScale(fixture, 300, 400, i)), [[6, 8], [12, 16], [30, 40]]);
});

// ---------------------------------------------------------------------------------------------
// boxAreaAtGrid

test('boxAreaAtGrid equals the box map area-downsampled (adaptive average pooling), divisible or not', () => {
  const cases: Array<[readonly [number, number, number, number], number, number, number]> = [
    [[10.2, 3.7, 40.5, 22.0], 56, 4, 4],
    [[0, 0, 56, 56], 56, 8, 8],
    [[13, 13, 13, 13], 56, 8, 8],
    [[5.5, 30.25, 49.9, 55.9], 70, 9, 6],
    [[-3, 61, 80, 90], 70, 7, 11],
    [[1, 1, 2, 2], 37, 5, 3],
  ];
  for (const [box, size, gh, gw] of cases) {
    const want = resize(boxToGtMap(box, size), 1, size, size, gh, gw, 'area');
    const got = boxAreaAtGrid(box, size, gh, gw);
    assert.equal(got.length, gh * gw);
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6, `${box.join()} at ${gh}x${gw}, cell ${i}: ${v} vs ${want[i]}`));
  }
});

test('boxGroundTruthPerScale forces the patches and gives the targets groundTruthPerScale gives for the box\'s map', () => {
  for (const [cfg, size] of [[presetConfig('tiny').vision, 3780], [fixture, 400]] as const) {
    for (const box of [[100, 100, 185, 185], [700.5, 1200.2, 1290, 1260.9], [0, 3700, 60, 3780], [-20, 5, 3, 9], null] as const) {
      const fromMap = groundTruthPerScale(cfg, boxToGtMap(box === null ? null : [...box], size), 1, size, size);
      const fromBox = boxGroundTruthPerScale(cfg, box === null ? null : [...box], size);
      assert.equal(fromBox.length, fromMap.length);
      fromBox.forEach((g, s) => {
        assert.deepEqual(boxTargets([g]), boxTargets([fromMap[s]!]), `${String(box)} at scale ${s + 1}`);
        g.forEach((v, i) => assert.ok(Math.abs(v - fromMap[s]![i]!) < 1e-6, `${String(box)} at scale ${s + 1}, cell ${i}`));
      });
    }
  }
});

test('forcingCapacity: the first and top grids and the top budget (tiny at 3780: 54, 270, 534 of 640)', () => {
  assert.deepEqual(forcingCapacity(presetConfig('tiny').vision, 3780), { first: 54, top: 270, budget: 534 });
});

test('ownForcedAtTop: the box\'s first-grid cells nearest-upsampled to the top grid, as the look forces them', () => {
  const cfg = presetConfig('tiny').vision;
  const S = 3780;
  const capacity = forcingCapacity(cfg, S);
  for (const box of [[100, 100, 185, 185], [700, 1200, 1290, 1260], [0, 3700, 60, 3780]] as const) {
    const perScale = groundTruthPerScale(cfg, boxToGtMap(box, S), 1, S, S);
    const want: number[] = [];
    perScale.at(-1)!.forEach((v, g) => v > 0 && want.push(g));
    assert.deepEqual(ownForcedAtTop(box, S, capacity), want, box.join());
  }
  // an 85 px box straddling cells takes 2 x 2 blocks of 5 x 5 patches
  assert.equal(ownForcedAtTop([100, 100, 185, 185], S, capacity).length, 100);
});

test('boxCells: the cells with area share > 0, row-major', () => {
  assert.deepEqual(boxCells([0, 0, 10, 10], 56, 4, 4), [0]);
  assert.deepEqual(boxCells([10, 10, 20, 20], 56, 4, 4), [0, 1, 4, 5]);
  boxCells([5.5, 30.25, 49.9, 55.9], 70, 9, 6).forEach((g) => assert.ok(boxAreaAtGrid([5.5, 30.25, 49.9, 55.9], 70, 9, 6)[g]! > 0));
});

test('boxesToGtMap: the union of the boxes\' maps (none: all zeros), into `out` when given', () => {
  const boxes = [[2.5, 1, 6, 3.2], [5, 5, 9.5, 9]] as const;
  const union = boxToGtMap(boxes[0], 12).map((v, i) => Math.max(v, boxToGtMap(boxes[1], 12)[i]!));
  const out = new Float32Array(144).fill(7);
  assert.equal(boxesToGtMap(boxes, 12, out), out);
  assert.deepEqual(out, union);
  assert.deepEqual(boxesToGtMap([], 12), new Float32Array(144));
  assert.deepEqual(boxToGtMap(null, 12), new Float32Array(144).fill(1));
});
