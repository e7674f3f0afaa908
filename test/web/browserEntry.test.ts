// The library's browser entry on the fast path, as a user's program would use it: a small program
// importing only `ps3-ts/browser` (the package found by name under node_modules, as after
// `npm link`), bundled by esbuild for the browser with nothing but the package's own "exports" and
// "browser" field, served with onnxruntime-web's and TensorFlow.js's WASM files from local copies,
// run in headless Chromium on onnxruntime-web (WASM provider), and checked against the same
// encode in Node on onnxruntime-node.
//
// Needs Debian's Chromium at /usr/bin/chromium (or $PS3_CHROMIUM); skipped with a message when it
// is absent (the bundle checks run either way).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';
import type { Browser } from 'playwright-core';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { useTrunkEngine } from '../../src/engine/trunkEngine.js';
import { normalise, squash, type RgbImage } from '../../src/io/pixels.js';
import { encodeImage } from '../../src/model/encoder.js';
import { randomModel } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { chromiumSkip, launchChromium, syntheticPicture } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..'); // from dist/test/web/
const SKIP = chromiumSkip('browser entry test');
const PRESET = 'micro';
const SEED = 3;
const LOOKS = 2;
// Chromium compiles two WASM runtimes (TensorFlow.js's, ONNX Runtime's) on cores busy with other work
const PAGE_TIMEOUT_MS = 480_000;

const require = createRequire(import.meta.url);
const ORT_DIST = path.dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'));
/** what onnxruntime-web's default build (WebGPU and WASM providers) loads from `wasmPath` */
const ORT_FILES = ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];
const TFJS_WASM_DIST = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));

/** The user's program: everything from `ps3-ts/browser`; `window.encodeWithPs3` runs one encode. */
const CONSUMER = `
import { initEngine, useOnnxRuntime, prepareTrunk, randomModelBrowser, presetConfig, squash, normalise, encodeImage, tf } from 'ps3-ts/browser';

window.encodeWithPs3 = async ({ preset, seed, looks, rgb, width, height }) => {
  const engine = await initEngine({ backend: 'wasm', wasmPath: '/wasm/' });
  const ort = await useOnnxRuntime({ provider: 'wasm', wasmPath: '/ort/' });
  const model = randomModelBrowser(presetConfig(preset), seed);
  await prepareTrunk('onnx', model.weights, model.config.vision);
  const S = model.config.vision.scales.at(-1);
  const data = normalise(squash({ data: Uint8Array.from(rgb), width, height }, S), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
  const out = await encodeImage(model.weights, model.config, { data, batch: 1, height: S, width: S }, { numLookClose: looks, outputHiddenStates: false });
  const result = {
    backend: engine.backend,
    provider: ort.provider,
    probs: await Promise.all(out.selectionProbs.map(async (p) => Array.from(await p.data()))),
    maps: out.selectionMaps.map((m) => Array.from(m.data)),
    shape: out.lastHiddenState.shape,
    hidden: Array.from(await out.lastHiddenState.data()),
    pooled: Array.from(await out.pooledOutput.data()),
  };
  tf.dispose([out.lastHiddenState, ...out.selectionProbs, ...out.bottomupSelectionProbs, out.pooledOutput]);
  model.weights.dispose();
  return result;
};
`;

interface Encoded {
  probs: number[][];
  maps: number[][];
  shape: number[];
  hidden: number[];
  pooled: number[];
}

interface BrowserEncoded extends Encoded {
  backend: string;
  provider: string;
}

let tmp = '';
let site = '';
let inputs: string[] = [];
let bundleText = '';
let server: Server | undefined;
let origin = '';
let browser: Browser | undefined;

/** The same encode in Node: TensorFlow.js WASM with the trunk, convnet and projection on onnxruntime-node. */
async function encodeInNode(image: RgbImage): Promise<Encoded> {
  await initEngine();
  useTrunkEngine('onnx');
  const model = randomModel(presetConfig(PRESET), SEED);
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  const data = normalise(squash(image, S), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
  const out = await encodeImage(model.weights, model.config, { data, batch: 1, height: S, width: S }, { numLookClose: LOOKS, outputHiddenStates: false });
  const result = {
    probs: await Promise.all(out.selectionProbs.map(async (p) => Array.from(await p.data()))),
    maps: out.selectionMaps.map((m) => Array.from(m.data)),
    shape: out.lastHiddenState.shape,
    hidden: Array.from(await out.lastHiddenState.data()),
    pooled: Array.from(await out.pooledOutput.data()),
  };
  tf.dispose([out.lastHiddenState, ...out.selectionProbs, ...out.bottomupSelectionProbs, out.pooledOutput]);
  model.weights.dispose();
  return result;
}

function maxDiff(a: readonly number[], b: readonly number[], what: string): number {
  assert.equal(b.length, a.length, `${what}: length`);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-browser-entry-'));
  const app = path.join(tmp, 'app');
  site = path.join(tmp, 'site');
  // the package by name, as `npm link` places it: its dependencies resolve from the package's own folder
  fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'ps3-ts'), 'dir');
  fs.writeFileSync(path.join(app, 'main.js'), CONSUMER);
  const result = await build({
    entryPoints: [path.join(app, 'main.js')],
    absWorkingDir: app,
    bundle: true,
    format: 'esm',
    splitting: true,
    platform: 'browser',
    target: 'es2022',
    outdir: site,
    metafile: true,
    logLevel: 'silent',
  }).catch((e: { errors?: Array<{ text: string }> }) => {
    throw new Error(`bundling a program that imports ps3-ts/browser failed: ${(e.errors ?? []).map((x) => x.text).join('; ') || String(e)}`);
  });
  inputs = Object.keys((result.metafile as Metafile).inputs).map((i) => path.resolve(app, i));
  bundleText = fs.readdirSync(site).filter((f) => f.endsWith('.js')).map((f) => fs.readFileSync(path.join(site, f), 'utf8')).join('\n');
  fs.writeFileSync(path.join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><title>ps3-ts/browser</title><link rel="icon" href="data:,"><script type="module" src="main.js"></script>\n');
  fs.mkdirSync(path.join(site, 'ort'));
  for (const f of ORT_FILES) fs.copyFileSync(path.join(ORT_DIST, f), path.join(site, 'ort', f));
  fs.mkdirSync(path.join(site, 'wasm'));
  for (const f of fs.readdirSync(TFJS_WASM_DIST).filter((f) => f.endsWith('.wasm'))) fs.copyFileSync(path.join(TFJS_WASM_DIST, f), path.join(site, 'wasm', f));
  if (SKIP) return;
  const { startServer } = (await import(pathToFileURL(path.join(ROOT, 'web', 'serve.mjs')).href)) as {
    startServer(o: { port: number; dist: string }): Promise<{ server: Server; url: string }>;
  };
  const s = await startServer({ port: 0, dist: site });
  server = s.server;
  origin = new URL(s.url).origin;
  browser = await launchChromium();
});

after(async () => {
  useTrunkEngine('tfjs');
  await browser?.close();
  server?.closeAllConnections();
  server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('ps3-ts/browser bundles with onnxruntime-web and the browser session options, and nothing Node-only', () => {
  const ours = (rel: string): boolean => inputs.includes(path.join(ROOT, rel));
  assert.ok(ours('dist/src/browser.js'), 'the bundle did not resolve ps3-ts/browser to this package');
  assert.ok(ours('dist/src/engine/onnx/sessionOptions.browser.js'), 'the browser session options are not in the bundle');
  assert.ok(ours('dist/src/tensor/engine.browser.js'), 'the browser engine set-up is not in the bundle');
  assert.ok(!ours('dist/src/engine/onnx/sessionOptions.js'), 'the Node session options are in the bundle');
  assert.ok(!ours('dist/src/tensor/engine.js'), 'the Node engine set-up is in the bundle');
  assert.ok(inputs.some((i) => i.includes(`${path.sep}node_modules${path.sep}onnxruntime-web${path.sep}`)), 'onnxruntime-web is not in the bundle');
  const nodeOnly = inputs.filter((i) => /[\\/]node_modules[\\/](onnxruntime-node|sharp)[\\/]/.test(i));
  assert.deepEqual(nodeOnly, [], 'Node-only packages are in the bundle');
  assert.doesNotMatch(bundleText, /onnxruntime-node|require\(["']sharp["']\)|from\s*["']sharp["']/);
});

test('ps3-ts/browser encodes on onnxruntime-web (WASM) in Chromium as Node does on onnxruntime-node', { skip: SKIP, timeout: 600_000 }, async (t) => {
  const page = await browser!.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const errors: string[] = [];
  const fetched: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('response', (r) => {
    fetched.push(new URL(r.url()).pathname);
    if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => 'encodeWithPs3' in window);
  const image = syntheticPicture(400, 300);
  const t0 = performance.now();
  const web = await page.evaluate(
    (args) => (window as unknown as { encodeWithPs3(a: typeof args): Promise<BrowserEncoded> }).encodeWithPs3(args),
    { preset: PRESET, seed: SEED, looks: LOOKS, rgb: Array.from(image.data), width: image.width, height: image.height },
  );
  const webMs = performance.now() - t0;
  assert.deepEqual(errors, []);
  assert.equal(web.provider, 'wasm');
  assert.equal(web.backend, 'wasm');
  // ONNX Runtime's runtime came from the local copies
  assert.ok(fetched.includes('/ort/ort-wasm-simd-threaded.jsep.wasm'), `onnxruntime-web's WASM was not fetched from /ort/: ${fetched.join(', ')}`);

  const node = await encodeInNode(image);
  assert.deepEqual(web.shape, node.shape, 'token count (last hidden state shape)');
  assert.equal(web.maps.length, node.maps.length, 'number of high-res scales');
  node.maps.forEach((m, i) => assert.deepEqual(web.maps[i], m, `scale ${i}: selection maps differ`));
  const probs = Math.max(...node.probs.map((p, i) => maxDiff(p, web.probs[i]!, `scale ${i} probabilities`)));
  const hidden = maxDiff(node.hidden, web.hidden, 'last hidden state');
  const pooled = maxDiff(node.pooled, web.pooled, 'pooled output');
  t.diagnostic(`${web.shape[1]} tokens; max |diff| Chromium vs Node: probabilities ${probs.toExponential(2)}, last hidden state ${hidden.toExponential(2)}, pooled ${pooled.toExponential(2)}; Chromium set-up + encode ${(webMs / 1000).toFixed(1)} s`);
  assert.ok(probs <= 1e-5, `selection probabilities differ by up to ${probs}`);
  assert.ok(hidden <= 1e-5, `last hidden states differ by up to ${hidden}`);
  assert.ok(pooled <= 1e-5, `pooled outputs differ by up to ${pooled}`);
  await page.close();
});
