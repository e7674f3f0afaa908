/**
 * `ps3 bench encode`: one timed encode (decode to outputs) of one image, printed as one JSON line
 * (`--json`) or a short summary: ms per stage, GFLOP/s, tokens, peak RSS, the weights' size; with
 * `--dense`, ONNX Runtime's dense pass of the same trunk over 3,289 tokens in the same process and
 * the ratio to it; and S²'s tile count and FLOPs at this preset's scales for comparison.
 */
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import type { PS3Config } from '../io/config.js';
import { loadModel, readConfigFile, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { visionParams, type ParamTable } from '../model/params.js';
import { randomWeights } from '../model/weights.js';
import { readByRows } from '../model/vit.js';
import type { LookCount } from '../model/selection.js';
import type { OnnxTrunk } from '../engine/onnx/onnxTrunk.js';
import { benchEncode, hugePagesRequested, rssPeakMb, type EncodeBench } from '../eval/bench.js';
import type { DenseBench } from '../eval/dense.js';
import { s2Flops } from '../model/flops.js';
import { engineHolds, prepareTrunk, releaseTrunk, resolveTrunkEngine, useTrunkEngine, type TrunkEngine } from '../engine/trunkEngine.js';
import { checkHeapFits } from '../engine/capacity.js';
import { SAMPLE_IMAGE } from './demo.js';
import { inputImage, intOption, resolveModelSpec } from './inputs.js';
import { warmSquashThread } from '../io/squashThread.js';

export interface BenchEncodeOptions {
  backend?: string;
  trunk?: string;
  preset?: string;
  model?: string;
  randomInit?: boolean;
  image?: string;
  looks: string;
  json?: boolean;
  dense?: boolean;
  warmup?: boolean;
  repeats?: string;
}

const BLOCK_KEY = /^vision_model\.trunk\.blocks\./;

function tableMb(table: ParamTable, only?: RegExp): number {
  let n = 0;
  for (const [k, shape] of table) if (!only || only.test(k)) n += shape.reduce((a, c) => a * c, 1);
  return (n * 4) / 2 ** 20;
}

function randomOf(config: PS3Config, table: ParamTable): PS3Model {
  const weights = randomWeights(table, 0, { logitScale: config.initLogitScale, logitBias: config.initLogitBias });
  return { config, weights, source: 'random weights (seed 0)' };
}

/** The model's ONNX trunk: the one `prepareTrunk` and every default pass use (a second would hold the weights twice). */
async function openOnnx(model: PS3Model): Promise<OnnxTrunk> {
  const { onnxTrunkOf } = await import('../engine/onnx/perModel.js');
  return onnxTrunkOf(model.weights, model.config.vision.trunk);
}

/**
 * The model (vision tower only: the bench never runs the text tower, so400m's alone is ~1.8 GB)
 * and, when ONNX Runtime is used, its trunk's sessions. The blocks go from their source (the
 * checkpoint file, or the random generator) straight into ONNX Runtime's sessions, one group at a
 * time, and so do the selector's convnet and feature projection into theirs; TensorFlow.js makes
 * tensors of the rest only (all of it when it runs the trunk), the matrices it multiplies by held
 * transposed only, so no weight is held twice. Set-up ends with every weight the encode uses in
 * place, and with ONNX Runtime the selector's sessions made, and the processor's second thread
 * started.
 */
async function setUp(o: BenchEncodeOptions, engine: TrunkEngine, backend: string): Promise<{ model: PS3Model; name: string; table: ParamTable; onnx: OnnxTrunk | null }> {
  let model: PS3Model;
  let name: string;
  warmSquashThread();
  if (o.model) {
    const folder = (await resolveModelSpec(o.model)).folder;
    checkHeapFits(readConfigFile(path.join(folder, 'config.json')), engine, backend, o.model);
    model = loadModel(folder, 'vision');
    name = o.model;
  } else {
    if (!o.preset || !o.randomInit) throw new UserError('bench encode: give --model DIR, or --preset NAME with --random-init');
    const config = presetConfig(o.preset);
    checkHeapFits(config, engine, backend, o.preset);
    model = randomOf(config, visionParams(config));
    name = o.preset;
  }
  const onnx = engine === 'onnx' || o.dense ? await openOnnx(model) : null;
  await prepareTrunk(engine, model.weights, model.config.vision);
  // the rest as tensors, but not what ONNX Runtime holds, the matrices held transposed, nor what a
  // look reads by rows from the checkpoint file
  const w = model.weights;
  for (const key of w.keys()) if (!engineHolds(engine, key) && !w.hasTransposed(key) && !(readByRows(key) && w.readsRows(key))) w.get(key);
  return { model, name, table: visionParams(model.config), onnx };
}

/** `--looks N|all` of the encode benches. */
export function parseLooks(value: string): LookCount {
  if (value === 'all') return 'all';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--looks: "${value}" must be a positive integer or "all"`);
  return n;
}

export async function benchEncodeCommand(o: BenchEncodeOptions): Promise<number> {
  const engine = resolveTrunkEngine(o.trunk);
  useTrunkEngine(engine); // the selector's convnet and any pass that names no engine follow --trunk
  const looks = parseLooks(o.looks);
  const repeat = intOption('repeats', o.repeats, { min: 1 }) ?? 1;
  if (o.model && o.preset) throw new UserError('bench encode: give --model DIR or --preset NAME with --random-init, not both');
  if (o.preset) presetConfig(o.preset);
  const image = await inputImage('--image', o.image ?? SAMPLE_IMAGE);
  const backend = await initEngine(o);
  // ONNX sessions are made once per model, before the clock starts; their cost is reported apart
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const { model, name, table, onnx } = await setUp(o, engine, backend);
  const msSetUp = performance.now() - t0;
  const cpuSetUp = process.cpuUsage(cpu0);
  const rssSetUp = rssPeakMb();
  const cfg = model.config.vision;
  const trunk = engine === 'onnx' ? onnx!.run : null;
  if (o.warmup) await benchEncode(model, name, image, looks, trunk);
  // --repeats N: the encode and the dense pass N times each, alternating, and the medians (the
  // report's stages are the median encode's)
  const runs: EncodeBench[] = [];
  const denseRuns: DenseBench[] = [];
  const denseTrunk = onnx && o.dense ? (await import('../eval/dense.js')).denseTrunk : null;
  for (let i = 0; i < repeat; i++) {
    runs.push(await benchEncode(model, name, image, looks, trunk));
    if (denseTrunk) denseRuns.push(await denseTrunk(onnx!, cfg));
  }
  const median = <T>(xs: T[], ms: (x: T) => number): T => [...xs].sort((a, b) => ms(a) - ms(b))[(xs.length - 1) >> 1]!;
  const r = median(runs, (x) => x.ms_total);
  const dense = denseRuns.length ? median(denseRuns, (x) => x.ms) : null;
  if (onnx) await releaseTrunk('onnx', model.weights);
  model.weights.dispose();
  const s2 = s2Flops(cfg);
  const msTile = r.ms_lowres; // one 729-token pass of the whole trunk: what each S² tile costs
  const report = {
    ...r,
    trunk: engine,
    backend,
    image,
    warmup: Boolean(o.warmup),
    repeats: repeat,
    ...(repeat > 1 ? { runs_stages_ms: runs.map((x) => Object.fromEntries(Object.entries(x.stages).map(([k, v]) => [k, Math.round(v.ms)]))), runs_ms_total: runs.map((x) => x.ms_total), runs_cpu_s: runs.map((x) => x.cpu_s), ...(dense ? { dense_runs_ms: denseRuns.map((x) => x.ms) } : {}) } : {}),
    ms_set_up: msSetUp,
    // CPU seconds of the set-up (all threads): steadier than its wall time on a busy machine
    cpu_s_set_up: (cpuSetUp.user + cpuSetUp.system) / 1e6,
    rss_peak_after_set_up_mb: rssSetUp,
    huge_pages: hugePagesRequested(),
    weights_mb: tableMb(table),
    trunk_weights_mb: tableMb(table, BLOCK_KEY),
    ...(dense ? { dense, ratio_to_dense: r.ms_total / dense.ms, cpu_ratio_to_dense: (r.cpu_s * 1000) / dense.cpu_ms } : {}),
    s2: { tiles: s2.tiles, gflop: s2.flops / 1e9, ms_est: s2.tiles * msTile },
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  }
  const f = (x: number): string => x.toFixed(0);
  process.stdout.write(
    `${name} (${engine} trunk, ${backend}) ${r.resolution}px, ${String(looks)} look(s), ${r.tokens} tokens: total ${f(r.ms_total)} ms = decode ${f(r.ms_decode)} + low-res ${f(r.ms_lowres)} + select ${f(r.ms_select)} + high-res ${f(r.ms_highres)} (+ assembly); ` +
      `${r.gflops.total.toFixed(1)} GFLOP/s; peak RSS ${f(r.rss_peak_mb)} MB (vision weights ${f(report.weights_mb)} MB)\n`,
  );
  if (dense) process.stdout.write(`dense ONNX trunk over ${dense.tokens} tokens: ${f(dense.ms)} ms (${dense.gflops.toFixed(1)} GFLOP/s); this encode / dense = ${(r.ms_total / dense.ms).toFixed(2)}\n`);
  process.stdout.write(`S² at these scales: ${s2.tiles} tiles, ${(s2.flops / 1e9).toFixed(0)} GFLOP, ~${f(s2.tiles * msTile)} ms at this low-res pass's speed\n`);
  return 0;
}
