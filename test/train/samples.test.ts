import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { UserError } from '../../src/errors.js';
import type { Annotation, RawSample } from '../../src/io/shards.js';
import { Rng } from '../../src/rng.js';
import { boxCells, boxToGtMap, ownForcedAtTop } from '../../src/model/selection.js';
import { cropImage, makeSample, randomResizedCropWindow, transformBox } from '../../src/train/samples.js';
import type { SampleOptions } from '../../src/train/samples.js';

/** The rows and columns a [size, size] map has ones in, as [first, last] ranges (null if none). */
function extent(gt: Float32Array, size: number): { rows: [number, number] | null; cols: [number, number] | null; count: number } {
  let r0 = size, r1 = -1, c0 = size, c1 = -1, count = 0;
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      if (gt[r * size + c] === 1) {
        count++;
        r0 = Math.min(r0, r);
        r1 = Math.max(r1, r);
        c0 = Math.min(c0, c);
        c1 = Math.max(c1, c);
      } else assert.equal(gt[r * size + c], 0);
    }
  }
  return count === 0 ? { rows: null, cols: null, count } : { rows: [r0, r1], cols: [c0, c1], count };
}

test('gt map: rows floor(y0)..ceil(y1) and columns floor(x0)..ceil(x1), inclusive', () => {
  const gt = boxToGtMap([1.2, 3.5, 4.0, 6.1], 10);
  assert.deepEqual(extent(gt, 10), { rows: [3, 7], cols: [1, 4], count: 5 * 4 });
  // integer edges are included on both sides
  assert.deepEqual(extent(boxToGtMap([2, 2, 3, 3], 8), 8), { rows: [2, 3], cols: [2, 3], count: 4 });
  // a zero-size box is still its (one) pixel
  assert.deepEqual(extent(boxToGtMap([4.5, 4.5, 4.5, 4.5], 8), 8), { rows: [4, 5], cols: [4, 5], count: 4 });
});

test('gt map: clipped to the map; all ones for a global caption', () => {
  assert.deepEqual(extent(boxToGtMap([0, 0, 10, 10], 10), 10), { rows: [0, 9], cols: [0, 9], count: 100 });
  assert.deepEqual(extent(boxToGtMap([8.5, 0.2, 10, 2.5], 10), 10), { rows: [0, 3], cols: [8, 9], count: 8 });
  assert.deepEqual(extent(boxToGtMap(null, 6), 6), { rows: [0, 5], cols: [0, 5], count: 36 });
});

test('transformBox follows the crop and the resize, clipped to [0, S]', () => {
  const window = { top: 10, left: 20, height: 50, width: 100 };
  assert.deepEqual(transformBox([30, 20, 70, 35], window, 200), [20, 40, 100, 100]);
  assert.deepEqual(transformBox([0, 0, 500, 500], window, 200), [0, 0, 200, 200]);
});

test('cropImage cuts the window out of [H, W, 3]', () => {
  const width = 5;
  const height = 4;
  const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => i);
  const crop = cropImage({ data, width, height }, { top: 1, left: 2, height: 2, width: 3 });
  const at = (x: number, y: number) => Array.from(data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
  assert.deepEqual(Array.from(crop.data), [...at(2, 1), ...at(3, 1), ...at(4, 1), ...at(2, 2), ...at(3, 2), ...at(4, 2)]);
});

test('random resized crop: area 0.9-1 of the image, ratio 3/4-4/3, inside the image', () => {
  const rng = new Rng(1);
  const [W, H] = [400, 300];
  for (let i = 0; i < 2000; i++) {
    const w = randomResizedCropWindow(W, H, rng);
    const area = (w.width * w.height) / (W * H);
    assert.ok(area >= 0.895 && area <= 1, `area ${area}`);
    const ratio = w.width / w.height;
    assert.ok(ratio >= 0.74 && ratio <= 1.345, `ratio ${ratio}`);
    assert.ok(w.top >= 0 && w.left >= 0 && w.top + w.height <= H && w.left + w.width <= W, JSON.stringify(w));
  }
});

test('random resized crop falls back to the centre crop at the nearest allowed ratio', () => {
  // Ratio 10: no try fits, so height 100 and width round(100 * 4/3) = 133, centred.
  assert.deepEqual(randomResizedCropWindow(1000, 100, new Rng(0)), { top: 0, left: 433, height: 100, width: 133 });
  // Ratio 1/10: width 100 and height round(100 / (3/4)) = 133.
  assert.deepEqual(randomResizedCropWindow(100, 1000, new Rng(0)), { top: 433, left: 0, height: 133, width: 100 });
});

/** A grey width x height PNG with a pure red rectangle over the box. */
async function redBoxImage(width: number, height: number, box: readonly [number, number, number, number]): Promise<Uint8Array> {
  const data = Buffer.alloc(width * height * 3, 128);
  for (let y = box[1]; y < box[3]; y++) {
    for (let x = box[0]; x < box[2]; x++) data.set([255, 0, 0], (y * width + x) * 3);
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

function raw(image: Uint8Array, annotation: Annotation): RawSample {
  return { key: 'k', shard: 'shard-000.tar', image, imageExt: 'png', annotation };
}

/** mean 0, std 1: pixels are v / 255, so channel values can be read back. */
const plain: SampleOptions = { size: 48, globalCaptionProb: 0, mean: [0, 0, 0], std: [1, 1, 1] };

test('the crop keeps the box over the same content: red pixels lie in the gt map, and the box inside is red', async () => {
  const box = [60, 50, 150, 120] as const;
  const sample = raw(await redBoxImage(240, 180, box), { text: ['A red box.'], box: [box], globalText: 'Grey.' });
  const S = 96;
  for (let seed = 0; seed < 12; seed++) {
    const s = await makeSample(sample, new Rng(seed), { ...plain, size: S });
    assert.equal(s.isGlobal, 0);
    assert.equal(s.pixels.length, 3 * S * S);
    const [x0, y0, x1, y1] = s.box!;
    let red = 0;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const [r, g, b] = [0, 1, 2].map((c) => Math.round(s.pixels[c * S * S + y * S + x]! * 255));
        const isRed = r! > 200 && g! < 60 && b! < 60;
        if (isRed) {
          red++;
          assert.equal(s.gt[y * S + x], 1, `seed ${seed}: red pixel (${x}, ${y}) outside the gt map`);
        }
        // Two pixels in from the transformed box edges (bicubic blurs the edge), the image is red.
        if (x >= x0 + 2 && x < x1 - 2 && y >= y0 + 2 && y < y1 - 2) assert.ok(isRed, `seed ${seed}: (${x}, ${y}) in the box is not red`);
      }
    }
    assert.ok(red > 0.8 * (x1 - x0) * (y1 - y0), `seed ${seed}: only ${red} red pixels`);
  }
});

test('makeSample is deterministic for a seed and differs between seeds', async () => {
  const box = [10, 10, 30, 25] as const;
  const sample = raw(await redBoxImage(64, 48, box), {
    text: ['The image shows a red box. It sits on grey. Nothing else is there.', 'Grey.'],
    box: [box, [0, 0, 64, 48]],
    globalText: 'A grey picture with a red box.',
  });
  const options = { ...plain, globalCaptionProb: 0.25 };
  const a = await makeSample(sample, new Rng(42), options);
  const b = await makeSample(sample, new Rng(42), options);
  assert.deepEqual(a, b);
  const others = await Promise.all([1, 2, 3, 4, 5].map((seed) => makeSample(sample, new Rng(seed), options)));
  assert.ok(others.some((o) => o.caption !== a.caption || o.box?.join() !== a.box?.join() || !o.pixels.every((v, i) => v === a.pixels[i])));
});

test('the global caption comes with probability globalCaptionProb, always when there is no local caption', async () => {
  const image = await redBoxImage(24, 20, [2, 2, 6, 6]);
  const sample = raw(image, { text: ['Local.'], box: [[2, 2, 6, 6]], globalText: 'Global.' });
  const options = { ...plain, size: 8, globalCaptionProb: 0.25 };
  const rng = new Rng(3);
  const draws = 800;
  let global = 0;
  for (let i = 0; i < draws; i++) {
    const s = await makeSample(sample, rng, options);
    if (s.isGlobal === 1) {
      global++;
      assert.equal(s.caption, 'Global.');
      assert.equal(s.box, null);
      assert.ok(s.gt.every((v) => v === 1));
    } else {
      assert.equal(s.caption, 'Local.');
      assert.ok(s.gt.some((v) => v === 0));
    }
  }
  assert.ok(Math.abs(global / draws - 0.25) < 0.05, `global share ${global / draws}`);
  const onlyGlobal = raw(image, { text: [], box: [], globalText: 'The image shows a grey field. There is no visible text.' });
  const s = await makeSample(onlyGlobal, new Rng(0), { ...options, globalCaptionProb: 0 });
  assert.equal(s.isGlobal, 1);
  assert.equal(s.caption, 'A grey field.');
});

test('captions are cleaned and sentence-masked', async () => {
  const image = await redBoxImage(24, 20, [2, 2, 6, 6]);
  const text = 'The second image is a close-up of a red box. It is small. It is square. There is no visible text.';
  const sample = raw(image, { text: [text], box: [[2, 2, 6, 6]], globalText: 'g' });
  const seen = new Set<string>();
  for (let seed = 0; seed < 60; seed++) seen.add((await makeSample(sample, new Rng(seed), { ...plain, size: 8 })).caption);
  const sentences = ['A red box.', 'It is small.', 'It is square.'];
  const runs = new Set<string>();
  for (let i = 0; i < 3; i++) for (let j = i + 1; j <= 3; j++) runs.add(sentences.slice(i, j).join(' '));
  assert.deepEqual([...seen].sort(), [...runs].sort());
});

test('an image that does not decode is a UserError naming shard and key', async () => {
  const sample = raw(Buffer.from('not an image'), { text: [], box: [], globalText: 'g' });
  await assert.rejects(makeSample(sample, new Rng(0), plain), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^shard-000\.tar: k\.png: /);
    return true;
  });
});

test('regions with forcing: the own box\'s forced patches and the kept boxes\' fit the top budget; what is skipped would not', async () => {
  // a 64 x 64 image read at 64 px; first grid 4 x 4 (16 px cells), top grid 8 x 8 (8 px patches)
  const boxes = [[1, 1, 14, 14], [17, 1, 30, 14], [1, 17, 14, 30], [33, 33, 62, 62], [49, 1, 62, 14]] as const;
  const text = ['one.', 'two.', 'three.', 'four.', 'five.'];
  const sample = raw(await redBoxImage(64, 64, [1, 1, 14, 14]), { text, box: [...boxes], globalText: 'All.' });
  const forcing = { first: 4, top: 8, budget: 16 };
  let sawSkip = false;
  for (let seed = 0; seed < 20; seed++) {
    const s = await makeSample(sample, new Rng(seed), { ...plain, size: 64, regions: 5, globalCaptionProb: 0, forcing });
    const free = await makeSample(sample, new Rng(seed), { ...plain, size: 64, regions: 5, globalCaptionProb: 0 });
    const own = ownForcedAtTop(s.box!, 64, forcing);
    const forced = new Set([...own, ...s.regions!.flatMap((r) => boxCells(r.box, 64, 8, 8))]);
    // the sample's own box is forced as the reference does, whatever its size; others only if they fit
    if (own.length > forcing.budget) assert.deepEqual(s.regions, []);
    else assert.ok(forced.size <= forcing.budget, `seed ${seed}: ${forced.size} patches`);
    const kept = new Set([s.caption, ...s.regions!.map((r) => r.caption)]);
    for (const r of free.regions!) {
      if (kept.has(r.caption)) continue;
      const more = boxCells(r.box, 64, 8, 8).filter((g) => !forced.has(g));
      assert.ok(forced.size + more.length > forcing.budget, `seed ${seed}: ${r.caption} fits but was skipped`);
      sawSkip = true;
    }
  }
  assert.ok(sawSkip, 'no region was ever left out');
});

test('regions: a local sample carries up to regions - 1 other local pairs of its image, each box through the same crop', async () => {
  const boxes = [[4, 4, 20, 20], [30, 6, 60, 26], [8, 30, 28, 46], [40, 30, 62, 46], [0, 0, 1, 1]] as const;
  const text = ['one.', 'two.', 'three.', 'four.', 'five.'];
  const sample = raw(await redBoxImage(64, 48, [4, 4, 20, 20]), { text, box: [...boxes], globalText: 'All.' });
  for (let seed = 0; seed < 10; seed++) {
    const one = await makeSample(sample, new Rng(seed), { ...plain, size: 32 });
    const many = await makeSample(sample, new Rng(seed), { ...plain, size: 32, regions: 3 });
    // the reference's draws come first: the sample itself is unchanged
    assert.deepEqual({ ...many, regions: undefined }, { ...one, regions: undefined });
    assert.equal(one.regions, undefined);
    const captions = [many.caption, ...many.regions!.map((r) => r.caption)];
    assert.ok(many.regions!.length <= 2);
    assert.equal(new Set(captions).size, captions.length, `seed ${seed}: a caption repeats: ${captions.join(' | ')}`);
    for (const r of many.regions!) {
      const i = text.indexOf(r.caption);
      assert.ok(i >= 0, r.caption);
      const [x0, y0, x1, y1] = r.box;
      assert.ok(x1 > x0 && y1 > y0 && x0 >= 0 && y0 >= 0 && x1 <= 32 && y1 <= 32, `seed ${seed}: ${r.box.join()}`);
    }
  }
  // all the image's other regions when asked for more than it has (but boxes the crop removes)
  const all = await makeSample(sample, new Rng(1), { ...plain, size: 32, regions: 99 });
  assert.ok(all.regions!.length >= 3 && all.regions!.length <= 4, String(all.regions!.length));
  // a global caption brings no regions
  const global = await makeSample(sample, new Rng(1), { ...plain, size: 32, regions: 4, globalCaptionProb: 1 });
  assert.equal(global.isGlobal, 1);
  assert.equal(global.regions, undefined);
});
