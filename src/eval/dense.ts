/**
 * The dense baseline the bench compares PS3 with: ONNX Runtime running a model's whole trunk once
 * over N tokens, no selection (3,289 = 729 low-res + 2,560 high-res tokens: as many as a PS3 look
 * attends to, every one of them a query).
 */
import { Tensor } from 'onnxruntime-node';
import type { OnnxTrunk } from '../engine/onnx/onnxTrunk.js';
import type { VisionConfig } from '../io/config.js';
import { Rng } from '../rng.js';
import { trunkFlops } from '../model/flops.js';

export interface DenseBench {
  readonly tokens: number;
  readonly ms: number;
  /** CPU time of the process (every thread) over the pass */
  readonly cpu_ms: number;
  readonly gflop: number;
  readonly gflops: number;
}

export async function denseTrunk(trunk: OnnxTrunk, cfg: VisionConfig, tokens = 3289): Promise<DenseBench> {
  const D = cfg.trunk.width;
  const rng = new Rng(1);
  const x = new Float32Array(tokens * D);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await trunk.runOrt(new Tensor('float32', x, [1, tokens, D]), null, { lastOnly: true, keepKv: false });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const gflop = trunkFlops(cfg, tokens, tokens) / 1e9;
  return { tokens, ms, cpu_ms: (cpu.user + cpu.system) / 1000, gflop, gflops: gflop / (ms / 1000) };
}
