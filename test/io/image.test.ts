import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { UserError } from '../../src/errors.js';
import { cropResizeNormalise, decodeImage, loadPixelValues, normalise, resizeImage, squash, squashNormalise, toPng } from '../../src/io/image.js';
import type { RgbImage } from '../../src/io/image.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { pilResizeBicubicRgb } from '../../src/tensor/pilResize.js';
import { SQUASH_THREAD_MIN_PIXELS } from '../../src/io/squashThread.js';

// Compiled to dist/test/io/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-image-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface PilExpected {
  input: { width: number; height: number; data: number[] };
  cases: Array<{ width: number; height: number; data: number[] }>;
  cmyk: { file: string; width: number; height: number; rgb: number[] };
}
const pil = JSON.parse(fs.readFileSync(path.join(root, 'test/data/pil_resize.json'), 'utf8')) as PilExpected;

/** A deterministic, busy width x height RGB image: [H, W, 3]. */
function pattern(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 73 + ((i * i) >> 3)) & 255;
  return data;
}

function rawInput(data: Uint8Array | Uint16Array, width: number, height: number, channels: 1 | 3 | 4) {
  return sharp(data, { raw: { width, height, channels } });
}

function writeTmp(name: string, bytes: Uint8Array | string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** A UserError whose message is one line and names the file. */
function userErrorNaming(file: string, problem: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `message spans lines: ${e.message}`);
    assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message}`);
    assert.match(e.message, problem);
    return true;
  };
}

test('PIL bicubic resize matches Pillow exactly', () => {
  const { input } = pil;
  for (const c of pil.cases) {
    const got = pilResizeBicubicRgb(Uint8Array.from(input.data), input.width, input.height, c.width, c.height);
    assert.deepEqual(Array.from(got), c.data, `${input.width}x${input.height} -> ${c.width}x${c.height}`);
  }
});

test('squashNormalise gives exactly normalise(resizeImage(...)): down, up, one axis, several bands of rows', () => {
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  const { input } = pil;
  const image: RgbImage = { data: Uint8Array.from(input.data), width: input.width, height: input.height };
  const big: RgbImage = { data: pattern(301, 517), width: 301, height: 517 };
  const cases: Array<[RgbImage, number, number]> = [
    ...pil.cases.map((c): [RgbImage, number, number] => [image, c.width, c.height]),
    [big, 277, 470], [big, 640, 1100], [big, 301, 300], [big, 150, 517], [big, 301, 517],
  ];
  for (const [im, w, h] of cases) {
    const want = normalise(resizeImage(im, w, h), mean, std);
    const got = squashNormalise(im, w, h, mean, std);
    assert.equal(got.length, want.length);
    assert.ok(got.every((v, i) => Object.is(v, want[i])), `${im.width}x${im.height} -> ${w}x${h}`);
  }
});

test('cropResizeNormalise gives exactly squashNormalise of the window cut out: windows inside, at the edges, one axis unchanged', () => {
  const mean = [0.5, 0.5, 0.5];
  const std = [0.5, 0.5, 0.5];
  const big: RgbImage = { data: pattern(301, 517), width: 301, height: 517 };
  const cut = (im: RgbImage, left: number, top: number, w: number, h: number): RgbImage => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) data.set(im.data.subarray(((top + y) * im.width + left) * 3, ((top + y) * im.width + left + w) * 3), y * w * 3);
    return { data, width: w, height: h };
  };
  const cases: Array<[number, number, number, number, number, number]> = [
    // left, top, width, height of the window -> output width, height
    [13, 40, 270, 460, 301, 517], [0, 0, 301, 480, 320, 500], [31, 17, 270, 500, 270, 600], [5, 9, 250, 400, 300, 400], [0, 20, 301, 400, 301, 450], [2, 3, 200, 300, 200, 300],
  ];
  for (const [left, top, w, h, outW, outH] of cases) {
    const want = squashNormalise(cut(big, left, top, w, h), outW, outH, mean, std);
    const got = cropResizeNormalise(big, { left, top, width: w, height: h }, outW, outH, mean, std);
    assert.equal(got.length, want.length);
    assert.ok(got.every((v, i) => Object.is(v, want[i])), `window ${w}x${h} at (${left}, ${top}) -> ${outW}x${outH}`);
  }
  assert.throws(() => cropResizeNormalise(big, { left: 100, top: 0, width: 250, height: 10 }, 8, 8, mean, std), /window 250x10 at \(100, 0\) of a 301x517 image/);
});

test('resizeImage to the same size is a copy', () => {
  const image: RgbImage = { data: pattern(4, 3), width: 4, height: 3 };
  const same = resizeImage(image, 4, 3);
  assert.deepEqual(same.data, image.data);
  assert.notEqual(same.data, image.data);
});

test('preprocess fixture: squash + normalise bit-identical to the reference (as the README says)', async () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8')) as {
    cases: Array<{ name: string; args: Record<string, unknown>; outputs: Record<string, string> }>;
  };
  const fixtureCase = manifest.cases.find((c) => c.name === 'preprocess');
  assert.ok(fixtureCase, 'manifest has no preprocess case');
  const args = fixtureCase.args as { image_file: string; size: [number, number]; mean: number[]; std: number[] };
  assert.equal(args.size[0], args.size[1], 'the processor squashes to a square');
  const expected = openSafetensors(path.join(fixtures, 'cases.safetensors')).read(fixtureCase.outputs['pixel_values']!);
  const size = args.size[0];
  assert.deepEqual(expected.shape, [1, 3, size, size]);

  const got = await loadPixelValues(path.join(fixtures, args.image_file), { size, mean: args.mean, std: args.std });
  assert.equal(got.pixels.length, 3 * size * size);
  assert.deepEqual([got.height, got.width], [size, size]);

  // exact: PIL's bicubic reproduced, then Hugging Face's rounding; the first difference is named
  const first = got.pixels.findIndex((v, k) => v !== expected.data[k]);
  assert.equal(first, -1, first >= 0 ? `value ${first}: got ${got.pixels[first]}, expected ${expected.data[first]}` : '');
});

test('normalise: [H, W, 3] uint8 -> [3, H, W] float32, (v / 255 - mean) / std', () => {
  const image: RgbImage = { data: Uint8Array.from([0, 51, 255, 255, 102, 0]), width: 2, height: 1 };
  const out = normalise(image, [0.5, 0.2, 0], [0.5, 0.2, 1]);
  const expected = [-1, 1, 0, 1, 1, 0].map(Math.fround);
  assert.equal(out.length, 6);
  out.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6, `value ${i}: ${v} vs ${expected[i]}`));
  assert.throws(() => normalise(image, [0.5], [0.5]), RangeError);
});

test('decodes RGB PNG, lossless WebP and TIFF exactly; squash gives size x size', async () => {
  const data = pattern(9, 5);
  const encoders = {
    png: rawInput(data, 9, 5, 3).png(),
    webp: rawInput(data, 9, 5, 3).webp({ lossless: true }),
    tiff: rawInput(data, 9, 5, 3).tiff({ compression: 'lzw' }),
  };
  for (const [ext, encoder] of Object.entries(encoders)) {
    const file = writeTmp(`rgb.${ext}`, await encoder.toBuffer());
    const image = await decodeImage(file);
    assert.deepEqual([image.width, image.height], [9, 5], ext);
    assert.deepEqual(image.data, data, ext);
    const squashed = squash(image, 7);
    assert.deepEqual([squashed.width, squashed.height, squashed.data.length], [7, 7, 7 * 7 * 3], ext);
  }
});

/** The same PNG without its iCCP (ICC profile) chunk: 8-byte signature, then [length, type, data, crc] chunks. */
function stripIccChunk(png: Buffer): Buffer {
  const kept: Buffer[] = [png.subarray(0, 8)];
  for (let at = 8; at < png.length; ) {
    const end = at + 12 + png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) !== 'iCCP') kept.push(png.subarray(at, end));
    at = end;
  }
  return Buffer.concat(kept);
}

test('an embedded ICC profile is ignored, as PIL ignores it', async () => {
  const tagged = await rawInput(pattern(6, 4), 6, 4, 3).withIccProfile('p3').png().toBuffer();
  const untagged = stripIccChunk(tagged);
  assert.ok((await sharp(tagged).metadata()).icc && !(await sharp(untagged).metadata()).icc);
  const decoded = await decodeImage(tagged);
  assert.deepEqual(decoded.data, (await decodeImage(untagged)).data);
  // sharp on its own would colour-manage the samples, so the profile does matter here.
  assert.notDeepEqual(new Uint8Array(await sharp(tagged).raw().toBuffer()), decoded.data);
});

test('greyscale is replicated to RGB', async () => {
  const grey = pattern(6, 4).subarray(0, 24);
  const image = await decodeImage(await rawInput(grey, 6, 4, 1).toColourspace('b-w').png().toBuffer());
  assert.deepEqual([image.width, image.height], [6, 4]);
  assert.deepEqual(image.data, Uint8Array.from(Array.from(grey).flatMap((v) => [v, v, v])));
});

test('RGBA: alpha is dropped, colour kept as stored (no compositing)', async () => {
  const rgba = pattern(5, 4); // 60 bytes: a 5 x 3 RGBA image
  for (let p = 0; p < 15; p++) rgba[p * 4 + 3] = p % 3 === 0 ? 0 : p * 17;
  const image = await decodeImage(await rawInput(rgba, 5, 3, 4).png().toBuffer());
  assert.deepEqual(image.data, Uint8Array.from(Array.from(rgba).filter((_, i) => i % 4 !== 3)));
});

test('16-bit PNG keeps the high byte of each sample', async () => {
  const samples = new Uint16Array(4 * 3 * 3).map((_, i) => (i * 4099 + 1234) & 0xffff);
  const png = await rawInput(samples, 4, 3, 3).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(png).metadata()).depth, 'ushort');
  const image = await decodeImage(png);
  assert.deepEqual(image.data, Uint8Array.from(samples, (v) => v >> 8));
});

test('CMYK JPEG converts to RGB as PIL does', async () => {
  // Written and converted by Pillow (test/data/make_pil_resize.py).
  const image = await decodeImage(path.join(root, 'test/data', pil.cmyk.file));
  assert.deepEqual([image.width, image.height], [pil.cmyk.width, pil.cmyk.height]);
  assert.deepEqual(Array.from(image.data), pil.cmyk.rgb);

  // One written by sharp (through its CMYK profile): white stays white, black stays near black.
  const halves = new Uint8Array(16 * 8 * 3).map((_, i) => (Math.floor(i / 3) % 16 < 8 ? 255 : 0));
  const jpeg = await rawInput(halves, 16, 8, 3).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer();
  assert.equal((await sharp(jpeg).metadata()).space, 'cmyk');
  const decoded = await decodeImage(jpeg);
  for (let p = 0; p < 16 * 8; p++) {
    const [r, g, b] = decoded.data.subarray(p * 3, p * 3 + 3);
    if (p % 16 < 6) assert.ok(r! > 250 && g! > 250 && b! > 250, `pixel ${p}: ${r},${g},${b} should be white`);
    if (p % 16 > 9) assert.ok(r! < 60 && g! < 60 && b! < 60, `pixel ${p}: ${r},${g},${b} should be dark`);
  }
});

test('EXIF orientation 6 is applied: size swapped, pixels turned 90 degrees clockwise', async () => {
  const [w, h] = [16, 8];
  const data = pattern(w, h);
  // Same pixels and settings, so both files hold identical JPEG data and differ only in the tag.
  const upright = await decodeImage(await rawInput(data, w, h, 3).jpeg({ quality: 95 }).toBuffer());
  const tagged = await rawInput(data, w, h, 3).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(tagged).metadata()).orientation, 6);
  const turned = await decodeImage(tagged);
  assert.deepEqual([turned.width, turned.height], [h, w]);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < h; x++) {
      // Displayed (x, y) shows stored (y, h - 1 - x).
      const shown = turned.data.subarray((y * h + x) * 3, (y * h + x) * 3 + 3);
      const stored = upright.data.subarray(((h - 1 - x) * w + y) * 3, ((h - 1 - x) * w + y) * 3 + 3);
      assert.deepEqual(shown, stored, `displayed pixel (${x}, ${y})`);
    }
  }
});

test('bytes in, PNG out: toPng round-trips, loadPixelValues reports the original size', async () => {
  const image: RgbImage = { data: pattern(7, 3), width: 7, height: 3 };
  const png = await toPng(image);
  assert.deepEqual(await decodeImage(png), image);
  const values = await loadPixelValues(png, { size: 4, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  assert.deepEqual([values.originalWidth, values.originalHeight, values.width, values.height], [7, 3, 4, 4]);
  assert.equal(values.pixels.length, 3 * 4 * 4);
});

test('a large squash runs on two threads: the same values in shared memory; bad files still fail with one line', async () => {
  const [w, h, size] = [1300, 1100, 1100];
  assert.ok(size * size >= SQUASH_THREAD_MIN_PIXELS && os.availableParallelism() >= 2, 'this test needs the two-thread path');
  const file = writeTmp('large.png', await rawInput(pattern(w, h), w, h, 3).png().toBuffer());
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  const values = await loadPixelValues(file, { size, mean, std });
  assert.ok(values.pixels.buffer instanceof SharedArrayBuffer);
  const want = normalise(squash(await decodeImage(file), size), mean, std);
  assert.ok(values.pixels.every((v, i) => Object.is(v, want[i])), 'two threads differ from one');
  assert.deepEqual([values.originalWidth, values.originalHeight], [w, h]);
  const bytes = fs.readFileSync(file);
  const cut = writeTmp('large-cut.png', bytes.subarray(0, Math.floor(bytes.length / 2)));
  await assert.rejects(loadPixelValues(cut, { size, mean, std }), userErrorNaming('large-cut.png', /cannot decode PNG/));
  await assert.rejects(loadPixelValues(file, { size, mean, std, maxPixels: 1000 }), userErrorNaming('large.png', /more than the limit of 1000/));
  // the worker still answers after the failures
  assert.equal((await loadPixelValues(bytes, { size, mean, std })).pixels[12345], want[12345]);
});

test('bad inputs are UserErrors naming the file', async () => {
  const png = await rawInput(pattern(64, 64), 64, 64, 3).png().toBuffer();
  const jpeg = await rawInput(pattern(64, 64), 64, 64, 3).jpeg({ quality: 95 }).toBuffer();
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>';
  const directory = path.join(tmp, 'a-directory');
  fs.mkdirSync(directory);
  const cases: Array<[string, RegExp, string | Uint8Array, { maxPixels?: number }?]> = [
    ['missing.png', /no such file/, path.join(tmp, 'missing.png')],
    ['empty.png', /empty/, writeTmp('empty.png', '')],
    ['truncated.png', /cannot decode PNG/, writeTmp('truncated.png', png.subarray(0, Math.floor(png.length / 2)))],
    ['truncated.jpg', /cannot decode JPEG/, writeTmp('truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.7)))],
    ['text.png', /not an image/, writeTmp('text.png', 'just some text, not a picture\n')],
    ['picture.svg', /unsupported image format 'svg'/, writeTmp('picture.svg', svg)],
    ['big.png', /4096 pixels, more than the limit of 4095/, writeTmp('big.png', png), { maxPixels: 4095 }],
    ['a-directory', /directory/, directory],
  ];
  for (const [name, problem, source, options] of cases) {
    await assert.rejects(decodeImage(source, options), userErrorNaming(name, problem), name);
  }
  // Bytes are named by the caller.
  await assert.rejects(decodeImage(new Uint8Array(0), { name: 'upload #3' }), userErrorNaming('upload #3', /empty/));
  // The pixel limit is checked on the header, so an image at the limit decodes.
  assert.equal((await decodeImage(png, { maxPixels: 4096 })).width, 64);
});
