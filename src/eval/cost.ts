/**
 * The cost report: encode time and tokens against resolution for PS3 (a fixed number of looks,
 * bottom-up), the low-res baseline, AnyRes and S², plus one PS3 pre-training step (batch 2) —
 * all on the same trunk — with analytic GFLOPs beside every measurement, and the dense
 * whole-image ViT (what SigLIP at that resolution would run) as an analytic-only reference.
 *
 * Resolution R: the model's config with its scales cut to those below R and R added on top
 * (`configAtResolution`: [378, 756, 1512, 3780] at R = 7560 becomes [378, 756, 1512, 3780, 7560]),
 * i.e. PS3 built for R, and the input is an R x R image. That is the only way the top scale
 * changes the work: the same model fed a larger image squashes it to its own top scale. Weights
 * are random, of the model's shapes (read from its config.json, or a preset): time and memory do
 * not depend on their values, and a scale the model lacks (7560) has no trained weights anyway.
 * Per-look budgets stay the model's (`max_select_num`), so PS3's tokens per look are constant.
 *
 * Each (resolution, method) runs in a fresh child process (one untimed low-res pass first, then
 * `repeats` timed runs, median): the WASM heap is 4 GiB and a failed allocation kills the WASM
 * module for good, so one method running out of memory must not take the others with it. Jobs
 * are not refused on an estimate: they run, and out of memory is reported when it happens — the
 * engine's allocation failure, or the child dying with Node's own heap failure (the estimate is
 * kept in the row for comparison); a child that dies any other way is an error, not out of memory.
 * Observed: the so400m shapes (PS3-4K-SigLIP) run out already in the low-res pass at 3780, as 2.2 GB of vision weights plus the engine's transposed copies of the matrices
 * leave no room.
 */
import { fork } from 'node:child_process';
import { onTerminate } from '../signals.js';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine, tf } from '../tensor/engine.js';
import { parseConfig, type PS3Config } from '../io/config.js';
import { normalise } from '../io/image.js';
import { UserError } from '../errors.js';
import { Rng } from '../rng.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { renderScene } from '../data/scene/render.js';
import { sceneRng } from '../data/synth.js';
import type { Pixels } from '../model/encoder.js';
import type { PS3Model } from '../model/load.js';
import { visionParams, paramTable, WRAPPER_KEYS } from '../model/params.js';
import { randomWeights } from '../model/weights.js';
import { boxToGtMap } from '../model/selection.js';
import { resolveTrunkEngine, useTrunkEngine } from '../engine/trunkEngine.js';
import { lossAndGrads } from '../train/objective.js';
import { convnetFlops, embedFlops, selectionFlops, trunkFlops } from '../model/flops.js';
import { anyresGrid, encodeWith, estimatePeakBytes, isOutOfMemory, lowResTokenCount, ps3Plan, s2Grids, WASM_HEAP_BYTES, type EncodeMethod } from '../model/baselines.js';
import { median } from './qa/evaluate.js';
import { renderPlot } from './plot.js';

export const COST_METHODS = ['ps3', 'lowres', 'anyres', 's2', 'pretrain'] as const;
export type CostMethod = (typeof COST_METHODS)[number];

export const PRETRAIN_BATCH = 2;

export interface CostJob {
  /** the model's config.json object */
  readonly config: Record<string, unknown>;
  readonly resolution: number;
  readonly method: CostMethod;
  readonly looks: number;
  readonly repeats: number;
  readonly seed: number;
  readonly backend?: string;
}

export type CostStatus = 'ok' | 'out of memory' | 'timeout' | 'error';

export interface CostRow {
  readonly resolution: number;
  readonly method: CostMethod;
  readonly status: CostStatus;
  /** the PS3 scales the model was built with at this resolution */
  readonly scales: number[];
  /** tokens through the trunk per image (per sample for pretrain) */
  readonly tokens: number;
  /** s0 x s0 trunk passes (anyres, s2) */
  readonly tiles: number;
  /** analytic GFLOP per image (per step of PRETRAIN_BATCH samples for pretrain) */
  readonly gflop: number;
  /** median wall time (encode of one image, or one pre-training step), null when it did not run */
  readonly ms: number | null;
  readonly ms_runs: number[];
  /** estimated peak WASM heap beyond the weights */
  readonly estimated_peak_mb: number | null;
  readonly weights_mb: number | null;
  readonly rss_peak_mb: number | null;
  readonly error: string | null;
}

export interface DenseRow {
  readonly resolution: number;
  /** whole image through the ViT: (R / patch)² tokens */
  readonly tokens: number;
  readonly gflop_encode: number;
  /** ≈ 3 x forward, x PRETRAIN_BATCH */
  readonly gflop_pretrain_step: number;
}

export interface CostReport {
  readonly model: string;
  readonly looks: number;
  readonly pretrain_batch: number;
  readonly resolutions: number[];
  readonly rows: CostRow[];
  readonly dense: DenseRow[];
  readonly machine: { cpus: number; backend: string; node: string };
  readonly notes: string[];
}

/** The config of this model built for top scale R: scales below R, then R. */
export function configAtResolution(config: PS3Config, resolution: number): PS3Config {
  const s0 = config.vision.scales[0]!;
  if (!Number.isInteger(resolution) || resolution < 2 * s0 || resolution % s0 !== 0) {
    throw new UserError(`resolution ${resolution} must be a multiple of the low-res scale ${s0}, at least ${2 * s0}`);
  }
  const raw = structuredClone(config.raw) as { vision_config?: Record<string, unknown> };
  const vision = { ...(raw.vision_config ?? {}) };
  vision['ps3_scales'] = [...config.vision.scales.filter((s) => s < resolution), resolution];
  vision['max_select_num_each_scale'] = null;
  return parseConfig({ ...raw, vision_config: vision }, `config at ${resolution}`);
}

/** A model of `config` with random weights: the vision tower only unless `text` (pre-training needs both). */
export function costModel(config: PS3Config, seed: number, text: boolean): PS3Model {
  const table = text ? new Map([...paramTable(config), ...WRAPPER_KEYS]) : new Map([...visionParams(config), ...WRAPPER_KEYS]);
  return { config, weights: randomWeights(table, seed, { logitScale: config.initLogitScale, logitBias: config.initLogitBias }), source: `random weights (seed ${seed})` };
}

/** Analytic tokens, tiles and GFLOP of a method at the config's top scale (input R x R). */
export function costCounts(config: PS3Config, method: CostMethod, looks: number): { tokens: number; tiles: number; gflop: number } {
  const cfg = config.vision;
  const R = cfg.scales[cfg.scales.length - 1]!;
  const n0 = lowResTokenCount(cfg);
  const low = trunkFlops(cfg, n0, n0) + embedFlops(cfg, n0);
  const input = { height: R, width: R };
  const lookFlops = (plan: number[]): number => plan.reduce((a, n) => a + trunkFlops(cfg, n, n0 + n) + embedFlops(cfg, n), 0);
  switch (method) {
    case 'lowres':
      return { tokens: n0, tiles: 0, gflop: low / 1e9 };
    case 'ps3': {
      const plan = ps3Plan(cfg, input, { looks });
      return { tokens: n0 + plan.reduce((a, c) => a + c, 0), tiles: 0, gflop: (low + convnetFlops(cfg) + selectionFlops(cfg) + lookFlops(plan)) / 1e9 };
    }
    case 'anyres': {
      const g = anyresGrid(cfg, R, R, R);
      const tiles = g.rows * g.cols;
      return { tokens: (tiles + 1) * n0, tiles, gflop: ((tiles + 1) * low) / 1e9 };
    }
    case 's2': {
      const tiles = s2Grids(cfg, R, R, R).reduce((a, { grid }) => a + grid.rows * grid.cols, 0);
      return { tokens: tiles * n0, tiles, gflop: (tiles * low) / 1e9 };
    }
    case 'pretrain': {
      // one full-budget look per sample; backward ≈ 2 x forward
      const plan = ps3Plan(cfg, input, { tokens: cfg.maxSelectNum });
      const forward = low + convnetFlops(cfg) + selectionFlops(cfg) + lookFlops(plan);
      return { tokens: n0 + plan.reduce((a, c) => a + c, 0), tiles: 0, gflop: (3 * forward * PRETRAIN_BATCH) / 1e9 };
    }
  }
}

/** The dense whole-image ViT at R: analytic only. */
export function denseCounts(config: PS3Config, resolution: number): DenseRow {
  const cfg = config.vision;
  const n = (resolution / cfg.trunk.patchSize) ** 2;
  const forward = trunkFlops(cfg, n, n) + embedFlops(cfg, n);
  return { resolution, tokens: n, gflop_encode: forward / 1e9, gflop_pretrain_step: (3 * forward * PRETRAIN_BATCH) / 1e9 };
}

/** An R x R held-out synthetic scene, normalised, and a box of one of its regions. */
function costImage(resolution: number): { pixels: Pixels; box: [number, number, number, number] } {
  const scene = renderScene(sceneRng(HELDOUT_SEED_BASE, 0), { width: resolution, height: resolution });
  const data = normalise({ data: scene.rgb, width: resolution, height: resolution }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
  const b = scene.regions[0]?.box ?? [0, 0, resolution / 10, resolution / 10];
  return { pixels: { data, batch: 1, height: resolution, width: resolution }, box: [b[0], b[1], b[2], b[3]] };
}

function rssPeakMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Measure one (resolution, method) in this process. Out of memory is returned as a row, not thrown. */
export async function measureCost(job: CostJob): Promise<CostRow> {
  await initEngine(job.backend ? { backend: job.backend } : {});
  const config = configAtResolution(parseConfig(job.config, 'cost job config'), job.resolution);
  const counts = costCounts(config, job.method, job.looks);
  const base = {
    resolution: job.resolution, method: job.method, scales: [...config.vision.scales], tokens: counts.tokens, tiles: counts.tiles,
    gflop: Math.round(counts.gflop * 1000) / 1000,
  };
  const runs: number[] = [];
  let estimated: number | null = null;
  let weightsMb: number | null = null;
  let model: PS3Model | null = null;
  try {
    model = costModel(config, job.seed, job.method === 'pretrain');
    weightsMb = tf.memory().numBytes / 1024 ** 2;
    const { pixels, box } = costImage(job.resolution);
    // warm-up: kernels and cached transposed weights
    const warm = await encodeWith(model, pixels, 'lowres');
    warm.feature.dispose();
    if (job.method === 'pretrain') {
      const R = job.resolution;
      const B = PRETRAIN_BATCH;
      const batchPixels: Pixels = { data: new Float32Array(B * pixels.data.length), batch: B, height: R, width: R };
      for (let b = 0; b < B; b++) batchPixels.data.set(pixels.data, b * pixels.data.length);
      const gt = new Float32Array(B * R * R);
      const one = boxToGtMap(box, R);
      for (let b = 0; b < B; b++) gt.set(one, b * R * R);
      const rng = new Rng(job.seed);
      const L = config.text.contextLength;
      const text = Int32Array.from({ length: B * L }, () => rng.int(1, config.text.vocabSize - 1));
      for (let r = 0; r < job.repeats; r++) {
        const t0 = performance.now();
        const { grads } = lossAndGrads(model.weights, config, { pixels: batchPixels, text, gtSelectionMaps: gt, isGlobalText: new Float32Array(B) });
        runs.push(performance.now() - t0);
        tf.dispose([...grads.values()]);
      }
    } else {
      const method = job.method as EncodeMethod;
      // each job has its own process: let it run and see whether it fits, rather than trust the estimate
      const options = { ...(method === 'ps3' ? { looks: job.looks } : {}), memoryCheck: false };
      estimated = estimatePeakBytes(config.vision, method, pixels, options);
      for (let r = 0; r < job.repeats; r++) {
        const enc = await encodeWith(model, pixels, method, options);
        runs.push(enc.ms);
        enc.feature.dispose();
      }
    }
    model.weights.dispose();
    return { ...base, status: 'ok', ms: median(runs), ms_runs: runs, estimated_peak_mb: estimated === null ? null : estimated / 1024 ** 2, weights_mb: weightsMb, rss_peak_mb: rssPeakMb(), error: null };
  } catch (e) {
    const oom = isOutOfMemory(e);
    if (!oom) throw e;
    return {
      ...base, status: 'out of memory', ms: null, ms_runs: runs, estimated_peak_mb: estimated === null ? null : estimated / 1024 ** 2, weights_mb: weightsMb,
      rss_peak_mb: rssPeakMb(), error: e instanceof Error ? e.message.split('\n')[0]! : String(e),
    };
  }
}

/** A row for a job that produced none (the child died, or ran out of time). */
function failedRow(job: CostJob, status: CostStatus, error: string): CostRow {
  const config = configAtResolution(parseConfig(job.config, 'cost job config'), job.resolution);
  const counts = costCounts(config, job.method, job.looks);
  return {
    resolution: job.resolution, method: job.method, status, scales: [...config.vision.scales], tokens: counts.tokens, tiles: counts.tiles,
    gflop: Math.round(counts.gflop * 1000) / 1000, ms: null, ms_runs: [], estimated_peak_mb: null, weights_mb: null, rss_peak_mb: null, error,
  };
}

/** Run one job in a fresh Node process (this file as its entry). */
export function measureCostIsolated(job: CostJob, timeoutS: number): Promise<CostRow> {
  return new Promise((resolve) => {
    const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, PS3_COST_WORKER: '1' }, silent: true });
    let row: CostRow | null = null;
    let stderr = '';
    let timedOut = false;
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.stdout?.resume();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('message', (m: { row?: CostRow; error?: string }) => {
      if (m.row) row = m.row;
      else if (m.error) row = failedRow(job, 'error', m.error);
    });
    // ending this process ends the measurement's too
    const forget = onTerminate(() => child.kill('SIGKILL'));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      forget();
      if (row) return resolve(row);
      if (timedOut) return resolve(failedRow(job, 'timeout', `ran past ${timeoutS} s`));
      // only Node's own report of a failed allocation names out of memory; a child killed by a
      // signal (the system's out-of-memory killer among other causes) is an error that says so
      const heap = /JavaScript heap out of memory|Array buffer allocation failed/i.test(stderr);
      const lastLine = stderr.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
      const how = signal ? `killed by ${signal}${signal === 'SIGKILL' ? ' (the system may have run out of memory)' : ''}` : `exit ${code}`;
      resolve(failedRow(job, heap ? 'out of memory' : 'error', `process ended (${how})${lastLine ? `: ${lastLine}` : ''}`));
    });
    child.send(job);
  });
}

export interface CostReportOptions {
  readonly config: PS3Config;
  /** what to call the model in the report */
  readonly model: string;
  readonly resolutions: readonly number[];
  readonly looks?: number;
  readonly methods?: readonly CostMethod[];
  readonly repeats?: number;
  readonly seed?: number;
  /** a fresh process per measurement (default true; tests run in-process) */
  readonly isolate?: boolean;
  readonly timeoutS?: number;
  readonly backend?: string;
  readonly onRow?: (row: CostRow, done: number, total: number) => void;
}

/** Every (resolution, method) measurement, smallest resolution first. */
export async function costReport(options: CostReportOptions): Promise<CostReport> {
  const looks = options.looks ?? 1;
  const methods = options.methods ?? COST_METHODS;
  const resolutions = [...options.resolutions].sort((a, b) => a - b);
  resolutions.forEach((r) => configAtResolution(options.config, r)); // refuse bad ones before running any
  const rows: CostRow[] = [];
  const total = resolutions.length * methods.length;
  for (const resolution of resolutions) {
    for (const method of methods) {
      const job: CostJob = { config: options.config.raw, resolution, method, looks, repeats: options.repeats ?? 1, seed: options.seed ?? 0, ...(options.backend ? { backend: options.backend } : {}) };
      const row = options.isolate === false ? await measureCost(job) : await measureCostIsolated(job, options.timeoutS ?? 900);
      rows.push(row);
      options.onRow?.(row, rows.length, total);
    }
  }
  return {
    model: options.model,
    looks,
    pretrain_batch: PRETRAIN_BATCH,
    resolutions,
    rows,
    dense: resolutions.map((r) => denseCounts(options.config, r)),
    machine: { cpus: os.cpus().length, backend: options.backend ?? process.env['PS3_BACKEND'] ?? 'wasm', node: process.version },
    notes: [
      `model built for each resolution R with scales [..., R]; random weights of the model's shapes (cost does not depend on weight values)`,
      `ps3: ${looks} look(s), bottom-up; lowres: ${lowResTokenCount(options.config.vision)} tokens; anyres: ceil(R/s0)^2 tiles + a global view; s2: (s/s0)^2 tiles at every scale s <= R`,
      `pretrain: one lossAndGrads step (SigLIP + box losses, all weights) at batch ${PRETRAIN_BATCH}; gflop = 3 x forward (analytic)`,
      'ms: median wall time in a fresh process after one untimed low-res pass; encode times start from normalised pixels at R x R',
      `dense: the whole R x R image through the ViT, analytic only; WASM heap limit ${WASM_HEAP_BYTES / 1024 ** 3} GiB`,
    ],
  };
}

/** A plain-text table of the report. */
export function formatCostTable(report: CostReport): string {
  const header = ['resolution', 'method', 'status', 'tokens', 'tiles', 'GFLOP', 'ms'];
  const rows = report.rows.map((r) => [String(r.resolution), r.method, r.status, String(r.tokens), String(r.tiles), r.gflop.toFixed(1), r.ms === null ? '—' : r.ms.toFixed(0)]);
  for (const d of report.dense) rows.push([String(d.resolution), 'dense (analytic)', '—', String(d.tokens), '0', d.gflop_encode.toFixed(1), '—']);
  rows.sort((a, b) => Number(a[0]) - Number(b[0]));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const SERIES_NAMES: Readonly<Record<CostMethod, (looks: number) => string>> = {
  ps3: (looks) => `PS3 (${looks} look${looks === 1 ? '' : 's'})`,
  lowres: () => 'low-res only',
  anyres: () => 'AnyRes',
  s2: () => 'S²',
  pretrain: () => `PS3 pre-training step (batch ${PRETRAIN_BATCH})`,
};

/** cost-ms.png (measured time), cost-tokens.png and cost-gflop.png (with the dense ViT) in `dir`; returns the paths. */
export async function writeCostPlots(report: CostReport, dir: string): Promise<string[]> {
  const methods = [...new Set(report.rows.map((r) => r.method))];
  const series = (value: (r: CostRow) => number | null, only?: (m: CostMethod) => boolean) =>
    methods.filter((m) => !only || only(m)).map((m) => ({
      name: SERIES_NAMES[m](report.looks),
      // a point that was not measured says why: out of memory, timeout, error
      points: report.rows.filter((r) => r.method === m).map((r) => ({ x: r.resolution, y: value(r), ...(value(r) === null ? { label: r.status } : {}) })),
    }));
  const files = ['cost-ms.png', 'cost-tokens.png', 'cost-gflop.png'].map((f) => path.join(dir, f));
  await renderPlot({
    title: `Time vs resolution — ${report.model}`, xLabel: 'resolution (px)', yLabel: 'ms (median)', xTicks: report.resolutions, logX: true, logY: true,
    series: series((r) => (r.status === 'ok' ? r.ms : null)),
  }, files[0]);
  await renderPlot({
    title: `Tokens through the trunk vs resolution — ${report.model}`, xLabel: 'resolution (px)', yLabel: 'tokens per image', xTicks: report.resolutions, logX: true, logY: true,
    series: [...series((r) => r.tokens, (m) => m !== 'pretrain'), { name: 'dense ViT (whole image)', dashed: true, points: report.dense.map((d) => ({ x: d.resolution, y: d.tokens })) }],
  }, files[1]);
  await renderPlot({
    title: `Analytic GFLOP vs resolution — ${report.model}`, xLabel: 'resolution (px)', yLabel: 'GFLOP', xTicks: report.resolutions, logX: true, logY: true,
    series: [
      ...series((r) => r.gflop),
      { name: 'dense ViT encode', dashed: true, points: report.dense.map((d) => ({ x: d.resolution, y: d.gflop_encode })) },
      { name: `dense pre-training step (batch ${PRETRAIN_BATCH})`, dashed: true, points: report.dense.map((d) => ({ x: d.resolution, y: d.gflop_pretrain_step })) },
    ],
  }, files[2]);
  return files;
}

// The child-process entry: measure the one job the parent sends, send the row back, exit.
if (process.env['PS3_COST_WORKER'] === '1' && typeof process.send === 'function' && process.argv[1] === fileURLToPath(import.meta.url)) {
  // a parent that dies (killed, crashed) takes its measurement with it
  process.once('disconnect', () => process.exit(1));
  process.once('message', (job: CostJob) => {
    // the same engine as the parent's passes: $PS3_TRUNK's, else the fast one
    useTrunkEngine(resolveTrunkEngine());
    measureCost(job)
      .then((row) => process.send!({ row }, () => process.exit(0)))
      .catch((e: unknown) => process.send!({ error: e instanceof Error ? e.message.split('\n')[0] : String(e) }, () => process.exit(1)));
  });
}
