/**
 * `ps3 bench browser`: one encode of one image (decode to outputs) in headless Chromium, on the
 * page under web/, next to the same encode in this Node process, with the same random weights
 * (preset, seed 0) and the same engine split: ONNX Runtime for the trunk, the selector's convnet
 * and projection (onnxruntime-node here, onnxruntime-web there), TensorFlow.js for the rest; or
 * TensorFlow.js alone with `--engine tfjs` (TensorFlow.js on WASM on both sides). Prints the stages side by side and the ratios
 * (Chromium / Node), or one JSON line.
 *
 * Chromium is Debian's, driven by playwright-core; the page is built into a temporary folder and
 * served on loopback by web/serve.mjs (cross-origin isolated, so WASM runs threaded). Set-up
 * (model and sessions) is timed apart, as `bench encode` does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UserError } from '../errors.js';
import { initEngine } from '../tensor/engine.js';
import { randomModel } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import type { LookCount } from '../model/selection.js';
import { benchEncode, type EncodeBench, type EncodeStageTimes } from '../eval/bench.js';
import { parseLooks } from './benchEncode.js';
import { prepareTrunk, useTrunkEngine, type TrunkEngine } from '../engine/trunkEngine.js';
import { SAMPLE_IMAGE } from './demo.js';
import { inputImage } from './inputs.js';

export interface BenchBrowserOptions {
  backend?: string;
  preset: string;
  looks: string;
  image?: string;
  engine: string;
  ep: string;
  chromium?: string;
  warmup?: boolean;
  json?: boolean;
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ENGINES = ['ort', 'tfjs'] as const;
const PROVIDERS = ['auto', 'webgpu', 'wasm'] as const;
const IMAGE_ROUTE = '/__bench/image';

/** The page's `window.ps3Page`, as much as the bench uses (web/src/main.ts). */
interface PageInfo {
  engine: { backend: string };
  ort: { provider: string; threads: number; adapter?: string; failed: Array<{ provider: string; reason: string }> } | null;
  ms: { engine: number; model: number; sessions: number; tokenizer: number };
}
interface PageResult {
  ms: Record<string, number>;
  stages: Array<{ stage: string; ms: number }>;
  tokens: number;
  engine: string;
  backend: string;
}
interface PageWindow {
  ps3Page: { ready: Promise<PageInfo>; encode(o: { imageUrl: string; looks: LookCount; name: string }): Promise<PageResult> };
}

/** What a run of the encode took, stage by stage, the same way on both sides. */
export type SideTimes = EncodeStageTimes;

function oneOf<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UserError(`${option}: "${value}" is not one of ${allowed.join(', ')}`);
  return value as T;
}

/** A dev-time package the bench needs (the page's bundler, the browser driver), with a clear error when it is absent. */
async function devImport<T>(specifier: string, what: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (e) {
    throw new UserError(`bench browser needs ${what} (${(e as Error).message.split('\n')[0]}): install the development dependencies (npm ci)`);
  }
}

function nodeTimes(r: EncodeBench): SideTimes {
  return { ms_total: r.ms_total, ms_decode: r.ms_decode, ms_lowres: r.ms_lowres, ms_select: r.ms_select, ms_highres: r.ms_highres, ms_looks: r.ms_looks };
}

function pageTimes(r: PageResult): SideTimes {
  const ms = (k: string): number => r.ms[k] ?? 0;
  const looks = r.stages.filter((s) => s.stage.startsWith('look ')).map((s) => s.ms);
  return {
    ms_total: ms('total'),
    ms_decode: ms('decode') + ms('squash') + ms('normalise'),
    ms_lowres: ms('low-res'),
    ms_select: ms('selection'),
    ms_highres: looks.reduce((a, c) => a + c, 0),
    ms_looks: looks,
  };
}

/** Start web/serve.mjs on a free loopback port serving `dist` (no model: the page builds random weights). */
function servePage(dist: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'web', 'serve.mjs'), '--port', '0', '--no-build', '--dist', dist, '--random'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, url: out.split('\n')[0]!.trim() });
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => reject(new Error(`the page server exited (${code}): ${err.trim()}`)));
  });
}

const say = (text: string): void => void process.stderr.write(`bench browser: ${text}\n`);

export async function benchBrowserCommand(o: BenchBrowserOptions): Promise<number> {
  // every option checked before the first expensive step
  const config = presetConfig(o.preset);
  const looks = parseLooks(o.looks);
  const engine = oneOf('--engine', o.engine, ENGINES);
  const ep = oneOf('--ep', o.ep, PROVIDERS);
  const image = await inputImage('--image', o.image ?? SAMPLE_IMAGE);
  const chromiumPath = o.chromium ?? process.env['PS3_CHROMIUM'] ?? '/usr/bin/chromium';
  if (!fs.existsSync(chromiumPath)) throw new UserError(`--chromium: no browser at ${chromiumPath} (apt-get install -y chromium, or give --chromium PATH)`);
  const { chromium } = await devImport<typeof import('playwright-core')>('playwright-core', 'playwright-core');
  const { buildPage } = await devImport<{ buildPage(o: { quiet: boolean; outDir: string }): Promise<unknown> }>(pathToFileURL(path.join(ROOT, 'web', 'build.mjs')).href, 'esbuild (web/build.mjs)');
  const nodeEngine: TrunkEngine = engine === 'ort' ? 'onnx' : 'tfjs';

  // Node: set-up (weights, sessions), then the timed encode
  const backend = await initEngine(o);
  useTrunkEngine(nodeEngine);
  say(`Node: ${o.preset} random weights, ${nodeEngine === 'onnx' ? 'ONNX Runtime + ' : ''}TensorFlow.js ${backend}`);
  let t = performance.now();
  const model = randomModel(config, 0);
  await prepareTrunk(nodeEngine, model.weights, config.vision);
  const nodeSetUp = performance.now() - t;
  if (o.warmup) await benchEncode(model, o.preset, image, looks);
  const nodeRun = await benchEncode(model, o.preset, image, looks);
  model.weights.dispose(); // releases the ONNX sessions too: the browser gets the machine to itself

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-bench-browser-'));
  let server: ChildProcess | undefined;
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    say('building the page');
    const dist = path.join(tmp, 'dist');
    await buildPage({ quiet: true, outDir: dist });
    const served = await servePage(dist);
    server = served.child;
    // WebGPU is behind a flag in Chromium on Linux; the page refuses a software adapter on its own
    const gpuArgs = ep === 'wasm' ? ['--disable-gpu'] : ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...gpuArgs],
    });
    const page = await browser.newPage();
    page.setDefaultTimeout(0);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const bytes = fs.readFileSync(image);
    await page.route(`**${IMAGE_ROUTE}`, (route) => route.fulfill({ body: bytes, contentType: 'application/octet-stream' }));
    // TensorFlow.js on WASM on both sides: the comparison is of the same engine split
    const query = new URLSearchParams({ preset: o.preset, seed: '0', engine, ep, backend: 'wasm' });
    await page.goto(`${served.url.replace(/\/?$/, '/')}?${query}`);
    say(`Chromium ${browser.version()}: setting up`);
    await page.waitForFunction(() => (window as unknown as Partial<PageWindow>).ps3Page !== undefined);
    let info: PageInfo;
    try {
      info = await page.evaluate(() => (window as unknown as PageWindow).ps3Page.ready);
    } catch (e) {
      throw new Error(`the page did not start: ${(e as Error).message.split('\n')[0]}${errors.length ? ` (${errors.join('; ')})` : ''}`);
    }
    say(`Chromium: ${info.ort ? `ONNX Runtime ${info.ort.provider} + ` : ''}TensorFlow.js ${info.engine.backend}; encoding`);
    const encode = (): Promise<PageResult> => page.evaluate((a) => (window as unknown as PageWindow).ps3Page.encode({ imageUrl: a.url, looks: a.looks, name: 'bench image' }), { url: IMAGE_ROUTE, looks });
    if (o.warmup) await encode();
    const pageRun = await encode();

    const node = nodeTimes(nodeRun);
    const chrome = pageTimes(pageRun);
    const ratio = (a: number, b: number): number | null => (b > 0 ? a / b : null);
    const pageSetUp = info.ms.model + info.ms.sessions;
    const report = {
      preset: o.preset,
      image,
      resolution: nodeRun.resolution,
      looks,
      tokens: nodeRun.tokens,
      engine,
      warmup: Boolean(o.warmup),
      node: { engine: nodeEngine === 'onnx' ? 'onnxruntime-node' : 'tfjs', tfjs_backend: backend, ms_set_up: nodeSetUp, ...node },
      chromium: {
        version: browser.version(),
        engine: pageRun.engine,
        tfjs_backend: pageRun.backend,
        ort_threads: info.ort?.threads ?? null,
        ort_refused: info.ort?.failed ?? [],
        tokens: pageRun.tokens,
        ms_engines_start: info.ms.engine,
        ms_set_up: pageSetUp,
        ...chrome,
        stages: pageRun.ms,
      },
      // Chromium / Node: above 1 the page is slower
      ratio: {
        total: ratio(chrome.ms_total, node.ms_total),
        decode: ratio(chrome.ms_decode, node.ms_decode),
        lowres: ratio(chrome.ms_lowres, node.ms_lowres),
        select: ratio(chrome.ms_select, node.ms_select),
        highres: ratio(chrome.ms_highres, node.ms_highres),
        encode_without_decode: ratio(chrome.ms_total - chrome.ms_decode, node.ms_total - node.ms_decode),
        set_up: ratio(pageSetUp, nodeSetUp),
      },
    };
    if (pageRun.tokens !== nodeRun.tokens) throw new Error(`the page encoded ${pageRun.tokens} tokens where Node encoded ${nodeRun.tokens}: not the same encode`);
    if (o.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    const f = (x: number): string => x.toFixed(0).padStart(9);
    const r = (x: number | null): string => (x === null ? '-' : x.toFixed(2)).padStart(7);
    const lines = [
      `${o.preset} ${nodeRun.resolution}px, ${String(looks)} look(s), ${nodeRun.tokens} tokens; Node ${report.node.engine} + TensorFlow.js ${backend}, Chromium ${report.chromium.version} ${pageRun.engine} + TensorFlow.js ${pageRun.backend}`,
      `${'stage'.padEnd(16)}${'Node ms'.padStart(9)}${'page ms'.padStart(9)}${'ratio'.padStart(7)}`,
      ...(
        [
          ['decode+resize', node.ms_decode, chrome.ms_decode, report.ratio.decode],
          ['low-res', node.ms_lowres, chrome.ms_lowres, report.ratio.lowres],
          ['selection', node.ms_select, chrome.ms_select, report.ratio.select],
          ['high-res', node.ms_highres, chrome.ms_highres, report.ratio.highres],
          ['total', node.ms_total, chrome.ms_total, report.ratio.total],
          ['set-up', nodeSetUp, pageSetUp, report.ratio.set_up],
        ] as const
      ).map(([name, a, b, k]) => `${name.padEnd(16)}${f(a)}${f(b)}${r(k)}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await browser?.close();
    server?.kill();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
