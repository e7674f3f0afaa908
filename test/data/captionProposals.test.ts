/**
 * Region proposals (src/data/caption/proposals.ts) on drawn images: shapes on a flat background
 * are found with tight boxes; flat images give none; texture everywhere is tiled; the same pixels
 * give the same boxes. Plus the crop helpers and key assignment of the caption pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCanvas, ellipse, fillPolygon, fillRect, type Canvas } from '../../src/data/draw.js';
import { proposeRegions, type Region } from '../../src/data/caption/proposals.js';
import { cropImage, expandBox, fittedSize } from '../../src/data/caption/crops.js';
import { assignKeys, keyBase, sniffFormat } from '../../src/data/caption/inputs.js';
import type { Box } from '../../src/io/shards.js';
import type { RgbImage } from '../../src/io/image.js';

function image(c: Canvas): RgbImage {
  return { data: c.rgb, width: c.width, height: c.height };
}

function iou(a: Box, b: Box): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const area = (x: Box): number => (x[2] - x[0]) * (x[3] - x[1]);
  return (iw * ih) / (area(a) + area(b) - iw * ih);
}

/** Three shapes on grey, 1600 x 1200 (analysed at 1024 x 768); their exact boxes. */
function shapes(): { canvas: Canvas; boxes: Box[] } {
  const canvas = createCanvas(1600, 1200);
  canvas.rgb.fill(200);
  fillRect(canvas, 100, 100, 300, 250, { colour: [200, 30, 30] });
  fillPolygon(canvas, [ellipse(1000, 300, 120, 120)], { colour: [20, 20, 180] });
  fillRect(canvas, 600, 900, 900, 1000, { colour: [20, 140, 20] });
  return { canvas, boxes: [[100, 100, 300, 250], [880, 180, 1120, 420], [600, 900, 900, 1000]] };
}

function assertInside(regions: readonly Region[], width: number, height: number): void {
  for (const { box } of regions) {
    assert.ok(box.every(Number.isInteger), `box ${box} not integer`);
    assert.ok(box[0] >= 0 && box[1] >= 0 && box[2] <= width && box[3] <= height && box[0] < box[2] && box[1] < box[3], `box ${box} outside ${width}x${height}`);
  }
}

test('proposals find each drawn shape with a tight box, best first, deterministically', () => {
  const { canvas, boxes } = shapes();
  const regions = proposeRegions(image(canvas), { maxRegions: 6 });
  assert.equal(regions.length, 3);
  assertInside(regions, canvas.width, canvas.height);
  for (const expected of boxes) {
    const found = regions.find((r) => iou(r.box, expected) > 0.9);
    assert.ok(found, `shape ${expected} not found in ${regions.map((r) => r.box.join(',')).join(' | ')}`);
    // the box holds the whole shape, with at most a few pixels of edge response around it
    const [x0, y0, x1, y1] = found.box;
    assert.ok(x0 <= expected[0] && y0 <= expected[1] && x1 >= expected[2] && y1 >= expected[3], `box ${found.box} cuts shape ${expected}`);
    assert.ok(expected[0] - x0 <= 4 && expected[1] - y0 <= 4 && x1 - expected[2] <= 4 && y1 - expected[3] <= 4, `box ${found.box} loose around ${expected}`);
  }
  for (let i = 1; i < regions.length; i++) assert.ok(regions[i - 1]!.score >= regions[i]!.score);
  assert.deepEqual(proposeRegions(image(canvas), { maxRegions: 6 }), regions);
  // K caps the count and keeps the best
  assert.deepEqual(proposeRegions(image(canvas), { maxRegions: 2 }), regions.slice(0, 2));
  assert.deepEqual(proposeRegions(image(canvas), { maxRegions: 0 }), []);
});

test('proposals work on small images (no downscale) and tall ones', () => {
  const canvas = createCanvas(300, 900);
  canvas.rgb.fill(30);
  fillRect(canvas, 40, 600, 200, 700, { colour: [250, 250, 90] });
  const regions = proposeRegions(image(canvas), { maxRegions: 6 });
  assert.equal(regions.length, 1);
  assert.ok(iou(regions[0]!.box, [40, 600, 200, 700]) > 0.9, `box ${regions[0]!.box}`);
});

test('a flat image, or one with only faint shading, has no proposals', () => {
  const flat = createCanvas(640, 480);
  flat.rgb.fill(128);
  assert.deepEqual(proposeRegions(image(flat), { maxRegions: 6 }), []);
  const shaded = createCanvas(640, 480);
  for (let y = 0; y < 480; y++) for (let x = 0; x < 640; x++) shaded.rgb.fill(100 + Math.floor(x / 40), (y * 640 + x) * 3, (y * 640 + x) * 3 + 3);
  assert.deepEqual(proposeRegions(image(shaded), { maxRegions: 6 }), []);
});

test('nearby shapes merge into one region; a small speck is dropped', () => {
  const canvas = createCanvas(1024, 1024);
  canvas.rgb.fill(220);
  fillRect(canvas, 200, 200, 300, 300, { colour: [0, 0, 0] });
  fillRect(canvas, 305, 200, 400, 300, { colour: [0, 0, 0] }); // a 5 px gap: closing bridges it
  fillRect(canvas, 800, 800, 805, 805, { colour: [0, 0, 0] }); // far below 0.1 % of the image
  const regions = proposeRegions(image(canvas), { maxRegions: 6 });
  assert.equal(regions.length, 1);
  assert.ok(iou(regions[0]!.box, [200, 200, 400, 300]) > 0.9, `box ${regions[0]!.box}`);
});

test('texture over most of the image is cut into tiles, each inside the textured part; a whole object ranks first', () => {
  const canvas = createCanvas(2048, 1536);
  canvas.rgb.fill(128);
  // a checkerboard over the left 60 %: one component far over 25 % of the image
  for (let y = 0; y < 1536; y += 16) for (let x = 0; x < 1228; x += 16) if (((x + y) / 16) % 2 === 0) fillRect(canvas, x, y, x + 16, y + 16, { colour: [0, 0, 0] });
  // and one plain object on the right, with far fewer edges than any tile
  fillRect(canvas, 1500, 600, 1700, 800, { colour: [250, 250, 250] });
  const regions = proposeRegions(image(canvas), { maxRegions: 6 });
  assert.equal(regions.length, 6);
  assertInside(regions, canvas.width, canvas.height);
  assert.ok(iou(regions[0]!.box, [1500, 600, 1700, 800]) > 0.9, `first region ${regions[0]!.box}`);
  for (const { box } of regions.slice(1)) {
    assert.ok(box[2] <= 1228 + 8, `tile ${box} reaches past the texture`);
    const area = (box[2] - box[0]) * (box[3] - box[1]);
    assert.ok(area <= 0.25 * 2048 * 1536 && area >= 0.001 * 2048 * 1536, `tile ${box} area ${area}`);
  }
  for (let i = 0; i < regions.length; i++) for (let j = i + 1; j < regions.length; j++) assert.ok(iou(regions[i]!.box, regions[j]!.box) <= 0.5);
});

test('expandBox grows by the margin and clips; cropImage copies the pixels; fittedSize never enlarges', () => {
  assert.deepEqual(expandBox([100, 100, 200, 150], 0.1, 1000, 1000), [90, 95, 210, 155]);
  assert.deepEqual(expandBox([0, 5, 50, 100], 0.2, 55, 110), [0, 0, 55, 110]);
  const c = createCanvas(4, 3);
  for (let i = 0; i < c.rgb.length; i++) c.rgb[i] = i;
  const crop = cropImage(image(c), [1, 1, 3, 3]);
  assert.equal(crop.width, 2);
  assert.equal(crop.height, 2);
  assert.deepEqual([...crop.data], [15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
  assert.throws(() => cropImage(image(c), [0, 0, 5, 1]), RangeError);
  assert.deepEqual(fittedSize(3000, 1500, 768), { width: 768, height: 384 });
  assert.deepEqual(fittedSize(500, 300, 768), { width: 500, height: 300 });
  assert.deepEqual(fittedSize(10000, 7, 768), { width: 768, height: 1 });
});

test('keys: sanitised from the path, collisions disambiguated deterministically, earlier keys kept', () => {
  assert.equal(keyBase('holiday/IMG 0001.final.JPG'), 'holiday_IMG_0001_final');
  assert.equal(keyBase('Café déjà vu.png'), 'Cafe_deja_vu');
  assert.equal(keyBase('...png'), 'image');
  assert.equal(keyBase(`${'x'.repeat(200)}.jpg`).length, 80);
  const files = ['a.jpg', 'a.png', 'a_2.jpg', 'b.webp', 'sub/a.jpg'];
  const keys = assignKeys(files, () => undefined);
  assert.deepEqual(Object.fromEntries(keys), { 'a.jpg': 'a', 'a.png': 'a_3', 'a_2.jpg': 'a_2', 'b.webp': 'b', 'sub/a.jpg': 'sub_a' });
  assert.deepEqual(assignKeys([...files].reverse(), () => undefined), keys);
  // a file that had a key keeps it, even when a newcomer sorts before it
  const later = assignKeys(['a.gif.png', 'a.jpg', 'a.png'], (f) => ({ 'a.jpg': 'a', 'a.png': 'a_2' })[f]);
  assert.deepEqual(Object.fromEntries(later), { 'a.gif.png': 'a_gif', 'a.jpg': 'a', 'a.png': 'a_2' });
  const newcomer = assignKeys(['0.jpg', 'a.jpeg', 'a.jpg'], (f) => (f === 'a.jpg' ? 'a' : undefined));
  assert.equal(newcomer.get('a.jpg'), 'a');
  assert.equal(newcomer.get('a.jpeg'), 'a_2');
});

test('sniffFormat reads the signature, not the name', () => {
  assert.equal(sniffFormat(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0])), 'jpg');
  assert.equal(sniffFormat(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0])), 'png');
  assert.equal(sniffFormat(Buffer.from('RIFF\0\0\0\0WEBPVP8 ')), 'webp');
  assert.equal(sniffFormat(Buffer.from('GIF89a')), null);
  assert.equal(sniffFormat(new Uint8Array(0)), null);
});
