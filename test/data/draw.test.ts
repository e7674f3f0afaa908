/** Tests for src/data/draw.ts: scan-line fills cover exactly the pixels whose centres are inside. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCanvas, ellipse, Extent, fillPolygon, fillRect, pixel, regularPolygon } from '../../src/data/draw.js';

const RED = [255, 0, 0] as const;

function countColour(rgb: Uint8Array, colour: readonly number[]): number {
  let n = 0;
  for (let i = 0; i < rgb.length; i += 3) if (rgb[i] === colour[0] && rgb[i + 1] === colour[1] && rgb[i + 2] === colour[2]) n++;
  return n;
}

test('fillRect fills [x0, x1) x [y0, y1) and reports its extent', () => {
  const c = createCanvas(20, 10);
  const extent = new Extent();
  fillRect(c, 2, 3, 7, 5, { colour: RED, extent });
  assert.equal(countColour(c.rgb, RED), 5 * 2);
  assert.deepEqual(extent.box(), [2, 3, 7, 5]);
  assert.deepEqual(pixel(c, 6, 4), RED);
  assert.deepEqual(pixel(c, 7, 4), [0, 0, 0]);
});

test('fills clip to the canvas', () => {
  const c = createCanvas(8, 8);
  const extent = new Extent();
  fillPolygon(c, [[[-5, -5], [20, -5], [20, 20], [-5, 20]]], { colour: RED, extent });
  assert.equal(countColour(c.rgb, RED), 64);
  assert.deepEqual(extent.box(), [0, 0, 8, 8]);
});

test('a polygon covers the pixels whose centres are inside it', () => {
  const c = createCanvas(10, 10);
  // right triangle with legs along x = 0 and y = 10: pixel (x, y) is in when x + 0.5 < y + 0.5
  fillPolygon(c, [[[0, 0], [10, 10], [0, 10]]], { colour: RED });
  for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) assert.equal(pixel(c, x, y)[0] === 255, x < y, `pixel ${x},${y}`);
});

test('a circle has area close to pi r^2; a ring is a hole under the even-odd rule', () => {
  const c = createCanvas(200, 200);
  fillPolygon(c, [ellipse(100, 100, 60, 60)], { colour: RED });
  assert.ok(Math.abs(countColour(c.rgb, RED) - Math.PI * 3600) < 2 * Math.PI * 60 * 0.5);
  const ring = createCanvas(200, 200);
  fillPolygon(ring, [ellipse(100, 100, 60, 60), ellipse(100, 100, 30, 30)], { colour: RED });
  assert.deepEqual(pixel(ring, 100, 100), [0, 0, 0]);
  assert.ok(Math.abs(countColour(ring.rgb, RED) - Math.PI * (3600 - 900)) < 2 * Math.PI * 90 * 0.5);
});

test('alpha blends toward the colour', () => {
  const c = createCanvas(4, 4);
  fillRect(c, 0, 0, 4, 4, { colour: [200, 100, 0], alpha: 0.5 });
  assert.deepEqual(pixel(c, 1, 1), [100, 50, 0]);
});

test('regularPolygon puts its first vertex straight up', () => {
  const [first] = regularPolygon(10, 10, 5, 6);
  assert.ok(Math.abs(first![0] - 10) < 1e-9 && Math.abs(first![1] - 5) < 1e-9);
});

test('an empty extent has no box', () => {
  const extent = new Extent();
  fillRect(createCanvas(4, 4), 10, 10, 12, 12, { colour: RED, extent });
  assert.equal(extent.empty, true);
  assert.throws(() => extent.box(), RangeError);
});
