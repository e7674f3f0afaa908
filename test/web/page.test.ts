// The browser page end to end: build it, serve it, drive it in headless Chromium, and check that
// what it computes equals what the Node encoder computes on the same image, engine for engine:
// the page's default (the trunk, convnet and selector projection on onnxruntime-web) against Node
// on onnxruntime-node, and the page with engine=tfjs against Node on TensorFlow.js alone.
//
// Needs Debian's Chromium at /usr/bin/chromium (or $PS3_CHROMIUM); skipped with a message when it
// is absent. The page is built into a temporary folder, so web/dist/ is left alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { useTrunkEngine, type TrunkEngine } from '../../src/engine/trunkEngine.js';
import { loadPixelValues } from '../../src/io/image.js';
import { serializeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { encodeImage } from '../../src/model/encoder.js';
import { randomModel, type PS3Model } from '../../src/model/load.js';
import { presetConfig, PRESETS } from '../../src/model/presets.js';
import type { LookCount } from '../../src/model/selection.js';
import { encodeText } from '../../src/model/text.js';
import { chromiumSkip, launchChromium, syntheticPicture } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..'); // from dist/test/web/
const SKIP = chromiumSkip('page test');
const PRESET = 'tiny-4k';
const MEAN = [0.5, 0.5, 0.5];
const STD = [0.5, 0.5, 0.5];
// generous: Chromium compiles two WASM runtimes (TensorFlow.js's, ONNX Runtime's) at start-up,
// which takes minutes on a machine whose two cores are busy with other work
const PAGE_TIMEOUT_MS = 480_000;

interface PageResult {
  selectionProbs: number[][];
  selectionMaps: number[][];
  grids: Array<[number, number]>;
  pooled: number[];
  tokens: number;
  mode: string;
  ms: Record<string, number>;
  backend: string;
  engine: string;
}

/** What the test uses of the page's `window.ps3Page` (web/src/main.ts). */
interface PageWindow {
  ps3Page: { ready: Promise<unknown>; error: string | null; lastResult: PageResult | null };
}

let tmp = '';
let server: ChildProcess | undefined;
let origin = '';
let browser: Browser | undefined;
let png: Buffer;

/** The test picture as PNG. */
function syntheticPng(): Promise<Buffer> {
  const { data, width, height } = syntheticPicture(800, 600);
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Start web/serve.mjs on a free port; resolves with the URL it prints first. */
function serve(dist: string, modelDir: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['web/serve.mjs', '--port', '0', '--no-build', '--dist', dist, '--model', modelDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}${err}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0]!;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve({ child, url: line.trim() });
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${err}`));
    });
  });
}

function namedArrays(model: PS3Model): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) out.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  return out;
}

/** A model folder the server offers at /model/: tiny-4k with random weights (seed 1) and a SigLIP-style tokenizer. */
function writeModelFolder(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const model = randomModel(presetConfig(PRESET), 1);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(PRESETS[PRESET]!.config, null, 2));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), serializeSafetensors(namedArrays(model)));
  model.weights.dispose();
  const tok = path.join(ROOT, 'test/data/tokenizers/siglip-unigram');
  for (const f of fs.readdirSync(tok)) fs.copyFileSync(path.join(tok, f), path.join(dir, f));
}

interface NodeResult {
  probs: Float32Array[];
  maps: Uint8Array[];
  pooled: Float32Array;
  tokens: number;
  ms: number;
}

/** The Node side: sharp decode + PIL squash + normalise, then encodeImage with the trunk, convnet and projection on `engine`. */
async function encodeInNode(model: PS3Model, looks: LookCount, engine: TrunkEngine, prompt?: { dir: string; text: string }): Promise<NodeResult> {
  useTrunkEngine(engine);
  const t0 = performance.now();
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  const pv = await loadPixelValues(new Uint8Array(png), { size: S, mean: MEAN, std: STD });
  let promptTensor: tf.Tensor | undefined;
  if (prompt) {
    const t = model.config.text;
    const tok = await loadTokenizer(prompt.dir, { contextLength: t.contextLength, clean: t.tokenizerClean, padId: t.padId });
    const text = encodeText(model.weights, t, tok.encode([prompt.text]), 1);
    text.pooledOutput.dispose();
    promptTensor = text.prompt;
  }
  const out = await encodeImage(model.weights, model.config, { data: pv.pixels, batch: 1, height: S, width: S }, {
    numLookClose: looks,
    outputHiddenStates: false,
    ...(promptTensor ? { prompt: promptTensor } : {}),
  });
  const probs = await Promise.all(out.selectionProbs.map(async (p) => (await p.data()) as Float32Array));
  const pooled = (await out.pooledOutput.data()) as Float32Array;
  const result = { probs, maps: out.selectionMaps.map((m) => m.data), pooled, tokens: out.lastHiddenState.shape[1]!, ms: performance.now() - t0 };
  tf.dispose([out.lastHiddenState, ...out.selectionProbs, ...out.bottomupSelectionProbs, ...(out.topdownSelectionProbs ?? []), out.pooledOutput]);
  promptTensor?.dispose();
  return result;
}

async function openPage(query: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  await page.goto(`${origin}/${query}`);
  await page.waitForFunction(() => (window as unknown as Partial<PageWindow>).ps3Page !== undefined);
  await page.evaluate(() => (window as unknown as PageWindow).ps3Page.ready);
  return { page, errors };
}

/** Pick the image with the file input, set looks (and the prompt), press Encode, wait for the heat map. */
async function encodeInPage(page: Page, looks: string, prompt?: string): Promise<{ result: PageResult; ms: number }> {
  await page.setInputFiles('#file', { name: 'synthetic.png', mimeType: 'image/png', buffer: png });
  await page.selectOption('#looks', looks);
  if (prompt !== undefined) await page.fill('#prompt', prompt);
  await page.waitForSelector('#encode:not([disabled])');
  const t0 = performance.now();
  await page.click('#encode');
  await page.waitForFunction(() => document.querySelector('#heatmap')?.getAttribute('data-drawn') === 'true' || (window as unknown as PageWindow).ps3Page.error !== null, undefined, { timeout: PAGE_TIMEOUT_MS });
  const ms = performance.now() - t0;
  const error = await page.evaluate(() => (window as unknown as PageWindow).ps3Page.error);
  assert.equal(error, null, `the page reported: ${error}`);
  const result = await page.evaluate(() => (window as unknown as PageWindow).ps3Page.lastResult!);
  return { result, ms };
}

/** How much of the heat map canvas is drawn: the share of non-black pixels, and distinct colours. */
async function canvasStats(page: Page): Promise<{ width: number; height: number; nonBlack: number; colours: number }> {
  return page.evaluate(() => {
    const c = document.getElementById('heatmap') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let nonBlack = 0;
    const colours = new Set<number>();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i]! + d[i + 1]! + d[i + 2]! > 30) nonBlack++;
      if (colours.size < 5000) colours.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
    }
    return { width: c.width, height: c.height, nonBlack: nonBlack / (c.width * c.height), colours: colours.size };
  });
}

/** Probabilities and the pooled output within 1e-4 (as the engines' parity tests), maps and token counts equal. */
function compare(node: NodeResult, page: PageResult): { maxProbDiff: number; maxPooledDiff: number } {
  assert.equal(page.selectionProbs.length, node.probs.length, 'number of high-res scales');
  let maxProbDiff = 0;
  node.probs.forEach((p, i) => {
    const q = page.selectionProbs[i]!;
    assert.equal(q.length, p.length, `scale ${i}: probability count`);
    for (let k = 0; k < p.length; k++) maxProbDiff = Math.max(maxProbDiff, Math.abs(p[k]! - q[k]!));
    assert.deepEqual(page.selectionMaps[i], Array.from(node.maps[i]!), `scale ${i}: selection maps differ`);
  });
  assert.ok(maxProbDiff <= 1e-4, `selection probabilities differ by up to ${maxProbDiff}`);
  assert.equal(page.tokens, node.tokens, 'token count');
  assert.equal(page.pooled.length, node.pooled.length, 'pooled output width');
  const maxPooledDiff = node.pooled.reduce((a, v, i) => Math.max(a, Math.abs(v - page.pooled[i]!)), 0);
  assert.ok(maxPooledDiff <= 1e-4, `pooled outputs differ by up to ${maxPooledDiff}`);
  return { maxProbDiff, maxPooledDiff };
}

before(async () => {
  if (SKIP) return;
  await initEngine();
  png = await syntheticPng();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-page-'));
  const dist = path.join(tmp, 'dist');
  await run(process.execPath, ['web/build.mjs', '--quiet', '--out', dist]);
  writeModelFolder(path.join(tmp, 'model'));
  const s = await serve(dist, path.join(tmp, 'model'));
  server = s.child;
  origin = new URL(s.url).origin;
  browser = await launchChromium();
});

after(async () => {
  useTrunkEngine('tfjs');
  await browser?.close();
  server?.kill();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('page: bottom-up on the random tiny-4k preset, on onnxruntime-web, equals the Node encoder on onnxruntime-node', { skip: SKIP, timeout: 600_000 }, async (t) => {
  const { page, errors } = await openPage(`?preset=${PRESET}&seed=0`);
  // the random-weights notice is shown, and the prompt box is off for want of a tokenizer
  assert.equal(await page.isVisible('#random-notice'), true);
  assert.equal(await page.isDisabled('#prompt'), true);
  assert.match((await page.textContent('#prompt-note')) ?? '', /tokenizer/);

  const { result, ms } = await encodeInPage(page, '2');
  assert.equal(result.mode, 'bottom-up');
  // headless Chromium here has no GPU adapter: ONNX Runtime falls back to WASM, and says so
  assert.match(result.engine, /^ort-(wasm|webgpu)$/);
  assert.match((await page.getAttribute('#engine', 'title')) ?? '', /ONNX Runtime (wasm|webgpu)/);
  const stats = await canvasStats(page);
  assert.ok(stats.nonBlack > 0.9 && stats.colours > 50, `heat map canvas looks empty: ${JSON.stringify(stats)}`);
  assert.equal(await page.isVisible('#legend'), true);
  assert.ok((await page.locator('#timings tr').count()) >= 6, 'the timings table has a row per stage');

  const model = randomModel(presetConfig(PRESET), 0);
  const node = await encodeInNode(model, 2, 'onnx');
  model.weights.dispose();
  const { maxProbDiff, maxPooledDiff } = compare(node, result);

  const shot = path.join(os.tmpdir(), 'ps3-page-bottomup.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`${result.engine} + TensorFlow.js ${result.backend}; max |diff| Node vs page: probabilities ${maxProbDiff.toExponential(2)}, pooled ${maxPooledDiff.toExponential(2)}; page encode ${(ms / 1000).toFixed(1)} s (stages ${JSON.stringify(Object.fromEntries(Object.entries(result.ms).map(([k, v]) => [k, Math.round(v)])))}); Node ${(node.ms / 1000).toFixed(1)} s; screenshot ${shot}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('page: engine=tfjs runs all on TensorFlow.js, equal to the Node encoder on TensorFlow.js', { skip: SKIP, timeout: 600_000 }, async (t) => {
  const { page, errors } = await openPage(`?preset=${PRESET}&seed=0&engine=tfjs`);
  const { result } = await encodeInPage(page, '1');
  assert.equal(result.engine, 'tfjs');
  const model = randomModel(presetConfig(PRESET), 0);
  const node = await encodeInNode(model, 1, 'tfjs');
  model.weights.dispose();
  const { maxProbDiff, maxPooledDiff } = compare(node, result);
  t.diagnostic(`TensorFlow.js ${result.backend}; max |diff| Node vs page: probabilities ${maxProbDiff.toExponential(2)}, pooled ${maxPooledDiff.toExponential(2)}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('page: an unknown engine or provider is a clear error on the page', { skip: SKIP, timeout: 600_000 }, async () => {
  for (const [query, want] of [
    ['engine=torch', /unknown engine "torch" \(expected one of: ort, tfjs\)/],
    ['ep=cuda', /unknown ONNX Runtime provider "cuda" \(expected auto or one of: webgpu, wasm\)/],
  ] as const) {
    const page = await browser!.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    await page.goto(`${origin}/?preset=${PRESET}&${query}`);
    await page.waitForFunction(() => (window as unknown as Partial<PageWindow>).ps3Page?.error != null);
    assert.match((await page.textContent('#status')) ?? '', want);
    await page.close();
  }
});

test('page: a model folder with a tokenizer encodes top-down, equal to the Node encoder', { skip: SKIP, timeout: 600_000 }, async (t) => {
  const { page, errors } = await openPage('?model=/model/');
  assert.equal(await page.isVisible('#random-notice'), false);
  assert.equal(await page.isDisabled('#prompt'), false);
  const prompt = 'A red square!';
  const { result, ms } = await encodeInPage(page, '1', prompt);
  assert.equal(result.mode, 'top-down');

  const model = randomModel(presetConfig(PRESET), 1);
  const node = await encodeInNode(model, 1, 'onnx', { dir: path.join(tmp, 'model'), text: prompt });
  model.weights.dispose();
  const { maxProbDiff } = compare(node, result);

  const shot = path.join(os.tmpdir(), 'ps3-page-topdown.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`max |prob diff| Node vs page ${maxProbDiff.toExponential(2)}; page encode ${(ms / 1000).toFixed(1)} s; Node ${(node.ms / 1000).toFixed(1)} s; screenshot ${shot}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('page: a JPEG with EXIF orientation decodes upright, the same as in Node', { skip: SKIP, timeout: 600_000 }, async (t) => {
  // 300x400 stored sideways: displayed (orientation 6) it is 400x300, the synthetic picture scaled
  const upright = await sharp(png).resize(400, 300, { fit: 'fill' }).toBuffer();
  const jpeg = await sharp(upright).rotate(-90).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer();
  const { page, errors } = await openPage(`?preset=${PRESET}&seed=0`);
  const result = await page.evaluate(
    async (bytes) => (window as unknown as PageWindow & { ps3Page: { encode(o: object): Promise<PageResult & { originalWidth: number; originalHeight: number }> } }).ps3Page.encode({ imageBytes: bytes, name: 'sideways.jpg', looks: 0 }),
    [...jpeg],
  );
  assert.deepEqual([result.originalWidth, result.originalHeight], [400, 300]);
  const saved = png;
  png = jpeg;
  const model = randomModel(presetConfig(PRESET), 0);
  const node = await encodeInNode(model, 0, 'onnx');
  png = saved;
  model.weights.dispose();
  // JPEG: the browser's decoder and libvips (both libjpeg-turbo) give the same pixels today
  const { maxProbDiff } = compare(node, result);
  t.diagnostic(`max |prob diff| Node vs page ${maxProbDiff.toExponential(2)}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('page: the server refuses paths outside its folders and sends cross-origin isolation headers', { skip: SKIP }, async () => {
  const res = await fetch(`${origin}/`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
  const wasm = await fetch(`${origin}/wasm/tfjs-backend-wasm-simd.wasm`);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  // onnxruntime-web's runtime comes from the page's own build, never from elsewhere
  const ort = await fetch(`${origin}/ort/ort-wasm-simd-threaded.asyncify.wasm`);
  assert.equal(ort.headers.get('content-type'), 'application/wasm');
  assert.equal((await fetch(`${origin}/ort/ort-wasm-simd-threaded.asyncify.mjs`)).status, 200);
  for (const p of ['/..%2f..%2fpackage.json', '/model/..%2f..%2fpackage.json', '/%2e%2e/%2e%2e/package.json']) {
    const r = await fetch(`${origin}${p}`);
    assert.notEqual(r.status, 200, p);
  }
  assert.equal((await fetch(`${origin}/model/config.json`)).status, 200);
});
