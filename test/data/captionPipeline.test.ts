/**
 * `captionImages` (src/data/caption/pipeline.ts) end to end against a local stand-in server:
 * shards in the reference format that the reader validates, crops of the right size, failures
 * reported per image, the concurrency limit, and resume after an abort, a failure or a SIGKILL
 * without asking for any caption twice.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { createCanvas, ellipse, fillPolygon, fillRect, type Canvas } from '../../src/data/draw.js';
import { captionImages, GLOBAL_PROMPT, REGION_PROMPT, type CaptionEvent, type CaptionRunOptions, type CaptionSummary } from '../../src/data/caption/pipeline.js';
import { fittedSize } from '../../src/data/caption/crops.js';
import { PROGRESS_FILE, ProgressLog } from '../../src/data/caption/progressLog.js';
import { ShardDataset, validateShards, type Box, type RawSample } from '../../src/io/shards.js';
import { decodeImage, exifOrientation } from '../../src/io/image.js';
import { UserError } from '../../src/errors.js';
import { FakeVisionServer, ok, type Script, type SeenRequest } from './caption/server.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ps3-caption-'));
let server: FakeVisionServer;

before(async () => {
  server = await FakeVisionServer.start();
});
after(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

type Shape = readonly [x0: number, y0: number, x1: number, y1: number];

/** Grey canvas with filled rectangles (and a circle for variety); `seed` shifts the colours. */
function scene(width: number, height: number, shapes: readonly Shape[], seed = 0): Canvas {
  const c = createCanvas(width, height);
  c.rgb.fill(190 + seed);
  shapes.forEach(([x0, y0, x1, y1], i) => {
    const colour = [(60 * i + 40 * seed) % 200, 30 + 50 * i, 200 - 40 * i] as const;
    if (i === 1) fillPolygon(c, [ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2)], { colour });
    else fillRect(c, x0, y0, x1, y1, { colour });
  });
  return c;
}

function raw(c: Canvas): sharp.Sharp {
  return sharp(c.rgb, { raw: { width: c.width, height: c.height, channels: 3 } });
}

interface Fixture {
  readonly dir: string;
  /** key -> decoded (displayed) size and the shapes drawn, in displayed pixels */
  readonly expected: Map<string, { width: number; height: number; shapes: readonly Shape[] }>;
}

/**
 * A folder of images: a PNG, a JPEG in a sub-folder, a JPEG stored landscape with EXIF
 * orientation 6 (displayed portrait), a flat WebP (no regions), a broken .jpg and a text file.
 */
async function makeImages(name: string): Promise<Fixture> {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'sub'), { recursive: true });
  const expected: Fixture['expected'] = new Map();
  const street: Shape[] = [[100, 100, 300, 250], [700, 150, 900, 350], [400, 600, 700, 700]];
  await raw(scene(1200, 900, street)).png().toFile(path.join(dir, 'street.png'));
  expected.set('street', { width: 1200, height: 900, shapes: street });
  const sign: Shape[] = [[80, 80, 380, 200], [500, 300, 800, 520]];
  await raw(scene(900, 600, sign, 1)).jpeg({ quality: 92 }).toFile(path.join(dir, 'sub', 'sign.jpg'));
  expected.set('sub_sign', { width: 900, height: 600, shapes: sign });
  // stored 800 x 500; orientation 6 displays it turned 90 degrees clockwise, 500 x 800
  const stored: Shape[] = [[50, 50, 250, 200], [500, 250, 750, 450]];
  await raw(scene(800, 500, stored, 2)).jpeg({ quality: 92 }).withMetadata({ orientation: 6 }).toFile(path.join(dir, 'rotated.jpg'));
  const turned = stored.map(([x0, y0, x1, y1]) => [500 - y1, x0, 500 - y0, x1] as const);
  expected.set('rotated', { width: 500, height: 800, shapes: turned });
  await raw(scene(400, 300, [])).webp({ lossless: true }).toFile(path.join(dir, 'flat.webp'));
  expected.set('flat', { width: 400, height: 300, shapes: [] });
  writeFileSync(path.join(dir, 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8]));
  writeFileSync(path.join(dir, 'notes.txt'), 'not an image\n');
  return { dir, expected };
}

/** `count` distinct images with two shapes each. */
async function makeMany(name: string, count: number): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await raw(scene(640, 480, [[40 + 10 * i, 40, 240, 200], [350, 220, 600, 440]], i)).png().toFile(path.join(dir, `img-${String(i).padStart(2, '0')}.png`));
  }
  return dir;
}

function options(images: string, out: string, extra: Partial<CaptionRunOptions> = {}): CaptionRunOptions {
  return {
    images,
    out,
    endpoint: server.url,
    model: 'test-vlm',
    timeoutMs: 5000,
    maxTokens: 100,
    retries: 3,
    retryBaseMs: 10,
    regions: 6,
    cropSize: 256,
    margin: 0.1,
    cropFormat: 'jpeg',
    concurrency: 2,
    perShard: 2,
    ...extra,
  };
}

/** Runs with a fresh server script and request count; events collected. */
async function run(o: CaptionRunOptions, script: Script = ok): Promise<{ summary: CaptionSummary; events: CaptionEvent[] }> {
  server.reset(script);
  const events: CaptionEvent[] = [];
  const summary = await captionImages({
    ...o,
    onEvent: (e) => {
      events.push(e);
      o.onEvent?.(e);
    },
  });
  assert.deepEqual(server.problems, []);
  assert.equal(summary.requests, server.requests.length);
  return { summary, events };
}

async function samples(out: string): Promise<RawSample[]> {
  const dataset = new ShardDataset({ images: path.join(out, 'images'), annotations: path.join(out, 'annotations'), seed: 0, shuffleBuffer: 0, resample: false, shuffleShards: false });
  const found: RawSample[] = [];
  for await (const s of dataset.samples()) found.push(s);
  assert.equal(dataset.counts.read, found.length);
  assert.deepEqual(Object.values(dataset.counts.skipped), [0, 0, 0, 0, 0]);
  return found;
}

async function assertValid(out: string, count: number): Promise<void> {
  const report = await validateShards(path.join(out, 'images'), path.join(out, 'annotations'));
  assert.deepEqual(report.problems, []);
  assert.equal(report.counts.ok, count);
}

/** Image hashes named by the captions the log holds (the server's captions name what they describe). */
function loggedHashes(out: string): Set<string> {
  const hashes = new Set<string>();
  for (const line of readFileSync(path.join(out, PROGRESS_FILE), 'utf8').split('\n')) {
    const m = /"kind":"caption".*"text":"caption ([0-9a-f]{16}) /.exec(line);
    if (m) hashes.add(m[1]!);
  }
  return hashes;
}

const size = (text: string): [number, number] => {
  const m = / (\d+)x(\d+)$/.exec(text);
  assert.ok(m, `caption "${text}" does not name a size`);
  return [Number(m[1]), Number(m[2])];
};

function contains(box: Box, shape: Shape): boolean {
  return box[0] <= shape[0] && box[1] <= shape[1] && box[2] >= shape[2] && box[3] >= shape[3];
}

function shardHashes(out: string): string[] {
  return ['images', 'annotations'].flatMap((sub) =>
    readdirSync(path.join(out, sub))
      .sort()
      .map((n) => `${sub}/${n} ${createHash('sha256').update(readFileSync(path.join(out, sub, n))).digest('hex')}`),
  );
}

test('captions a folder into a valid shard pair set: original bytes (rotated ones stored upright), boxes after EXIF orientation, crops of the right size', async () => {
  const { dir, expected } = await makeImages('e2e');
  const out = path.join(tmp, 'e2e-out');
  const { summary, events } = await run(options(dir, out));
  assert.deepEqual(
    { ...summary, requests: 0, leftOut: [] },
    { images: 5, earlier: 0, captioned: 4, skipped: 1, failed: 0, interrupted: false, requests: 0, retries: 0, samples: 4, shards: 2, leftOut: [] },
  );
  const start = events[0]!;
  assert.ok(start.type === 'start' && start.ignored === 1 && start.url === `${server.url}/v1/chat/completions`);
  const skipped = events.filter((e) => e.type === 'image' && e.outcome === 'skipped');
  assert.equal(skipped.length, 1);
  assert.ok(skipped[0]!.type === 'image' && skipped[0]!.file === 'broken.jpg' && /cannot decode JPEG|truncated|corrupt/i.test(skipped[0]!.message ?? ''), JSON.stringify(skipped[0]));
  assert.ok(server.maxInFlight <= 2, `${server.maxInFlight} requests in flight`);
  for (const r of server.requests) assert.deepEqual([r.model, r.maxTokens, r.temperature, r.mime], ['test-vlm', 100, 0, 'image/jpeg']);
  await assertValid(out, 4);

  const found = await samples(out);
  assert.deepEqual(found.map((s) => s.key).sort(), ['flat', 'rotated', 'street', 'sub_sign']);
  const byCaption = new Map(server.requests.map((r) => [`caption ${r.hash} ${r.width}x${r.height}`, r]));
  let regionCaptions = 0;
  for (const s of found) {
    const want = expected.get(s.key)!;
    const file = s.key === 'sub_sign' ? 'sub/sign.jpg' : `${s.key}.${s.imageExt}`;
    const original = readFileSync(path.join(dir, file));
    if (s.key === 'rotated') {
      // stored upright without the tag: decoded as PIL decodes (orientation not applied), the
      // pixels are the displayed ones the boxes were made on
      assert.equal(await exifOrientation(s.image), 1);
      const stored = await sharp(s.image).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([stored.info.width, stored.info.height], [want.width, want.height]);
      const shown = await decodeImage(original);
      let diff = 0;
      for (let i = 0; i < shown.data.length; i++) diff += Math.abs(shown.data[i]! - stored.data[i]!);
      assert.ok(diff / shown.data.length < 2, `re-encoded pixels differ by ${diff / shown.data.length} on average`);
    } else {
      assert.ok(Buffer.from(s.image).equals(original), `${s.key}: stored bytes differ from the file`);
    }
    const a = s.annotation;
    assert.equal(a.type, 'caption');
    assert.ok(a.globalText !== null);
    assert.equal(byCaption.get(a.globalText)?.prompt, GLOBAL_PROMPT);
    assert.deepEqual(size(a.globalText), Object.values(fittedSize(want.width, want.height, 256)));
    assert.equal(a.box.length, a.text.length);
    a.box.forEach((box, i) => {
      assert.ok(box[0] >= 0 && box[1] >= 0 && box[2] <= want.width && box[3] <= want.height, `${s.key}: box ${box} outside ${want.width}x${want.height}`);
      assert.equal(byCaption.get(a.text[i]!)?.prompt, REGION_PROMPT);
      // what was sent is that box of the displayed image, downscaled to fit 256
      assert.deepEqual(size(a.text[i]!), Object.values(fittedSize(box[2] - box[0], box[3] - box[1], 256)), `${s.key} box ${box}`);
    });
    regionCaptions += a.text.length;
    for (const shape of want.shapes) assert.ok(a.box.some((b) => contains(b, shape)), `${s.key}: no box holds the shape ${shape} (${a.box.join(' | ')})`);
    if (s.key === 'flat') assert.deepEqual(a.box, []);
  }
  // the region-less image has its global caption only: no empty lists anywhere
  const json = readdirSync(path.join(out, 'annotations')).map((n) => readFileSync(path.join(out, 'annotations', n), 'latin1')).join('');
  assert.ok(!json.includes('"text":[]') && !json.includes('"box":[]'), 'an annotation holds empty caption lists');
  assert.ok(json.includes('{"global_text":"caption '), 'the flat image has no global-only annotation');
  assert.equal(server.requests.length, regionCaptions + 4);

  // nothing to do a second time: no request, the same shard bytes; the broken file is reported again
  const before = shardHashes(out);
  const again = await run(options(dir, out));
  assert.deepEqual([again.summary.requests, again.summary.earlier, again.summary.captioned, again.summary.skipped, again.summary.samples], [0, 4, 0, 1, 4]);
  assert.deepEqual(shardHashes(out), before);
  assert.deepEqual(readdirSync(out).sort(), [PROGRESS_FILE, 'annotations', 'images']);
});

test('requests in flight never exceed --concurrency, and reach it', async () => {
  const dir = await makeMany('many', 6);
  for (const concurrency of [1, 3]) {
    const out = path.join(tmp, `many-out-${concurrency}`);
    const { summary } = await run(options(dir, out, { concurrency }), () => ({ status: 200, delayMs: 25 }));
    assert.equal(summary.captioned, 6);
    assert.equal(server.maxInFlight, concurrency);
    await assertValid(out, 6);
  }
});

test('with no regions, every image gets its global caption only, spread evenly over the shards (3/2/2, not 3/3/1)', async () => {
  const dir = await makeMany('even', 7);
  const out = path.join(tmp, 'even-out');
  const { summary } = await run(options(dir, out, { regions: 0, perShard: 3 }));
  assert.deepEqual([summary.captioned, summary.samples, summary.shards, summary.requests], [7, 7, 3, 7]);
  await assertValid(out, 7);
  const counts = readdirSync(path.join(out, 'images')).sort().map((n) => (readFileSync(path.join(out, 'images', n), 'latin1').match(/img-\d\d\.png/g) ?? []).length);
  assert.deepEqual(counts, [3, 2, 2]);
  for (const s of await samples(out)) {
    assert.deepEqual([s.annotation.text, s.annotation.box], [[], []]);
    assert.ok(s.annotation.globalText?.startsWith('caption '));
  }
});

test('429, 500 and timeouts are retried; a 400 fails only its image, not retried, and a re-run asks only for what is missing', async () => {
  const dir = await makeMany('flaky', 3);
  // the one square image: its whole-image view is the only request of 256 x 256, and is refused
  await raw(scene(500, 500, [[50, 50, 200, 200], [300, 300, 450, 450]])).png().toFile(path.join(dir, 'square.png'));
  const out = path.join(tmp, 'flaky-out');
  const refused = (r: SeenRequest): boolean => r.prompt === GLOBAL_PROMPT && r.width === 256 && r.height === 256;
  // the first request meets a 429, then a 502, then no answer at all, before it gets through
  const script: Script = (r) => {
    if (r.n === 1) return { status: 429, headers: { 'retry-after': '0' } };
    if (r.n === 2) return { status: 502 };
    if (r.n === 3) return { hang: true };
    return refused(r) ? { status: 400, body: { error: { message: 'image rejected' } } } : { status: 200 };
  };
  // the timeout is long enough that only the hung request meets it, even on a loaded machine
  const { summary, events } = await run(options(dir, out, { concurrency: 1, timeoutMs: 1000 }), script);
  assert.deepEqual([summary.captioned, summary.failed, summary.skipped, summary.retries, summary.samples], [3, 1, 0, 3, 3]);
  const failed = events.filter((e) => e.type === 'image' && e.outcome === 'failed');
  assert.equal(failed.length, 1);
  assert.ok(failed[0]!.type === 'image' && failed[0]!.file === 'square.png' && failed[0]!.message === 'HTTP 400: image rejected', JSON.stringify(failed[0]));
  const refusedRequests = server.requests.filter(refused);
  assert.equal(refusedRequests.length, 1, 'a 400 is not retried');
  const hash = refusedRequests[0]!.hash;
  await assertValid(out, 3);

  // the failed image's regions were captioned and logged: only its whole-image view is asked again
  const again = await run(options(dir, out, { concurrency: 1 }));
  assert.deepEqual(server.requests.map((r) => [r.hash, r.prompt]), [[hash, GLOBAL_PROMPT]]);
  assert.deepEqual([again.summary.captioned, again.summary.earlier, again.summary.failed, again.summary.samples], [1, 3, 0, 4]);
  await assertValid(out, 4);
});

test('stopped by its signal mid-way, a run writes what is finished; the re-run asks for none of the logged captions', async () => {
  const dir = await makeMany('abort', 6);
  const out = path.join(tmp, 'abort-out');
  const stop = new AbortController();
  let captioned = 0;
  const first = await run(
    options(dir, out, {
      concurrency: 1,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'image' && e.outcome === 'captioned' && ++captioned === 2) stop.abort();
      },
    }),
    () => ({ status: 200, delayMs: 20 }),
  );
  assert.equal(first.summary.interrupted, true);
  assert.equal(first.summary.failed, 0);
  assert.ok(first.summary.captioned >= 2 && first.summary.captioned < 6, `captioned ${first.summary.captioned}`);
  assert.equal(first.summary.samples, first.summary.captioned);
  await assertValid(out, first.summary.captioned);

  const logged = loggedHashes(out);
  const second = await run(options(dir, out));
  assert.equal(second.summary.interrupted, false);
  assert.equal(second.summary.earlier, first.summary.captioned);
  assert.deepEqual(server.requests.filter((r) => logged.has(r.hash)), []);
  assert.equal(second.summary.samples, 6);
  await assertValid(out, 6);
});

test('killed (SIGKILL) at an arbitrary request and re-run: nothing logged is asked again, all images end up in valid shards', async () => {
  const dir = await makeMany('kill', 5);
  const out = path.join(tmp, 'kill-out');
  const module = pathToFileURL(path.resolve('dist/src/data/caption/pipeline.js')).href;
  const code = `const { captionImages } = await import(process.env.CAPTION_MODULE); await captionImages(JSON.parse(process.env.CAPTION_OPTIONS));`;
  server.reset((r) => {
    // 15 requests in all (5 images, 2 regions each, 2 at a time): killed with some answered, some in flight
    if (r.n === 9) child.kill('SIGKILL');
    return { status: 200, delayMs: 5 };
  });
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, CAPTION_MODULE: module, CAPTION_OPTIONS: JSON.stringify(options(dir, out)) },
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_, signal) => resolve(signal)));
  assert.equal(await exited, 'SIGKILL', `the child must have been killed before it finished; ${server.requests.length} requests; stderr: ${stderr}`);
  // the kill may have cut the log mid-line: cut a line on purpose too, as a torn write would
  appendFileSync(path.join(out, PROGRESS_FILE), '{"kind":"caption","key":"img-04","fi');
  const logged = loggedHashes(out);
  assert.ok(logged.size > 0 && logged.size < 9, `${logged.size} captions logged`);

  const second = await run(options(dir, out));
  assert.deepEqual(server.requests.filter((r) => logged.has(r.hash)), []);
  assert.equal(second.summary.samples, 5);
  await assertValid(out, 5);
  for (const line of readFileSync(path.join(out, PROGRESS_FILE), 'utf8').split('\n').filter(Boolean)) JSON.parse(line);
});

test('a changed image is captioned afresh; other settings or foreign shards are refused', async () => {
  const dir = await makeMany('change', 2);
  const out = path.join(tmp, 'change-out');
  await run(options(dir, out));
  await raw(scene(640, 480, [[300, 40, 600, 200]], 9)).png().toFile(path.join(dir, 'img-01.png'));
  const again = await run(options(dir, out));
  assert.deepEqual([again.summary.earlier, again.summary.captioned, again.summary.samples], [1, 1, 2]);
  assert.equal(new Set(server.requests.map((r) => r.hash)).size, server.requests.length);
  await assertValid(out, 2);

  await assert.rejects(captionImages(options(dir, out, { model: 'other-vlm' })), (e: unknown) => e instanceof UserError && /captioned with model "test-vlm", not "other-vlm"/.test(e.message));
  await assert.rejects(captionImages(options(dir, out, { regions: 3 })), (e: unknown) => e instanceof UserError && /regions 6, not 3/.test(e.message));
  const foreign = path.join(tmp, 'foreign');
  mkdirSync(path.join(foreign, 'images'), { recursive: true });
  writeFileSync(path.join(foreign, 'images', 'shard-000000.tar'), '');
  await assert.rejects(captionImages(options(dir, foreign)), (e: unknown) => e instanceof UserError && /not written by "data caption"/.test(e.message));
  const empty = path.join(tmp, 'empty');
  mkdirSync(empty);
  await assert.rejects(captionImages(options(empty, path.join(tmp, 'empty-out'))), (e: unknown) => e instanceof UserError && /no \.jpg/.test(e.message));
});

test('the progress log drops a torn last line and refuses a damaged one', async () => {
  const dir = path.join(tmp, 'log');
  mkdirSync(dir);
  const settings = { model: 'm', regionPrompt: 'r', globalPrompt: 'g', method: 'x', regions: 2, cropSize: 64, margin: 0.1, cropFormat: 'jpeg', maxTokens: 10 };
  const sha = 'a'.repeat(64);
  let log = await ProgressLog.open(dir, settings);
  await log.addCaption({ key: 'k', file: 'k.png', sha256: sha, part: 0, box: [1, 2, 3, 4], text: 'one' });
  await log.close();
  const file = path.join(dir, PROGRESS_FILE);
  const whole = readFileSync(file, 'utf8');
  appendFileSync(file, '{"kind":"caption","key":"k","fi');
  log = await ProgressLog.open(dir, settings);
  assert.equal(readFileSync(file, 'utf8'), whole);
  assert.equal(log.captionsOf('k', sha).get(0)?.text, 'one');
  assert.equal(log.keyOf('k.png'), 'k');
  await log.addDone({ key: 'k', file: 'k.png', sha256: sha, ext: 'png', annotation: { text: ['one'], box: [[1, 2, 3, 4]], global_text: 'g', type: 'caption' } });
  await log.close();
  log = await ProgressLog.open(dir, settings);
  assert.equal(log.finished('k', sha)?.annotation.global_text, 'g');
  assert.equal(log.finished('k', 'b'.repeat(64)), undefined);
  await log.close();
  writeFileSync(file, `${whole}not json\n${whole.split('\n')[1]}\n`);
  await assert.rejects(ProgressLog.open(dir, settings), (e: unknown) => e instanceof UserError && /line 3: not JSON/.test(e.message));
});
