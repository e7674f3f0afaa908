/**
 * The page: drop or pick an image, type a prompt (when the model has a tokenizer), choose looks,
 * encode, and see the selection heat map over the image with the chosen patches and the time
 * each stage took. Query parameters: `model` (folder URL), `preset` and `seed` (random weights
 * when no model is given; tiny-4k and 0 by default), `engine` (ort | tfjs: what runs the trunk
 * and the selector's convnet and projection), `ep` (ONNX Runtime's provider: auto | webgpu | wasm),
 * `backend` (TensorFlow.js's: auto | webgpu | wasm | cpu), `looks` (initial choice).
 *
 * `window.ps3Page` is the same page driven from code (tests, the console): `ready`, `encode`,
 * `lastResult`, `drawn`, `error`.
 */
import { heatmapOverlay, viridis } from '../../src/io/heatmap.js';
import { PRESETS } from '../../src/model/presets.js';
import type { LookCount } from '../../src/model/selection.js';
import { bitmapToRgb, rgbToImageData } from './decode.js';
import { Session, type EncodeResult, type ModelInfo } from './session.js';

export interface PageEncodeOptions {
  /** an image to fetch, or its bytes; when neither is given, the image last chosen in the page */
  readonly imageUrl?: string;
  readonly imageBytes?: Uint8Array | ArrayBuffer | number[];
  readonly name?: string;
  readonly prompt?: string;
  readonly looks?: LookCount;
}

export interface Ps3PageApi {
  /** resolves once the engine and the model are ready (rejects if they fail) */
  ready: Promise<ModelInfo>;
  info: ModelInfo | null;
  encode(options?: PageEncodeOptions): Promise<EncodeResult>;
  lastResult: EncodeResult | null;
  /** true once a heat map is on the canvas (also `#heatmap[data-drawn="true"]`) */
  drawn: boolean;
  busy: boolean;
  error: string | null;
}

declare global {
  interface Window {
    ps3Page: Ps3PageApi;
  }
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
};

const params = new URLSearchParams(location.search);
// without ?model=, the model the server offers at /model/ (the shipped one), else random weights of ?preset=
let modelUrl = params.get('model') ?? undefined;
const preset = params.get('preset') ?? 'tiny-4k';
const seed = Number(params.get('seed') ?? '0');

const ui = {
  file: $<HTMLInputElement>('file'),
  drop: $<HTMLLabelElement>('drop'),
  fileName: $('file-name'),
  prompt: $<HTMLInputElement>('prompt'),
  promptNote: $('prompt-note'),
  looks: $<HTMLSelectElement>('looks'),
  looksNote: $('looks-note'),
  encode: $<HTMLButtonElement>('encode'),
  status: $('status'),
  timingsBox: $('timings-box'),
  timings: $<HTMLTableElement>('timings'),
  scales: $('scales'),
  summary: $('summary'),
  canvas: $<HTMLCanvasElement>('heatmap'),
  placeholder: $('placeholder'),
  legend: $('legend'),
  legendGradient: $<HTMLCanvasElement>('legend-gradient'),
  chosenSwatch: $('chosen-swatch'),
  chosenText: $('chosen-text'),
  modelSource: $('model-source'),
  engine: $('engine'),
  randomNotice: $('random-notice'),
  presetName: $('preset-name'),
};

let session: Session | null = null;
let chosen: { blob: Blob; name: string } | null = null;
let shown: { result: EncodeResult; bitmap: ImageBitmap; scale: number } | null = null;

function setStatus(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

function refreshButton(): void {
  ui.encode.disabled = session === null || chosen === null || api.busy;
}

function parseLooks(value: string): LookCount {
  return value === 'all' ? 'all' : Number(value);
}

// --- drawing -------------------------------------------------------------------------------

/** Display size: the original aspect ratio, at most the stage's width (in device pixels) and 1600 px. */
function displaySize(width: number, height: number): [number, number] {
  const stageWidth = Math.max(320, ui.canvas.parentElement!.clientWidth) * Math.min(window.devicePixelRatio || 1, 2);
  const maxSide = Math.min(1600, stageWidth);
  const k = Math.min(1, maxSide / width, (maxSide * 0.75) / height);
  return [Math.max(1, Math.round(width * k)), Math.max(1, Math.round(height * k))];
}

function drawPlain(bitmap: ImageBitmap): void {
  const [w, h] = displaySize(bitmap.width, bitmap.height);
  ui.canvas.width = w;
  ui.canvas.height = h;
  const ctx = ui.canvas.getContext('2d')!;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, w, h);
  ui.canvas.dataset['drawn'] = 'false';
  api.drawn = false;
  ui.placeholder.hidden = true;
}

function drawHeatmap(result: EncodeResult, bitmap: ImageBitmap, scaleIndex: number): void {
  const [w, h] = displaySize(bitmap.width, bitmap.height);
  const base = bitmapToRgb(bitmap, w, h);
  ui.canvas.width = w;
  ui.canvas.height = h;
  const ctx = ui.canvas.getContext('2d')!;
  const [gh, gw] = result.grids[scaleIndex]!;
  const picture = heatmapOverlay(base, result.selectionProbs[scaleIndex]!, gh, gw, result.selectionMaps[scaleIndex]!);
  ctx.putImageData(rgbToImageData(picture), 0, 0);
  ui.placeholder.hidden = true;
  ui.legend.hidden = false;
  const outline = h / gh >= 6 && w / gw >= 6;
  ui.chosenSwatch.className = `swatch ${outline ? 'outline' : 'tint'}`;
  ui.chosenText.textContent = outline ? 'chosen patch (outlined)' : 'chosen patch (lightened; cells too small to outline here)';
  ui.canvas.dataset['drawn'] = 'true';
  ui.canvas.dataset['scale'] = String(result.scales[scaleIndex + 1]);
  api.drawn = true;
}

function drawLegend(): void {
  const ctx = ui.legendGradient.getContext('2d')!;
  const { width, height } = ui.legendGradient;
  for (let x = 0; x < width; x++) {
    const [r, g, b] = viridis(x / (width - 1));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x, 0, 1, height);
  }
}

function showScale(scaleIndex: number): void {
  if (!shown) return;
  shown.scale = scaleIndex;
  const { result, bitmap } = shown;
  for (const [i, b] of [...ui.scales.querySelectorAll('button')].entries()) b.setAttribute('aria-selected', String(i === scaleIndex));
  drawHeatmap(result, bitmap, scaleIndex);
  const [gh, gw] = result.grids[scaleIndex]!;
  const n = result.highResTokensPerScale[scaleIndex]!;
  const probs = result.selectionProbs[scaleIndex]!;
  const max = probs.reduce((a, v) => Math.max(a, v), 0);
  ui.summary.textContent = `${result.scales[scaleIndex + 1]} px: ${n} of ${gh * gw} patches chosen (${gh}×${gw} grid) · max probability ${max.toFixed(3)} · ${result.mode}`;
}

function showResult(result: EncodeResult, bitmap: ImageBitmap): void {
  const previous = shown?.scale;
  shown = { result, bitmap, scale: 0 };
  ui.scales.replaceChildren(
    ...result.grids.map((_, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('role', 'tab');
      b.textContent = `${result.scales[i + 1]} px · ${result.highResTokensPerScale[i]}`;
      b.title = `scale ${result.scales[i + 1]} px: ${result.highResTokensPerScale[i]} patches chosen`;
      b.addEventListener('click', () => showScale(i));
      return b;
    }),
  );
  // the top scale first: it is where PS3 spends most of its looks
  showScale(previous !== undefined && previous < result.grids.length ? previous : result.grids.length - 1);
  showTimings(result);
}

function showTimings(result: EncodeResult): void {
  const rows: HTMLTableRowElement[] = [];
  const row = (cells: Array<[string, string]>, cls?: string): void => {
    const tr = document.createElement('tr');
    if (cls) tr.className = cls;
    for (const [text, c] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (c) td.className = c;
      tr.append(td);
    }
    rows.push(tr);
  };
  for (const s of result.stages) row([[s.stage, ''], [s.detail ?? '', 'detail'], [fmtMs(s.ms), 'ms']]);
  row([['total', ''], [`${result.tokens} tokens`, 'detail'], [fmtMs(result.ms['total']!), 'ms']], 'total');
  if (session) {
    const m = session.info.ms;
    row([['set-up (once)', ''], ['', ''], ['', '']], 'sep');
    const engines = `${session.info.ort ? `ONNX Runtime ${session.info.ort.provider} + ` : ''}TensorFlow.js ${session.info.engine.backend}`;
    row([['engines', ''], [engines, 'detail'], [fmtMs(m.engine), 'ms']]);
    row([['model', ''], [session.info.random ? 'random weights' : 'fetch + check', 'detail'], [fmtMs(m.model), 'ms']]);
    if (session.info.ort) row([['sessions', ''], [`ONNX Runtime ${session.info.ort.provider}`, 'detail'], [fmtMs(m.sessions), 'ms']]);
    if (!session.info.promptUnavailable) row([['tokenizer', ''], ['', 'detail'], [fmtMs(m.tokenizer), 'ms']]);
  }
  ui.timings.tBodies[0]!.replaceChildren(...rows);
  ui.timingsBox.hidden = false;
}

// --- actions -------------------------------------------------------------------------------

async function chooseImage(blob: Blob, name: string): Promise<void> {
  chosen = { blob, name };
  ui.fileName.textContent = `${name} (${blob.size >= 1048576 ? `${(blob.size / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(blob.size / 1024))} KB`})`;
  refreshButton();
  try {
    const bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image' });
    if (chosen?.blob === blob) {
      drawPlain(bitmap);
      shown = null;
      ui.scales.replaceChildren();
      ui.summary.textContent = `${bitmap.width}×${bitmap.height}: press Encode`;
      ui.legend.hidden = true;
    }
  } catch (e) {
    setStatus(`${name}: the browser cannot decode this image (${(e as Error).message})`, true);
  }
}

async function runEncode(options: { prompt?: string; looks?: LookCount } = {}): Promise<EncodeResult> {
  if (!session) throw new Error('the model is not ready');
  if (!chosen) throw new Error('no image chosen');
  if (api.busy) throw new Error('already encoding');
  api.busy = true;
  api.error = null;
  refreshButton();
  try {
    const prompt = options.prompt ?? (ui.prompt.disabled ? '' : ui.prompt.value);
    const looks = options.looks ?? parseLooks(ui.looks.value);
    const { result, bitmap } = await session.encode({ blob: chosen.blob, name: chosen.name, prompt, looks }, (s) => setStatus(s));
    api.lastResult = result;
    showResult(result, bitmap);
    setStatus(`done in ${fmtMs(result.ms['total']!)}: ${result.tokens} tokens (${result.lowResTokens} low-res + ${result.highResTokensPerScale.join(' + ')} high-res), ${result.mode}`);
    return result;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    api.error = message;
    setStatus(message, true);
    throw e;
  } finally {
    api.busy = false;
    refreshButton();
  }
}

function toBytes(b: Uint8Array | ArrayBuffer | number[]): Uint8Array {
  return b instanceof Uint8Array ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : Uint8Array.from(b);
}

const api: Ps3PageApi = {
  ready: undefined as unknown as Promise<ModelInfo>,
  info: null,
  lastResult: null,
  drawn: false,
  busy: false,
  error: null,
  async encode(options: PageEncodeOptions = {}): Promise<EncodeResult> {
    await api.ready;
    if (options.imageBytes !== undefined) {
      const bytes = toBytes(options.imageBytes);
      await chooseImage(new Blob([bytes as BlobPart]), options.name ?? 'image');
    } else if (options.imageUrl !== undefined) {
      const res = await fetch(options.imageUrl);
      if (!res.ok) throw new Error(`${options.imageUrl}: HTTP ${res.status}`);
      await chooseImage(await res.blob(), options.name ?? options.imageUrl.split('/').pop() ?? 'image');
    }
    if (options.prompt !== undefined) ui.prompt.value = options.prompt;
    if (options.looks !== undefined) ui.looks.value = String(options.looks);
    return runEncode({ ...(options.prompt !== undefined ? { prompt: options.prompt } : {}), ...(options.looks !== undefined ? { looks: options.looks } : {}) });
  },
};
window.ps3Page = api;

ui.file.addEventListener('change', () => {
  const f = ui.file.files?.[0];
  if (f) void chooseImage(f, f.name);
});
for (const target of [ui.drop, document.body]) {
  target.addEventListener('dragover', (e) => {
    e.preventDefault();
    ui.drop.classList.add('over');
  });
  target.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
  target.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    ui.drop.classList.remove('over');
    const f = e.dataTransfer?.files[0];
    if (f) void chooseImage(f, f.name);
  });
}
ui.encode.addEventListener('click', () => void runEncode().catch(() => {}));
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !ui.encode.disabled) void runEncode().catch(() => {});
});
window.addEventListener('resize', () => {
  if (shown) showScale(shown.scale);
});

// --- start ---------------------------------------------------------------------------------

const initialLooks = params.get('looks');
if (initialLooks !== null && [...ui.looks.options].some((o) => o.value === initialLooks)) ui.looks.value = initialLooks;
ui.prompt.disabled = true;
drawLegend();

api.ready = (async () => {
  if (modelUrl === undefined && !params.has('preset')) {
    const offered = await fetch(new URL('model/config.json', document.baseURI), { method: 'HEAD' }).catch(() => null);
    if (offered?.ok) modelUrl = new URL('model/', document.baseURI).href;
  }
  if (!modelUrl && !PRESETS[preset]) throw new Error(`unknown preset "${preset}" (known: ${Object.keys(PRESETS).join(', ')})`);
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got "${params.get('seed')}"`);
  const s = await Session.create({
    ...(modelUrl ? { model: modelUrl } : {}),
    preset,
    seed,
    ...(params.get('backend') ? { backend: params.get('backend')! } : {}),
    ...(params.get('engine') ? { engine: params.get('engine')! } : {}),
    ...(params.get('ep') ? { ortProvider: params.get('ep')! } : {}),
    wasmPath: new URL('wasm/', document.baseURI).href,
    ortPath: new URL('ort/', document.baseURI).href,
    onStatus: (t) => setStatus(t),
    onProgress: (p) => setStatus(`fetching ${p.file}: ${(p.loaded / 1048576).toFixed(1)}${p.total ? ` of ${(p.total / 1048576).toFixed(1)}` : ''} MB`),
  });
  session = s;
  const info = s.info;
  api.info = info;
  ui.modelSource.textContent = info.source;
  ui.modelSource.title = info.source;
  const e = info.engine;
  const fell = e.failed.length ? ` (${e.failed.map((f) => `${f.backend} unavailable: ${f.reason}`).join('; ')})` : '';
  const o = info.ort;
  const ortText = o ? `ONNX Runtime ${o.provider}${o.provider === 'wasm' ? ` · ${o.threads} thread${o.threads === 1 ? '' : 's'}` : ` · ${o.adapter ?? ''}`} + ` : '';
  ui.engine.textContent = `${ortText}TensorFlow.js ${e.backend}${e.backend === 'wasm' ? ` · ${e.wasmSimd ? 'SIMD' : 'no SIMD'} · ${e.wasmThreads ? 'threads' : 'one thread'}` : ''} · scales ${info.scales.join('/')}`;
  const ortFell = o?.failed.length ? ` (${o.failed.map((f) => `${f.provider} unavailable: ${f.reason}`).join('; ')})` : '';
  ui.engine.title = `${o ? `trunk, convnet and selector projection on ONNX Runtime ${o.provider}${ortFell}; the rest on ` : 'everything on '}TensorFlow.js backend ${e.backend}${fell}`;
  if (info.random) {
    ui.randomNotice.hidden = false;
    ui.presetName.textContent = `${info.preset} (seed ${seed})`;
  }
  if (info.promptUnavailable) {
    ui.prompt.disabled = true;
    ui.prompt.placeholder = 'no tokenizer: bottom-up';
    ui.promptNote.textContent = `Prompt off — ${info.promptUnavailable}.`;
  } else {
    ui.prompt.disabled = false;
    ui.promptNote.textContent = 'Empty: bottom-up (the learned prior picks salient patches).';
  }
  ui.looksNote.textContent = `Each look encodes up to ${info.maxSelectNum} high-res patches.`;
  setStatus(`ready (${fmtMs(info.ms.engine + info.ms.model + info.ms.sessions + info.ms.tokenizer)} to set up): choose an image`);
  refreshButton();
  return info;
})();
api.ready.catch((e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  api.error = message;
  setStatus(message, true);
  ui.modelSource.textContent = 'failed to load';
});
