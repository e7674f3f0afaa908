import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { pack } from 'tar-stream';
import { dataValidateCommand } from '../../src/cli/dataValidate.js';
import { UserError } from '../../src/errors.js';
import { braceExpand, expandShardSpec, parseAnnotation, ShardDataset, validateShards } from '../../src/io/shards.js';
import type { RawSample, ShardDatasetOptions } from '../../src/io/shards.js';
import { decodeImage } from '../../src/io/image.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-shards-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Entries = ReadonlyArray<readonly [name: string, data: string | Uint8Array]>;

async function tarBytes(entries: Entries): Promise<Buffer> {
  const p = pack();
  for (const [name, data] of entries) p.entry({ name }, typeof data === 'string' ? data : Buffer.from(data));
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function write(file: string, bytes: Uint8Array | string): string {
  const full = path.join(tmp, file);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, bytes);
  return full;
}

function annotationJson(key: string, boxes = 1): string {
  return JSON.stringify({
    text: Array.from({ length: boxes }, (_, i) => `caption ${i} of ${key}`),
    box: Array.from({ length: boxes }, () => [1, 2, 3, 4]),
    global_text: key,
  });
}

/**
 * A shard set in `dir`: `shards` pairs of `perShard` samples keyed s<i>-<j>; each image's bytes
 * are its key, so pairing can be checked without decoding.
 */
async function makeSet(dir: string, shards: number, perShard: number): Promise<{ images: string; annotations: string; keys: string[] }> {
  const keys: string[] = [];
  for (let i = 0; i < shards; i++) {
    const images: Array<[string, string]> = [];
    const annotations: Array<[string, string]> = [];
    for (let j = 0; j < perShard; j++) {
      const key = `s${i}-${String(j).padStart(2, '0')}`;
      keys.push(key);
      images.push([`${key}.jpg`, key]);
      annotations.push([`${key}.json`, annotationJson(key)]);
    }
    // Annotations in reverse order: pairing is by key, not position.
    write(`${dir}/images/shard-${String(i).padStart(3, '0')}.tar`, await tarBytes(images));
    write(`${dir}/annotations/shard-${String(i).padStart(3, '0')}.tar`, await tarBytes(annotations.reverse()));
  }
  return { images: path.join(tmp, dir, 'images'), annotations: path.join(tmp, dir, 'annotations'), keys };
}

async function take(stream: AsyncGenerator<RawSample>, n: number): Promise<RawSample[]> {
  const out: RawSample[] = [];
  for await (const s of stream) {
    out.push(s);
    if (out.length === n) break;
  }
  return out;
}

async function all(dataset: ShardDataset): Promise<string[]> {
  const keys: string[] = [];
  for await (const s of dataset.samples()) keys.push(s.key);
  return keys;
}

const inOrder = { seed: 0, shuffleBuffer: 0, resample: false, shuffleShards: false } as const;

function userErrorNaming(text: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(e.message.includes(text), `message does not name ${text}: ${e.message}`);
    assert.ok(!e.message.includes('\n'));
    return true;
  };
}

test('braceExpand: numeric ranges (padded as written), alternatives, nesting', () => {
  assert.deepEqual(braceExpand('x{8..11}.tar'), ['x8.tar', 'x9.tar', 'x10.tar', 'x11.tar']);
  assert.deepEqual(braceExpand('shard-{000..002}.tar'), ['shard-000.tar', 'shard-001.tar', 'shard-002.tar']);
  assert.deepEqual(braceExpand('{a,b}/{0..1}'), ['a/0', 'a/1', 'b/0', 'b/1']);
  assert.deepEqual(braceExpand('{a,{b,c}}d'), ['ad', 'bd', 'cd']);
  assert.deepEqual(braceExpand('plain.tar'), ['plain.tar']);
  assert.throws(() => braceExpand('shard-{000..002.tar'), userErrorNaming('shard-{000..002.tar'));
});

test('expandShardSpec: patterns, lists, folders; missing files name the pattern', async () => {
  const set = await makeSet('expand', 3, 1);
  const files = ['000', '001', '002'].map((n) => path.join(set.images, `shard-${n}.tar`));
  assert.deepEqual(expandShardSpec(path.join(set.images, 'shard-{000..002}.tar')), files);
  assert.deepEqual(expandShardSpec(set.images), files);
  assert.deepEqual(expandShardSpec(`${files[2]},${files[0]}`), [files[2], files[0]]);
  assert.deepEqual(expandShardSpec([files[1]!, files[0]!]), [files[1], files[0]]);
  // relative to the working directory
  assert.deepEqual(expandShardSpec(path.relative(process.cwd(), files[0]!)), [files[0]]);
  const missing = path.join(set.images, 'shard-{000..005}.tar');
  assert.throws(() => expandShardSpec(missing), userErrorNaming(missing));
  assert.throws(() => expandShardSpec(''), UserError);
  const empty = path.join(tmp, 'empty-folder');
  fs.mkdirSync(empty);
  assert.throws(() => expandShardSpec(empty), userErrorNaming(empty));
  assert.throws(
    () => new ShardDataset({ ...inOrder, images: set.images, annotations: files[0]! }),
    userErrorNaming('3 image shards'),
  );
});

test('parseAnnotation validates fields and box count', () => {
  const good = parseAnnotation(Buffer.from(JSON.stringify({ text: ['a'], box: [[0, 0, 1, 1]], global_text: 'g', type: 't' })));
  assert.deepEqual(good, { ok: true, annotation: { text: ['a'], box: [[0, 0, 1, 1]], globalText: 'g', type: 't' } });
  const bad = (json: unknown) => parseAnnotation(Buffer.from(JSON.stringify(json)));
  const reasons = [
    bad({ text: ['a', 'b'], box: [[0, 0, 1, 1]], global_text: 'g' }),
    bad({ text: ['a'], box: [[0, 0, 1]], global_text: 'g' }),
    bad({ text: ['a'], box: [[5, 0, 1, 1]], global_text: 'g' }),
    bad({ text: ['a'], box: [[0, 5, 1, 1]], global_text: 'g' }),
    bad({ text: 'a', box: [], global_text: 'g' }),
    bad({ box: [[0, 0, 1, 1]], global_text: 'g' }),
    bad({ text: ['a'], global_text: 'g' }),
    bad({ type: 'caption' }),
    bad({ text: [], box: [] }),
  ];
  for (const r of reasons) assert.equal(r.ok ? 'ok' : r.reason, 'badAnnotation', JSON.stringify(r));
  const first = reasons[0]!;
  assert.ok(!first.ok && first.problem.includes('2 captions'), JSON.stringify(first));
  const third = reasons[2]!;
  assert.ok(!third.ok && /box\.0: x1 < x0/.test(third.problem), JSON.stringify(third));
  // as in the reference's reader: global_text is optional, and so are text and box together
  assert.deepEqual(parseAnnotation(Buffer.from(JSON.stringify({ text: ['a'], box: [[0, 0, 1, 1]] }))), { ok: true, annotation: { text: ['a'], box: [[0, 0, 1, 1]], globalText: null } });
  assert.deepEqual(parseAnnotation(Buffer.from(JSON.stringify({ global_text: 'g', type: 'caption' }))), { ok: true, annotation: { text: [], box: [], globalText: 'g', type: 'caption' } });
  const notJson = parseAnnotation(Buffer.from('{"text": ['));
  assert.equal(notJson.ok ? 'ok' : notJson.reason, 'badJson');
});

test('pairs images and annotations by key, shard i with shard i', async () => {
  const set = await makeSet('pairs', 3, 4);
  const dataset = new ShardDataset({ ...inOrder, images: set.images, annotations: set.annotations });
  const samples: RawSample[] = [];
  for await (const s of dataset.samples()) samples.push(s);
  assert.deepEqual(
    samples.map((s) => s.key),
    set.keys,
  );
  for (const s of samples) {
    assert.equal(Buffer.from(s.image).toString(), s.key);
    assert.equal(s.annotation.globalText, s.key);
    assert.equal(s.imageExt, 'jpg');
    assert.ok(s.shard.endsWith(`shard-00${s.key[1]}.tar`));
  }
  const c = dataset.counts;
  assert.equal(c.yielded, 12);
  assert.equal(c.seen, 24);
  assert.equal(c.shards, 3);
  assert.deepEqual(c.skipped, { unpaired: 0, duplicate: 0, badJson: 0, badAnnotation: 0, badTar: 0 });
  assert.match(dataset.summary(), /12 yielded.*skipped: none/);
});

test('unpaired, duplicate, bad JSON and bad annotations are skipped, counted and logged', async () => {
  const images = await tarBytes([
    ['good.png', 'good'],
    ['lonely.jpg', 'no annotation'],
    ['broken.webp', 'x'],
    ['mismatch.jpeg', 'x'],
    ['good.jpg', 'duplicate key'],
    ['good.txt', 'an extra file'],
    ['sub/also-good.seg.png', 'not an image ext'],
    ['sub/also-good.png', 'kept'],
  ]);
  const annotations = await tarBytes([
    ['good.json', annotationJson('good')],
    ['broken.json', '{"text": ["a"], '],
    ['mismatch.json', JSON.stringify({ text: ['a', 'b'], box: [[0, 0, 1, 1]], global_text: 'g' })],
    ['orphan.json', annotationJson('orphan')],
    ['sub/also-good.json', annotationJson('sub/also-good')],
  ]);
  const lines: string[] = [];
  const dataset = new ShardDataset({
    ...inOrder,
    images: write('mixed/images.tar', images),
    annotations: write('mixed/annotations.tar', annotations),
    log: (l) => lines.push(l),
  });
  assert.deepEqual(await all(dataset), ['good', 'sub/also-good']);
  const c = dataset.counts;
  assert.deepEqual(c.skipped, { unpaired: 2, duplicate: 1, badJson: 1, badAnnotation: 1, badTar: 0 });
  assert.equal(c.ignored, 2);
  assert.equal(lines.length, 5);
  assert.ok(lines.some((l) => l.includes('lonely') && l.includes('unpaired')));
  assert.ok(lines.some((l) => l.includes('orphan') && l.includes('annotation has no image')));
  assert.ok(lines.some((l) => l.includes('mismatch') && l.includes('badAnnotation')));
  assert.ok(lines.every((l) => !l.includes('\n')));
});

test('a truncated or corrupt tar loses the rest of its shard only', async () => {
  const set = await makeSet('truncated', 3, 4);
  // Cut image shard 1 inside its third entry (header 512 + data padded to 512 per entry).
  const shard1 = path.join(set.images, 'shard-001.tar');
  fs.writeFileSync(shard1, fs.readFileSync(shard1).subarray(0, 2 * 1024 + 512 + 2));
  // Annotation shard 2 is not a tar at all.
  fs.writeFileSync(path.join(set.annotations, 'shard-002.tar'), Buffer.alloc(2048, 7));
  const lines: string[] = [];
  const dataset = new ShardDataset({ ...inOrder, images: set.images, annotations: set.annotations, log: (l) => lines.push(l) });
  const keys = await all(dataset);
  assert.deepEqual(keys, [...set.keys.slice(0, 4), 's1-00', 's1-01']);
  assert.deepEqual(dataset.counts.skipped, { unpaired: 0, duplicate: 0, badJson: 0, badAnnotation: 0, badTar: 2 });
  assert.ok(lines.some((l) => l.includes('shard-001.tar') && l.includes('truncated')));
});

test('an annotation shard cut short still pairs the annotations before the cut', async () => {
  const set = await makeSet('cut-annotations', 1, 4);
  const file = path.join(set.annotations, 'shard-000.tar');
  // Entries are reversed (s0-03 first); keep the first two whole and part of the third.
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(file, bytes.subarray(0, 4 * 512 + 512 + 20));
  const dataset = new ShardDataset({ ...inOrder, images: set.images, annotations: set.annotations });
  assert.deepEqual(await all(dataset), ['s0-02', 's0-03']);
  assert.equal(dataset.counts.skipped.badTar, 1);
  assert.equal(dataset.counts.skipped.unpaired, 0, 'images that lost their annotation to the bad tar are not counted again');
});

test('a tar cut exactly between entries (no end-of-archive marker) counts as corrupt', async () => {
  const set = await makeSet('cut-boundary', 1, 4);
  const file = path.join(set.images, 'shard-000.tar');
  fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 3 * 1024));
  const lines: string[] = [];
  const dataset = new ShardDataset({ ...inOrder, images: set.images, annotations: set.annotations, log: (l) => lines.push(l) });
  assert.deepEqual(await all(dataset), set.keys.slice(0, 3));
  assert.deepEqual(dataset.counts.skipped, { unpaired: 0, duplicate: 0, badJson: 0, badAnnotation: 0, badTar: 1 });
  assert.match(lines[0]!, /shard-000\.tar: badTar: .*end-of-archive/);
});

test('shuffling is deterministic for a seed and differs between seeds', async () => {
  const set = await makeSet('shuffle', 4, 6);
  const options: ShardDatasetOptions = { images: set.images, annotations: set.annotations, seed: 11, shuffleBuffer: 8, resample: false };
  const a = await all(new ShardDataset(options));
  const b = await all(new ShardDataset(options));
  const c = await all(new ShardDataset({ ...options, seed: 12 }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.notDeepEqual(a, set.keys);
  assert.deepEqual([...a].sort(), set.keys);
  assert.deepEqual([...c].sort(), set.keys);
});

test('resampling loops over epochs, reshuffling the shard order each epoch', async () => {
  const set = await makeSet('resample', 4, 3);
  const dataset = new ShardDataset({ images: set.images, annotations: set.annotations, seed: 5, shuffleBuffer: 0, resample: true });
  const epochs = 8;
  const keys = (await take(dataset.samples(), epochs * 12)).map((s) => s.key);
  const orders = new Set<string>();
  for (let e = 0; e < epochs; e++) {
    const epoch = keys.slice(e * 12, (e + 1) * 12);
    assert.deepEqual([...epoch].sort(), set.keys, `epoch ${e} holds every sample once`);
    orders.add(epoch.filter((_, i) => i % 3 === 0).map((k) => k.slice(0, 2)).join(','));
  }
  assert.ok(orders.size > 1, 'the shard order changes between epochs');
  assert.ok(dataset.counts.epochs >= epochs);
});

test('resampling data with no usable sample is a UserError, not an endless loop', async () => {
  const dataset = new ShardDataset({
    images: write('useless/images.tar', await tarBytes([['a.jpg', 'a']])),
    annotations: write('useless/annotations.tar', await tarBytes([['b.json', annotationJson('b')]])),
    seed: 0,
    shuffleBuffer: 4,
    resample: true,
  });
  await assert.rejects(all(dataset), userErrorNaming('no usable sample'));
});

test('samples({ skip: n }) continues exactly where an uninterrupted run would be', async () => {
  const set = await makeSet('resume', 3, 5);
  const options: ShardDatasetOptions = { images: set.images, annotations: set.annotations, seed: 9, shuffleBuffer: 6, resample: true };
  const full = (await take(new ShardDataset(options).samples(), 50)).map((s) => s.key);
  for (const skip of [0, 1, 17, 31]) {
    const resumed = new ShardDataset(options);
    const tail = (await take(resumed.samples({ skip }), 50 - skip)).map((s) => s.key);
    assert.deepEqual(tail, full.slice(skip), `skip ${skip}`);
    assert.equal(resumed.counts.resumed, skip);
  }
});

async function png(width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.alloc(width * height * 3, 90), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** A 24-bit bottom-up BMP (BITMAPINFOHEADER) of `pixels`, [height][width] of RGB, written by hand. */
function bmp(pixels: readonly (readonly (readonly [number, number, number])[])[]): Buffer {
  const height = pixels.length;
  const width = pixels[0]!.length;
  const row = Math.ceil((width * 3) / 4) * 4;
  const b = Buffer.alloc(54 + row * height);
  b.write('BM', 0);
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * height, 34);
  pixels.forEach((line, y) => line.forEach(([r, g, bl], x) => {
    const at = 54 + (height - 1 - y) * row + x * 3;
    b[at] = bl;
    b[at + 1] = g;
    b[at + 2] = r;
  }));
  return b;
}

test('validateShards accepts what the reference reader accepts (BMP, TIFF, global_text only) and flags EXIF orientation and empty caption lists', async () => {
  const image = await png(40, 30);
  const tiff = await sharp(Buffer.alloc(40 * 30 * 3, 120), { raw: { width: 40, height: 30, channels: 3 } }).tiff().toBuffer();
  const tagged = await sharp(Buffer.alloc(40 * 30 * 3, 60), { raw: { width: 40, height: 30, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const picture = bmp([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [40, 50, 60], [70, 80, 90]]]);
  const box = (b: number[]) => JSON.stringify({ text: ['t'], box: [b], global_text: 'g' });
  const images = write('validate-ref/images.tar', await tarBytes([
    ['picture.bmp', picture],
    ['scan.tiff', tiff],
    ['scan2.tif', tiff],
    ['globalonly.png', image],
    ['nolocal.png', image],
    ['rotated.jpg', tagged],
  ]));
  const annotations = write('validate-ref/annotations.tar', await tarBytes([
    ['picture.json', box([0, 0, 3, 2])],
    ['scan.json', box([0, 0, 40, 30])],
    ['scan2.json', JSON.stringify({ text: ['t'], box: [[1, 1, 2, 2]] })],
    ['globalonly.json', JSON.stringify({ global_text: 'g' })],
    ['nolocal.json', JSON.stringify({ text: [], box: [], global_text: 'g' })],
    ['rotated.json', box([0, 0, 30, 40])],
  ]));
  const report = await validateShards(images, annotations);
  assert.deepEqual(report.problems.map((p) => [p.key, p.reason]), [['nolocal', 'emptyCaptions'], ['rotated', 'orientation']]);
  assert.match(report.problems[0]!.problem, /empty lists/);
  assert.match(report.problems[1]!.problem, /EXIF orientation 6/);
  assert.equal(report.counts.samples, 6);
  assert.equal(report.counts.ok, 4);
  // the BMP decodes to its pixels, top row first
  const decoded = await decodeImage(picture);
  assert.deepEqual([decoded.width, decoded.height, [...decoded.data]], [3, 2, [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90]]);
});

test('validateShards and data validate report each problem entry by entry', async () => {
  const image = await png(40, 30);
  const box = (b: number[]) => JSON.stringify({ text: ['t'], box: [b], global_text: 'g' });
  const images = write(
    'validate/images.tar',
    await tarBytes([
      ['ok.png', image],
      ['border.png', image],
      ['outside.png', image],
      ['undecodable.jpg', 'not a jpeg'],
      ['lonely.png', image],
    ]),
  );
  const annotations = write(
    'validate/annotations.tar',
    await tarBytes([
      ['ok.json', box([1, 2, 30, 20])],
      ['border.json', box([0, 0, 40, 30])],
      ['outside.json', box([10, 10, 41, 20])],
      ['undecodable.json', box([1, 1, 2, 2])],
    ]),
  );
  const report = await validateShards(images, annotations);
  assert.deepEqual(
    report.problems.map((p) => [path.basename(p.shard), p.key, p.reason]),
    [
      ['images.tar', 'outside', 'boxOutside'],
      ['images.tar', 'undecodable', 'badImage'],
      ['images.tar', 'lonely', 'unpaired'],
    ],
  );
  assert.match(report.problems[0]!.problem, /outside the 40x30 image/);
  assert.equal(report.counts.samples, 4);
  assert.equal(report.counts.ok, 2);

  // The command: one line per problem, a summary, exit code 3 (bad data found); 0 on clean data.
  const printed: string[] = [];
  const write0 = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => printed.push(chunk) > 0) as typeof process.stdout.write;
  let codes: number[];
  try {
    const clean = await makeSet('validate-clean', 1, 2);
    const cleanImages = write('validate-clean/real.tar', await tarBytes([['s0-00.png', image], ['s0-01.png', image]]));
    codes = [await dataValidateCommand(images, annotations, {}), await dataValidateCommand(cleanImages, path.join(clean.annotations, 'shard-000.tar'), {})];
  } finally {
    process.stdout.write = write0;
  }
  assert.deepEqual(codes, [3, 0]);
  const lines = printed.join('').trimEnd().split('\n');
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, /images\.tar: outside: boxOutside: box 0/);
  assert.match(lines[3]!, /^data validate: 1 shard pairs, .* 4 samples checked, 2 ok, 3 problems \(unpaired 1, badImage 1, boxOutside 1\)/);
  assert.match(lines[4]!, /2 samples checked, 2 ok, 0 problems$/);
  await assert.rejects(dataValidateCommand(path.join(tmp, 'nope-{0..1}.tar'), annotations, {}), userErrorNaming('nope-{0..1}.tar'));
});
