/**
 * Tests for writing data sets: src/data/shardWriter.ts (readable webdataset tars with fixed
 * headers), writeSynthDataset in src/data/synth.ts (key-matched image and annotation sets, the
 * same bytes from the same seed) and `ps3 data synth` (src/cli/dataSynth.ts: options, refusal,
 * tokenizer and manifest).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { extract } from 'tar-stream';
import { evenShardSizes, ShardWriter, shardName } from '../../src/data/shardWriter.js';
import { writeSynthDataset, type SynthDatasetOptions } from '../../src/data/synth.js';
import { dataSynthCommand, type DataSynthOptions } from '../../src/cli/dataSynth.js';
import { UserError } from '../../src/errors.js';

interface TarEntry {
  readonly name: string;
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly mtime: number | undefined;
  readonly data: Buffer;
}

/** Every entry of a tar file, read with tar-stream's extract. */
async function readTar(path: string): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const ex = extract();
  createReadStream(path).pipe(ex);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const h = entry.header;
    entries.push({ name: h.name, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime?.getTime(), data: Buffer.concat(chunks) });
  }
  return entries;
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ps3-data-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** sha256 of every file under dir, by relative path. */
async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const data = await readFile(join(dir, name)).catch(() => null); // folders
    if (data !== null) out[name] = createHash('sha256').update(data).digest('hex');
  }
  return out;
}

async function writeSamples(dir: string, perShard: number, count: number): Promise<Awaited<ReturnType<ShardWriter['close']>>> {
  const writer = new ShardWriter(dir, perShard);
  for (let i = 0; i < count; i++) {
    const key = String(i).padStart(9, '0');
    // extensions given out of order: the writer sorts them
    await writer.write(key, [{ ext: 'txt', data: Buffer.from(`caption ${i}`) }, { ext: 'bin', data: new Uint8Array(700 + i).fill(i) }]);
  }
  assert.equal(writer.samples, count);
  return writer.close();
}

test('shards: samples roll over into numbered tars, entries named KEY.EXT with fixed headers', () => withTempDir(async (dir) => {
  const set = await writeSamples(dir, 2, 5);
  assert.deepEqual((await readdir(dir)).sort(), [0, 1, 2].map(shardName));
  assert.deepEqual(set.shards, [0, 1, 2].map((i) => join(dir, shardName(i))));
  const first = await readTar(set.shards[0]!);
  assert.deepEqual(first.map((e) => e.name), ['000000000.bin', '000000000.txt', '000000001.bin', '000000001.txt']);
  assert.equal(first[1]!.data.toString(), 'caption 0');
  assert.equal(first[2]!.data.length, 701);
  for (const e of first) assert.deepEqual([e.mtime, e.uid, e.gid, e.mode], [0, 0, 0, 0o644]);
  assert.deepEqual((await readTar(set.shards[2]!)).map((e) => e.name), ['000000004.bin', '000000004.txt']);
  let bytes = 0;
  for (const p of set.shards) bytes += (await readFile(p)).length;
  assert.equal(set.bytes, bytes);
}));

test('shards: the same samples give the same bytes, a second later too', () => withTempDir(async (dir) => {
  const sa = await writeSamples(await mkdir(join(dir, 'a'), { recursive: true }).then(() => join(dir, 'a')), 3, 4);
  await new Promise((r) => setTimeout(r, 1100));
  const sb = await writeSamples(await mkdir(join(dir, 'b'), { recursive: true }).then(() => join(dir, 'b')), 3, 4);
  assert.deepEqual(Object.values(await hashTree(join(dir, 'a'))), Object.values(await hashTree(join(dir, 'b'))));
  assert.equal(sa.shards.length, 2);
  assert.equal(sb.bytes, sa.bytes);
}));

test('shards: nothing written, no shard', () => withTempDir(async (dir) => {
  assert.deepEqual(await new ShardWriter(dir, 4).close(), { shards: [], bytes: 0 });
  assert.deepEqual(await readdir(dir), []);
  assert.throws(() => new ShardWriter(dir, 0), RangeError);
}));

test('shards: with the total known, samples spread evenly over as few shards as perShard allows', () => withTempDir(async (dir) => {
  assert.deepEqual(evenShardSizes(7, 3), [3, 2, 2]);
  assert.deepEqual(evenShardSizes(10, 4), [4, 3, 3]);
  assert.deepEqual(evenShardSizes(8, 4), [4, 4]);
  assert.deepEqual(evenShardSizes(1, 4), [1]);
  const writer = new ShardWriter(dir, 3, { total: 7 });
  for (let i = 0; i < 7; i++) await writer.write(`k${i}`, [{ ext: 'txt', data: Buffer.from(String(i)) }]);
  const set = await writer.close();
  assert.deepEqual(await Promise.all(set.shards.map(async (p) => (await readTar(p)).length)), [3, 2, 2]);
  assert.throws(() => new ShardWriter(dir, 3, { total: -1 }), RangeError);
}));

const SMALL: Omit<SynthDatasetOptions, 'out'> = { count: 5, width: 320, height: 256, seed: 11, perShard: 2, format: 'png' };

test('writeSynthDataset: key-matched image and annotation sets in the reference format', () => withTempDir(async (dir) => {
  const progress: number[] = [];
  const summary = await writeSynthDataset({ ...SMALL, out: dir }, (p) => progress.push(p.done));
  assert.deepEqual(progress, [1, 2, 3, 4, 5]);
  assert.equal(summary.images, 5);
  assert.deepEqual(summary.imageShards.map((p) => p.slice(dir.length + 1)), ['images/shard-000000.tar', 'images/shard-000001.tar', 'images/shard-000002.tar']);
  assert.equal(summary.annotationShards.length, 3);
  let captions = 0;
  for (let s = 0; s < 3; s++) {
    const images = await readTar(summary.imageShards[s]!);
    const annotations = await readTar(summary.annotationShards[s]!);
    const keys = images.map((e) => e.name.replace(/\.png$/, ''));
    assert.deepEqual(annotations.map((e) => e.name), keys.map((k) => `${k}.json`));
    assert.deepEqual(keys, [2 * s, 2 * s + 1].filter((i) => i < 5).map((i) => String(i).padStart(9, '0')));
    for (let i = 0; i < images.length; i++) {
      const meta = await sharp(images[i]!.data).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 320, 256, 3]);
      const ann = JSON.parse(annotations[i]!.data.toString()) as { text: unknown; box: unknown; global_text: unknown; type: unknown };
      assert.deepEqual(Object.keys(ann).sort(), ['box', 'global_text', 'text', 'type']);
      assert.equal(ann.type, 'synth');
      assert.ok(Array.isArray(ann.text) && Array.isArray(ann.box) && ann.text.length === ann.box.length && ann.text.length >= 4);
      for (const b of ann.box as unknown[]) {
        assert.ok(Array.isArray(b) && b.length === 4);
        const [x0, y0, x1, y1] = b as number[];
        assert.ok(x0! >= 0 && y0! >= 0 && x1! <= 320 && y1! <= 256 && x0! < x1! && y0! < y1!);
      }
      assert.ok(typeof ann.global_text === 'string' && ann.global_text.length > 0);
      captions += ann.text.length + 1;
    }
  }
  assert.equal(summary.captions, captions);
}));

test('writeSynthDataset: same seed, same bytes (PNG and JPEG); another seed, other bytes', () => withTempDir(async (dir) => {
  const run = async (name: string, options: Partial<SynthDatasetOptions>): Promise<Record<string, string>> => {
    await writeSynthDataset({ ...SMALL, count: 3, ...options, out: join(dir, name) });
    return hashTree(join(dir, name));
  };
  const a = await run('a', {});
  assert.deepEqual(await run('b', {}), a);
  const other = await run('c', { seed: 12 });
  assert.notEqual(other['images/shard-000000.tar'], a['images/shard-000000.tar']);
  assert.notEqual(other['annotations/shard-000000.tar'], a['annotations/shard-000000.tar']);
  // image i does not depend on the shard size
  const regrouped = await run('d', { perShard: 3 });
  const tarA = await readTar(join(dir, 'a', 'images', 'shard-000001.tar'));
  const tarD = await readTar(join(dir, 'd', 'images', 'shard-000000.tar'));
  assert.ok(tarA[0]!.data.equals(tarD[2]!.data));
  assert.equal(Object.keys(regrouped).length, 2);
  const jpg = await run('e', { format: 'jpg' });
  assert.deepEqual(await run('f', { format: 'jpg' }), jpg);
  const first = await readTar(join(dir, 'e', 'images', 'shard-000000.tar'));
  assert.equal(first[0]!.name, '000000000.jpg');
  assert.equal((await sharp(first[0]!.data).metadata()).format, 'jpeg');
}));

const CLI: DataSynthOptions = { out: '', count: '3', size: '256', seed: '5', perShard: '2' };

/** Runs the command with stdout silenced (it prints a header and a summary). */
async function quietly(options: DataSynthOptions): Promise<{ code: number; printed: string }> {
  const write = process.stdout.write;
  let printed = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    printed += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await dataSynthCommand(options), printed };
  } finally {
    process.stdout.write = write;
  }
}

test('ps3 data synth: shards, tokenizer, manifest, summary; refuses to write over shards', () => withTempDir(async (dir) => {
  const out = join(dir, 'set');
  const { code, printed } = await quietly({ ...CLI, out, aspect: '4:3' });
  assert.equal(code, 0);
  assert.match(printed, /wrote 3 images, \d+ captions .* images\/s at 256 x 192 png/);
  assert.deepEqual((await readdir(join(out, 'tokenizer'))).sort(), ['tokenizer.json', 'tokenizer_config.json']);
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(manifest['count'], 3);
  assert.equal(manifest['width'], 256);
  assert.equal(manifest['height'], 192);
  assert.equal(manifest['per_shard'], 2);
  assert.deepEqual(manifest['shards'], { images: ['images/shard-000000.tar', 'images/shard-000001.tar'], annotations: ['annotations/shard-000000.tar', 'annotations/shard-000001.tar'] });
  assert.ok(typeof manifest['vocabulary_size'] === 'number' && manifest['vocabulary_size'] > 100);
  assert.deepEqual(manifest['local_captions'], [4, 8]);
  await assert.rejects(quietly({ ...CLI, out }), (e: unknown) => e instanceof UserError && /already holds shards/.test(e.message));
  // a folder without shards is fine to write into
  const other = join(dir, 'other');
  await mkdir(other);
  await writeFile(join(other, 'notes.txt'), 'kept');
  assert.equal((await quietly({ ...CLI, out: other, count: '1' })).code, 0);
  assert.equal(await readFile(join(other, 'notes.txt'), 'utf8'), 'kept');
}));

test('ps3 data synth --captions MIN-MAX: each image gets that many local captions, recorded in the manifest', () => withTempDir(async (dir) => {
  const out = join(dir, 'dense');
  assert.equal((await quietly({ ...CLI, out, count: '2', size: '512', captions: '16-20' })).code, 0);
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(manifest['local_captions'], [16, 20]);
  // 2 images: 16-20 local captions each, plus a global one each
  assert.ok(typeof manifest['captions'] === 'number' && manifest['captions'] >= 34 && manifest['captions'] <= 42, String(manifest['captions']));
}));

test('ps3 data synth: bad options are one-line user errors naming the option', async () => {
  const cases: Array<[Partial<DataSynthOptions>, RegExp]> = [
    [{ count: '-1' }, /^--count /],
    [{ count: 'ten' }, /^--count /],
    [{ count: '0' }, /^--count /],
    [{ size: '2.5' }, /^--size /],
    [{ size: '20' }, /^--size /],
    [{ seed: '-3' }, /^--seed /],
    [{ perShard: '0' }, /^--per-shard /],
    [{ format: 'gif' }, /^--format /],
    [{ aspect: '16:0' }, /^--aspect /],
    [{ aspect: 'wide' }, /^--aspect /],
    [{ contextLength: '1' }, /^--context-length /],
    [{ captions: '0' }, /^--captions /],
    [{ captions: '9-3' }, /^--captions /],
    [{ captions: '4-99' }, /^--captions /],
    [{ captions: 'many' }, /^--captions /],
  ];
  for (const [change, message] of cases) {
    await assert.rejects(quietly({ ...CLI, out: join(tmpdir(), 'ps3-never-written'), ...change }), (e: unknown) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n'), JSON.stringify(change));
  }
});
