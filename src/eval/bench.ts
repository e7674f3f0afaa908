/**
 * Encoder benchmark: time per stage (decode and squash, low-res, selection, each look), effective
 * GFLOP/s against an analytic FLOP count, and peak memory — with the engine's own matmul
 * throughput at ViT shape measured in the same process as the baseline the ratios refer to.
 */
import { tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { encodeImage, STAGE_PARTS, type StageTimings } from '../model/encoder.js';
import type { PS3Model } from '../model/load.js';
import type { LookCount } from '../model/selection.js';
import type { TrunkRunner } from '../model/vit.js';
import { convnetFlops, embedFlops, selectionFlops, trunkFlops } from '../model/flops.js';

/** An encode's wall time by stage. */
export interface EncodeStageTimes {
  readonly ms_total: number;
  /** decode, resize to the top scale, normalise */
  readonly ms_decode: number;
  readonly ms_lowres: number;
  readonly ms_select: number;
  readonly ms_highres: number;
  readonly ms_looks: number[];
}

export interface EncodeBench extends EncodeStageTimes {
  readonly preset: string;
  readonly resolution: number;
  readonly looks: LookCount;
  readonly tokens: number;
  readonly gflop: { lowres: number; select: number; highres: number };
  readonly gflops: { lowres: number; select: number; highres: number; total: number };
  readonly rss_peak_mb: number;
  /** CPU seconds (all threads) the process spent from decode to outputs: less sensitive than wall time to other processes on the cores */
  readonly cpu_s: number;
  /** every part of the encode: wall and CPU ms, and its share of the total (wall and CPU) */
  readonly stages: Record<string, StageShare>;
}

export interface StageShare {
  readonly ms: number;
  readonly cpu_ms: number;
  readonly share: number;
  readonly cpu_share: number;
}

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

/** Plain matmul throughput of the engine at a ViT-B MLP shape (the baseline of the ratios). */
export async function matmulGflops(m = 2560, k = 768, n = 3072, reps = 3): Promise<number> {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  const warm = tf.matMul(a, b);
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  }
  const s = (performance.now() - t0) / 1000 / reps;
  tf.dispose([a, b]);
  return (2 * m * k * n) / s / 1e9;
}

/**
 * Whether this process asked glibc for transparent huge pages (`GLIBC_TUNABLES` with
 * glibc.malloc.hugetlb, as the `ps3` command sets it): fresh 4 KiB pages of large arrays fault one
 * by one, which on some virtual machines is most of a set-up's time, so reports say which way
 * they were measured.
 */
export function hugePagesRequested(): boolean {
  return process.platform === 'linux' && /(^|:)glibc\.malloc\.hugetlb=[12](:|$)/.test(process.env['GLIBC_TUNABLES'] ?? '');
}

export function rssPeakMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** One timed encode of `image` (squashed to the model's top scale), bottom-up, with `looks` looks; `trunk` as in `EncodeOptions`. */
export async function benchEncode(model: PS3Model, preset: string, image: string, looks: LookCount, trunk?: TrunkRunner | null): Promise<EncodeBench> {
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const pv = await loadPixelValues(image, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  const msDecode = performance.now() - t0;
  const cpuDecode = cpuMs(process.cpuUsage(cpu0));
  const timings: StageTimings = {};
  const t1 = performance.now();
  const out = await encodeImage(model.weights, model.config, { data: pv.pixels, batch: 1, height: S, width: S }, { numLookClose: looks, outputHiddenStates: false, timings, trunk });
  await out.lastHiddenState.data();
  const msEncode = performance.now() - t1;
  const cpu = process.cpuUsage(cpu0);
  const tokens = out.lastHiddenState.shape[1]!;
  tf.dispose([out.lastHiddenState, ...out.selectionProbs, ...out.bottomupSelectionProbs, out.pooledOutput]);
  const n0 = (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
  const lookList = timings.looks ?? [];
  const gflop = {
    lowres: (trunkFlops(cfg, n0, n0) + embedFlops(cfg, n0)) / 1e9,
    select: (convnetFlops(cfg) + selectionFlops(cfg)) / 1e9,
    highres: lookList.reduce((a, l) => a + trunkFlops(cfg, l.tokens, n0 + l.tokens) + embedFlops(cfg, l.tokens), 0) / 1e9,
  };
  const msHigh = lookList.reduce((a, l) => a + l.ms, 0);
  const msLow = timings.lowRes ?? 0;
  const msSelect = timings.selection ?? 0;
  const msTotal = msDecode + msEncode;
  const cpuTotal = cpuMs(cpu);
  const stages: Record<string, StageShare> = {};
  const share = (ms: number, cpuMsPart: number): StageShare => ({ ms, cpu_ms: cpuMsPart, share: ms / msTotal, cpu_share: cpuMsPart / cpuTotal });
  stages['decode'] = share(msDecode, cpuDecode);
  for (const part of STAGE_PARTS) {
    const t = timings.parts?.[part];
    if (t) stages[part] = share(t.ms, t.cpuMs);
  }
  const counted = Object.values(stages).reduce((a, t) => [a[0]! + t.ms, a[1]! + t.cpu_ms], [0, 0]);
  stages['other'] = share(Math.max(0, msTotal - counted[0]!), Math.max(0, cpuTotal - counted[1]!));
  return {
    preset,
    resolution: S,
    looks,
    tokens,
    ms_total: msTotal,
    ms_decode: msDecode,
    ms_lowres: msLow,
    ms_select: msSelect,
    ms_highres: msHigh,
    ms_looks: lookList.map((l) => l.ms),
    gflop,
    gflops: {
      lowres: gflop.lowres / (msLow / 1000),
      select: gflop.select / (msSelect / 1000),
      highres: msHigh ? gflop.highres / (msHigh / 1000) : 0,
      total: (gflop.lowres + gflop.select + gflop.highres) / (msEncode / 1000),
    },
    rss_peak_mb: rssPeakMb(),
    cpu_s: cpuTotal / 1000,
    stages,
  };
}
