/**
 * How much memory loading a checkpoint takes: a model folder of a preset's shapes is written
 * with random weights in F32, F16 or BF16, in one file or several shards with an index (written
 * a tensor at a time, so writing holds no full copy either), then loaded in a fresh process
 * whose peak RSS is compared with the weights' float32 size.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import type { PS3Config } from '../io/config.js';
import { numel } from '../io/safetensors.js';
import { paramTable, WRAPPER_KEYS } from '../model/params.js';

export type CheckpointDtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<CheckpointDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Small random values in the dtype's bits (a xorshift stream: fast, and values do not matter here). */
function fillRandom(out: Uint8Array, dtype: CheckpointDtype, seed: number): void {
  let x = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (dtype === 'F32') {
    for (let i = 0; i < out.length; i += 4) view.setFloat32(i, ((next() / 2 ** 32) - 0.5) * 0.04, true);
    return;
  }
  for (let i = 0; i < out.length; i += 2) {
    const r = next();
    // sign, an exponent giving |v| in [2^-10, 2^-5), random mantissa
    const bits = dtype === 'BF16' ? ((r & 0x8000) | ((117 + (r >>> 16) % 5) << 7) | ((r >>> 8) & 0x7f)) : ((r & 0x8000) | ((5 + (r >>> 16) % 5) << 10) | ((r >>> 4) & 0x3ff));
    view.setUint16(i, bits, true);
  }
}

export interface WrittenCheckpoint {
  readonly files: readonly string[];
  readonly bytes: number;
  readonly params: number;
}

/** Writes `dir/config.json` and the weights of `rawConfig`'s shapes (all keys of the released layout). */
export function writeRandomCheckpoint(dir: string, rawConfig: unknown, config: PS3Config, options: { dtype: CheckpointDtype; shards: number }): WrittenCheckpoint {
  const { dtype, shards } = options;
  if (!Number.isInteger(shards) || shards < 1) throw new UserError(`shards must be a positive integer, got ${shards}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(rawConfig, null, 2));
  const table = new Map([...paramTable(config), ...WRAPPER_KEYS]);
  const keys = [...table.keys()].sort();
  const params = keys.reduce((a, k) => a + numel(table.get(k)!), 0);
  // shards of about equal size, keys in order
  const groups: string[][] = [[]];
  let acc = 0;
  for (const k of keys) {
    const n = numel(table.get(k)!);
    if (acc >= ((groups.length) * params) / shards && groups.length < shards) groups.push([]);
    groups[groups.length - 1]!.push(k);
    acc += n;
  }
  const names = groups.length === 1 ? ['model.safetensors'] : groups.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let bytes = 0;
  groups.forEach((group, g) => {
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const k of group) {
      const size = numel(table.get(k)!) * BYTES[dtype];
      header[k] = { dtype, shape: table.get(k), data_offsets: [offset, offset + size] };
      offset += size;
      weightMap[k] = names[g]!;
    }
    let text = JSON.stringify(header);
    text += ' '.repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8);
    const file = path.join(dir, names[g]!);
    const fd = fs.openSync(file, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
      fs.writeSync(fd, len);
      fs.writeSync(fd, Buffer.from(text, 'utf8'));
      // one block of random values, repeated: what is measured does not depend on the values
      const chunk = new Uint8Array(1 << 22);
      fillRandom(chunk, dtype, g + 1);
      for (const k of group) {
        let left = numel(table.get(k)!) * BYTES[dtype];
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          fs.writeSync(fd, chunk, 0, n);
          left -= n;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    bytes += fs.statSync(file).size;
  });
  if (names.length > 1) {
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: params * BYTES[dtype] }, weight_map: weightMap }, null, 2));
  }
  return { files: names, bytes, params };
}

export interface LoadMeasurement {
  readonly backend: string;
  readonly parts: string;
  /** parameters loaded and their float32 size */
  readonly params: number;
  readonly float32_mb: number;
  /** RSS of the child after the engine started, before loading */
  readonly rss_before_mb: number;
  readonly rss_peak_mb: number;
  readonly load_ms: number;
}

/** Loads `dir` in a fresh process and reports its peak RSS. */
export function measureLoad(dir: string, options: { parts: 'all' | 'vision'; backend: string }): Promise<LoadMeasurement> {
  const child = fileURLToPath(new URL('./loadMemoryChild.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, options.parts, options.backend], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => {
      if (code !== 0) return reject(new UserError(`loading ${dir} failed (exit ${code}): ${err.trim().split('\n').at(-1) ?? ''}`));
      resolve(JSON.parse(out) as LoadMeasurement);
    });
  });
}
