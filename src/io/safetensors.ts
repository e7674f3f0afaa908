/**
 * safetensors files, read and written by hand (the format itself is in safetensorsFormat.ts): an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the data. F32, F16 and BF16 are
 * read as float32; I32/I64/U8/BOOL as int32. Every offset and size is checked against the file,
 * and errors name the file and the key.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { toHalfBytes } from './half.js';
import { BYTES, decodeTensor, headerLength, numel, parseHeader, type HeaderEntry, type NamedArray } from './safetensorsFormat.js';

export { decodeTensor, numel, parseHeader, parseSafetensors, type HeaderEntry, type NamedArray, type StoredDtype } from './safetensorsFormat.js';

/** Lazily readable safetensors file: the header is parsed up front, tensors are read on demand. */
export interface SafetensorsFile {
  readonly where: string;
  readonly entries: ReadonlyMap<string, HeaderEntry>;
  read(key: string): NamedArray;
  /**
   * Rows `rows` of a float tensor seen as [-1, last dim], read from the file alone (a run of
   * consecutive rows at a time): [rows.length * last dim] float32 values.
   */
  readRows(key: string, rows: Int32Array): Float32Array;
}

/** Open a safetensors file from disk without reading its tensors. */
export function openSafetensors(file: string): SafetensorsFile {
  const where = file;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${where}: cannot open (${code === 'ENOENT' ? 'no such file' : code ?? String(e)})`);
  }
  let size: number;
  let base: number;
  let entries: Map<string, HeaderEntry>;
  try {
    size = fs.fstatSync(fd).size;
    const first8 = Buffer.alloc(8);
    fs.readSync(fd, first8, 0, Math.min(8, size), 0);
    const n = headerLength(first8, size, where);
    const header = Buffer.alloc(n);
    fs.readSync(fd, header, 0, n, 8);
    base = 8 + n;
    entries = parseHeader(header.toString('utf8'), size - base, where);
  } finally {
    fs.closeSync(fd);
  }
  return {
    where,
    entries,
    read(key: string): NamedArray {
      const e = entries.get(key);
      if (!e) throw new UserError(`${where}: no key "${key}"`);
      const bytes = Buffer.alloc(e.end - e.begin);
      const h = fs.openSync(file, 'r');
      try {
        fs.readSync(h, bytes, 0, bytes.length, base + e.begin);
      } finally {
        fs.closeSync(h);
      }
      return { shape: e.shape, data: decodeTensor(bytes, e.dtype, numel(e.shape)) };
    },
    readRows(key: string, rows: Int32Array): Float32Array {
      const e = entries.get(key);
      if (!e) throw new UserError(`${where}: no key "${key}"`);
      const width = e.shape.length ? e.shape[e.shape.length - 1]! : 1;
      const count = width ? numel(e.shape) / width : 0;
      const rowBytes = width * BYTES[e.dtype];
      const out = new Float32Array(rows.length * width);
      const h = fs.openSync(file, 'r');
      try {
        for (let i = 0; i < rows.length; ) {
          const first = rows[i]!;
          let n = 1;
          while (i + n < rows.length && rows[i + n] === first + n) n++;
          if (first < 0 || first + n > count) throw new RangeError(`${where}: key "${key}" has ${count} rows, asked for row ${first < 0 ? first : first + n - 1}`);
          const bytes = Buffer.alloc(n * rowBytes);
          fs.readSync(h, bytes, 0, bytes.length, base + e.begin + first * rowBytes);
          const values = decodeTensor(bytes, e.dtype, n * width);
          if (!(values instanceof Float32Array)) throw new UserError(`${where}: key "${key}" is not a float tensor`);
          out.set(values, i * width);
          i += n;
        }
      } finally {
        fs.closeSync(h);
      }
      return out;
    },
  };
}

/** Read every tensor of a safetensors file. */
export function readSafetensors(file: string): Map<string, NamedArray> {
  const f = openSafetensors(file);
  const out = new Map<string, NamedArray>();
  for (const key of f.entries.keys()) out.set(key, f.read(key));
  return out;
}

/** How float arrays are stored: as they are (F32), or in half precision (F16, half the bytes). */
export type FloatStorage = 'F32' | 'F16';

/** Serialise named arrays (float or int32) to safetensors bytes, keys sorted as the reference writer does. */
export function serializeSafetensors(tensors: ReadonlyMap<string, NamedArray>, metadata?: Record<string, string>, floats: FloatStorage = 'F32'): Buffer {
  const keys = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  let offset = 0;
  for (const key of keys) {
    const t = tensors.get(key)!;
    if (t.data.length !== numel(t.shape)) {
      throw new RangeError(`safetensors: key "${key}" has ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    }
    const half = floats === 'F16' && t.data instanceof Float32Array;
    const bytes = t.data.length * (half ? 2 : 4);
    header[key] = { dtype: t.data instanceof Float32Array ? floats : 'I32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerText = JSON.stringify(header);
  // pad the header so the data starts 8-byte aligned, as the reference writer does
  headerText += ' '.repeat((8 - ((8 + Buffer.byteLength(headerText)) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const key of keys) {
    const t = tensors.get(key)!;
    const raw = floats === 'F16' && t.data instanceof Float32Array ? toHalfBytes(t.data) : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(raw, at);
    at += raw.length;
  }
  return out;
}

/** Write atomically: a temporary file beside the target, then rename, so a crash leaves the old file intact. */
export function writeSafetensors(file: string, tensors: ReadonlyMap<string, NamedArray>, metadata?: Record<string, string>, floats: FloatStorage = 'F32'): void {
  const bytes = serializeSafetensors(tensors, metadata, floats);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}
