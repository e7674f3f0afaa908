/**
 * The safetensors format without files (so the browser can use it): an 8-byte little-endian
 * header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the
 * data. F32, F16 and BF16 are read as float32; I32/I64/U8/BOOL as int32. Every offset and size is
 * checked, and errors name the file and the key.
 */
import { UserError } from '../errors.js';

export type StoredDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8' | 'BOOL' | 'F64';

export interface HeaderEntry {
  readonly dtype: StoredDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface NamedArray {
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

export const BYTES: Record<StoredDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1, BOOL: 1, F64: 8 };

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, c) => a * c, 1);
}

/** Parse and check the header; `dataSize` is the number of bytes after it. */
export function parseHeader(headerText: string, dataSize: number, where: string): Map<string, HeaderEntry> {
  let json: unknown;
  try {
    json = JSON.parse(headerText);
  } catch {
    throw new UserError(`${where}: safetensors header is not valid JSON`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${where}: safetensors header is not a JSON object`);
  }
  const entries = new Map<string, HeaderEntry>();
  const spans: Array<[number, number, string]> = [];
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    if (key === '__metadata__') continue;
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== 'object' || v === null) throw new UserError(`${where}: key "${key}": header entry is not an object`);
    if (typeof v.dtype !== 'string' || !(v.dtype in BYTES)) {
      throw new UserError(`${where}: key "${key}": unsupported dtype ${JSON.stringify(v.dtype)}`);
    }
    const dtype = v.dtype as StoredDtype;
    if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new UserError(`${where}: key "${key}": shape ${JSON.stringify(v.shape)} is not a list of non-negative integers`);
    }
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new UserError(`${where}: key "${key}": data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const shape = v.shape as number[];
    const expected = numel(shape) * BYTES[dtype];
    if (end < begin || end - begin !== expected) {
      throw new UserError(`${where}: key "${key}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${expected}`);
    }
    if (end > dataSize) {
      throw new UserError(`${where}: key "${key}": data_offsets end ${end} is past the end of the data (${dataSize} bytes; file truncated?)`);
    }
    entries.set(key, { dtype, shape, begin, end });
    spans.push([begin, end, key]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) {
      throw new UserError(`${where}: keys "${spans[i - 1]![2]}" and "${spans[i]![2]}" overlap in the data`);
    }
  }
  return entries;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let halfValues: Float32Array | undefined;
/** Every float16 bit pattern's value: decoding is then one lookup per element. */
function halfTable(): Float32Array {
  if (!halfValues) {
    halfValues = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfValues[h] = halfToFloat(h);
  }
  return halfValues;
}

/** The bytes as little-endian 16-bit words (a view when aligned; the hosts are little-endian). */
function halves(bytes: Uint8Array, count: number): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  const copy = new Uint16Array(count);
  new Uint8Array(copy.buffer).set(bytes.subarray(0, count * 2));
  return copy;
}

/** Convert one tensor's raw little-endian bytes to float32 or int32. */
export function decodeTensor(bytes: Uint8Array, dtype: StoredDtype, count: number): Float32Array | Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      // safetensors is little-endian, as are the hosts we run on: a byte copy is the conversion
      const out = new Float32Array(count);
      new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const half = halves(bytes, count);
      const table = halfTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[half[i]!]!;
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32
      const half = halves(bytes, count);
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = half[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    case 'I64': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      return out;
    }
    case 'U8':
    case 'BOOL':
      return Int32Array.from(bytes.subarray(0, count));
  }
}

export function headerLength(first8: Uint8Array, fileSize: number, where: string): number {
  if (fileSize < 8) throw new UserError(`${where}: too short to be a safetensors file (${fileSize} bytes)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw new UserError(`${where}: safetensors header claims ${n} bytes but the file has only ${fileSize - 8} after the length`);
  }
  return Number(n);
}

/** Parse a whole safetensors file held in memory (the browser path). */
export function parseSafetensors(bytes: Uint8Array, where = 'safetensors'): Map<string, NamedArray> {
  const n = headerLength(bytes.subarray(0, 8), bytes.length, where);
  const base = 8 + n;
  const entries = parseHeader(new TextDecoder().decode(bytes.subarray(8, base)), bytes.length - base, where);
  const out = new Map<string, NamedArray>();
  for (const [key, e] of entries) {
    out.set(key, { shape: e.shape, data: decodeTensor(bytes.subarray(base + e.begin, base + e.end), e.dtype, numel(e.shape)) });
  }
  return out;
}
