/**
 * Tests for src/io/safetensors.ts: round trips through the writer, hand-built F16/BF16 bytes
 * against known values, and every way a file can be malformed (each a UserError naming the file
 * and, where one is involved, the key).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isUserError } from '../../src/errors.js';
import {
  decodeTensor,
  openSafetensors,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type NamedArray,
} from '../../src/io/safetensors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-safetensors-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A safetensors file from a header object and raw data bytes, exactly as given (no checks). */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText = JSON.stringify(header)): Buffer {
  const h = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8 + h.length);
  return out;
}

function u16le(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return new Uint8Array(b);
}

function writeTmp(name: string, bytes: Uint8Array): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** The header JSON of serialized bytes, and the offset where the data starts. */
function headerOf(bytes: Buffer): { json: Record<string, unknown>; text: string; dataStart: number } {
  const n = Number(bytes.readBigUInt64LE(0));
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  return { json: JSON.parse(text) as Record<string, unknown>, text, dataStart: 8 + n };
}

/** Assert `fn` throws a UserError whose message contains every one of `parts`. */
function throwsUserError(fn: () => unknown, parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isUserError(e), `expected a UserError, got ${String(e)}`);
    for (const p of parts) assert.ok((e as Error).message.includes(p), `message ${JSON.stringify((e as Error).message)} should mention ${JSON.stringify(p)}`);
    return true;
  });
}

/** Both readers (from disk and from memory) refuse `bytes`, naming `parts` (plus the file name). */
function bothRefuse(name: string, bytes: Uint8Array, parts: string[]): void {
  const file = writeTmp(name, bytes);
  throwsUserError(() => openSafetensors(file), [file, ...parts]);
  throwsUserError(() => readSafetensors(file), [file, ...parts]);
  throwsUserError(() => parseSafetensors(bytes, `mem:${name}`), [`mem:${name}`, ...parts]);
}

const sample = (): Map<string, NamedArray> =>
  new Map<string, NamedArray>([
    // deliberately not in sorted order
    ['zeta.weight', { shape: [2, 3], data: Float32Array.from([1.5, -2, 3.25, 0, -0, 1e-30]) }],
    ['alpha', { shape: [4], data: Int32Array.from([0, -1, 2147483647, -2147483648]) }],
    ['mid.scalar', { shape: [], data: Float32Array.from([Math.PI]) }],
    ['b', { shape: [1, 3], data: Float32Array.from([Infinity, -Infinity, NaN]) }],
  ]);

// ---------------------------------------------------------------------------------------------
// Round trips

test('round trip: F32 and I32 tensors come back with their shapes, dtypes and exact values', () => {
  const file = path.join(tmp, 'roundtrip.safetensors');
  const input = sample();
  writeSafetensors(file, input);
  const back = readSafetensors(file);
  assert.deepEqual([...back.keys()].sort(), [...input.keys()].sort());
  for (const [key, t] of input) {
    const got = back.get(key)!;
    assert.deepEqual([...got.shape], [...t.shape], key);
    assert.equal(got.data.constructor, t.data.constructor, `${key}: dtype`);
    // Object.is distinguishes -0 and treats NaN as equal to itself
    assert.equal(got.data.length, t.data.length);
    for (let i = 0; i < t.data.length; i++) assert.ok(Object.is(got.data[i], t.data[i]), `${key}[${i}]: ${got.data[i]} vs ${t.data[i]}`);
  }
  // the in-memory parser reads the same bytes the same way
  const mem = parseSafetensors(fs.readFileSync(file));
  assert.deepEqual(Array.from(mem.get('alpha')!.data), [0, -1, 2147483647, -2147483648]);
  assert.deepEqual(Array.from(mem.get('zeta.weight')!.data), Array.from(Float32Array.from([1.5, -2, 3.25, 0, -0, 1e-30])));
});

test('round trip: the header records F32/I32 dtypes, sorted keys, contiguous offsets and metadata', () => {
  const bytes = serializeSafetensors(sample(), { format: 'pt', note: 'hello' });
  const { json } = headerOf(bytes);
  assert.deepEqual(json['__metadata__'], { format: 'pt', note: 'hello' });
  const keys = Object.keys(json).filter((k) => k !== '__metadata__');
  assert.deepEqual(keys, ['alpha', 'b', 'mid.scalar', 'zeta.weight']);
  const entries = keys.map((k) => json[k] as { dtype: string; shape: number[]; data_offsets: [number, number] });
  assert.deepEqual(entries.map((e) => e.dtype), ['I32', 'F32', 'F32', 'F32']);
  assert.deepEqual(entries.map((e) => e.shape), [[4], [1, 3], [], [2, 3]]);
  // data laid out in key order, back to back, ending at the end of the file
  assert.deepEqual(entries.map((e) => e.data_offsets), [[0, 16], [16, 28], [28, 32], [32, 56]]);
  assert.equal(bytes.length, headerOf(bytes).dataStart + 56);
  // metadata does not show up as a tensor
  const back = parseSafetensors(bytes);
  assert.ok(!back.has('__metadata__'));
  assert.equal(back.size, 4);
});

test('the data starts 8-byte aligned whatever the header length (padded with spaces)', () => {
  for (let len = 1; len <= 12; len++) {
    const key = 'k'.repeat(len);
    const bytes = serializeSafetensors(new Map([[key, { shape: [1], data: Float32Array.from([len]) }]]));
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0, `header of key length ${len} is ${n} bytes`);
    const { text } = headerOf(bytes);
    assert.match(text, /^\{.*\} *$/);
    assert.equal(parseSafetensors(bytes).get(key)!.data[0], len);
  }
});

test('writeSafetensors replaces an existing file atomically and leaves no temporary file behind', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, new Map([['a', { shape: [1], data: Float32Array.from([1]) }]]));
  writeSafetensors(file, new Map([['a', { shape: [2], data: Float32Array.from([2, 3]) }]]), { format: 'pt' });
  assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
  assert.deepEqual(Array.from(readSafetensors(file).get('a')!.data), [2, 3]);
});

test('openSafetensors reads lazily: only the requested key, and an unknown key is a UserError naming it', () => {
  const file = path.join(tmp, 'lazy.safetensors');
  writeSafetensors(file, sample());
  const f = openSafetensors(file);
  assert.deepEqual([...f.entries.keys()], ['alpha', 'b', 'mid.scalar', 'zeta.weight']);
  assert.deepEqual(f.entries.get('zeta.weight'), { dtype: 'F32', shape: [2, 3], begin: 32, end: 56 });
  assert.equal(f.read('mid.scalar').data[0], Math.fround(Math.PI));
  throwsUserError(() => f.read('nope'), [file, '"nope"']);
});

test('serializeSafetensors refuses an array whose length does not match its shape', () => {
  assert.throws(() => serializeSafetensors(new Map([['x', { shape: [2, 2], data: new Float32Array(3) }]])), /"x"/);
});

// ---------------------------------------------------------------------------------------------
// Other dtypes, decoded by hand

test('F16 decodes to the exact float32 values (normal, subnormal, max, ±0, ±inf, NaN)', () => {
  const cases: Array<[number, number]> = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3555, 0.333251953125],
    [0x3800, 0.5],
    [0x0000, 0],
    [0x8000, -0],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
    [0x7e00, NaN],
    [0xfe01, NaN],
  ];
  const bits = cases.map(([b]) => b);
  const file = writeTmp('f16.safetensors', rawFile({ h: { dtype: 'F16', shape: [cases.length], data_offsets: [0, cases.length * 2] } }, u16le(bits)));
  for (const got of [readSafetensors(file).get('h')!, { shape: [cases.length], data: decodeTensor(u16le(bits), 'F16', cases.length) }]) {
    assert.ok(got.data instanceof Float32Array);
    assert.deepEqual([...got.shape], [cases.length]);
    cases.forEach(([b, want], i) => assert.ok(Object.is(got.data[i], want), `F16 0x${b.toString(16)}: got ${got.data[i]}, want ${want}`));
  }
});

test('BF16 decodes as the top half of a float32', () => {
  const cases: Array<[number, number]> = [
    [0x3f80, 1],
    [0xc040, -3],
    [0x4049, 3.140625],
    [0x0001, 2 ** -133], // smallest bf16 subnormal is a float32 subnormal
    [0x8000, -0],
    [0x7f80, Infinity],
    [0xff80, -Infinity],
    [0x7fc0, NaN],
    [0x7f7f, 3.3895313892515355e38], // largest finite bf16
  ];
  const bits = cases.map(([b]) => b);
  const file = writeTmp('bf16.safetensors', rawFile({ w: { dtype: 'BF16', shape: [3, 3], data_offsets: [0, 18] } }, u16le(bits)));
  const got = readSafetensors(file).get('w')!;
  assert.ok(got.data instanceof Float32Array);
  assert.deepEqual([...got.shape], [3, 3]);
  cases.forEach(([b, want], i) => assert.ok(Object.is(got.data[i], want), `BF16 0x${b.toString(16)}: got ${got.data[i]}, want ${want}`));
});

test('I64, U8, BOOL and F64 are read too (ints as int32, floats as float32)', () => {
  const i64 = Buffer.alloc(16);
  i64.writeBigInt64LE(-5n, 0);
  i64.writeBigInt64LE(123456789n, 8);
  const f64 = Buffer.alloc(8);
  f64.writeDoubleLE(0.1, 0);
  const data = Buffer.concat([i64, Buffer.from([7, 255]), Buffer.from([1, 0]), f64]);
  const header = {
    i: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
    u: { dtype: 'U8', shape: [2], data_offsets: [16, 18] },
    b: { dtype: 'BOOL', shape: [2], data_offsets: [18, 20] },
    d: { dtype: 'F64', shape: [1], data_offsets: [20, 28] },
  };
  const got = parseSafetensors(rawFile(header, data));
  assert.deepEqual(Array.from(got.get('i')!.data), [-5, 123456789]);
  assert.ok(got.get('i')!.data instanceof Int32Array);
  assert.deepEqual(Array.from(got.get('u')!.data), [7, 255]);
  assert.deepEqual(Array.from(got.get('b')!.data), [1, 0]);
  assert.equal(got.get('d')!.data[0], Math.fround(0.1));
});

test('an empty file body ({} header) and a zero-size tensor are fine', () => {
  assert.equal(parseSafetensors(rawFile({})).size, 0);
  const got = parseSafetensors(rawFile({ e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] } }));
  assert.deepEqual([...got.get('e')!.shape], [0, 3]);
  assert.equal(got.get('e')!.data.length, 0);
});

test('a zero-size tensor that shares its offset with a neighbour is not an overlap', () => {
  // Legal per the format (the reference reader sorts by (begin, end) and checks contiguity): an
  // empty tensor at the offset where the next tensor starts, listed after it in the header.
  const data = new Uint8Array(new Float32Array([1, 2]).buffer);
  const bytes = rawFile({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [0], data_offsets: [0, 0] },
  }, data);
  const got = parseSafetensors(bytes);
  assert.deepEqual(Array.from(got.get('a')!.data), [1, 2]);
  assert.equal(got.get('b')!.data.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Malformed files

test('a file shorter than 8 bytes is refused, naming the file', () => {
  bothRefuse('short.safetensors', new Uint8Array([1, 2, 3, 4, 5]), ['too short']);
  bothRefuse('empty.safetensors', new Uint8Array(0), ['too short']);
});

test('a header length larger than the file is refused', () => {
  const bytes = Buffer.alloc(20);
  bytes.writeBigUInt64LE(1000n, 0);
  bothRefuse('longheader.safetensors', bytes, ['1000']);
  // a length that does not even fit a double
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(0xffffffffffffffffn, 0);
  bothRefuse('hugeheader.safetensors', huge, ['header']);
});

test('a header that is not JSON, or not a JSON object, is refused', () => {
  bothRefuse('notjson.safetensors', rawFile(null, undefined, '{"a": [1, 2'), ['not valid JSON']);
  bothRefuse('array.safetensors', rawFile([1, 2]), ['not a JSON object']);
});

test('an unsupported dtype is refused, naming the key and the dtype', () => {
  bothRefuse('dtype.safetensors', rawFile({ 'w.q': { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), ['"w.q"', 'F8_E4M3']);
  bothRefuse('nodtype.safetensors', rawFile({ 'w.q': { shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), ['"w.q"', 'dtype']);
});

test('a bad shape is refused, naming the key', () => {
  for (const [i, shape] of ([[2, -1], [2.5], 'abc', null, [2, '3']] as unknown[]).entries()) {
    bothRefuse(`shape${i}.safetensors`, rawFile({ 'k.shape': { dtype: 'F32', shape, data_offsets: [0, 8] } }, new Uint8Array(8)), ['"k.shape"', 'shape']);
  }
});

test('malformed data_offsets are refused, naming the key', () => {
  for (const [i, offsets] of ([[0], [0, 8, 16], [-8, 0], [0, 8.5], 'x', null] as unknown[]).entries()) {
    bothRefuse(`offsets${i}.safetensors`, rawFile({ 'k.off': { dtype: 'F32', shape: [2], data_offsets: offsets } }, new Uint8Array(8)), ['"k.off"', 'data_offsets']);
  }
});

test('data_offsets whose size does not match dtype x shape are refused, naming the key', () => {
  // F32 [2] needs 8 bytes; 4 and 12 are claimed
  bothRefuse('size1.safetensors', rawFile({ 'k.size': { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(12)), ['"k.size"', '8']);
  bothRefuse('size2.safetensors', rawFile({ 'k.size': { dtype: 'F16', shape: [2, 3], data_offsets: [0, 24] } }, new Uint8Array(24)), ['"k.size"', '12']);
  // end before begin
  bothRefuse('size3.safetensors', rawFile({ 'k.size': { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, new Uint8Array(8)), ['"k.size"']);
});

test('a truncated file (offsets past the end of the data) is refused, naming the key', () => {
  const full = serializeSafetensors(sample());
  // drop the last 4 bytes: only the last key in data order ("zeta.weight") runs past the end
  bothRefuse('truncated.safetensors', full.subarray(0, full.length - 4), ['"zeta.weight"', 'truncated']);
});

test('overlapping keys are refused, naming both', () => {
  const bytes = rawFile({
    first: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    second: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, new Uint8Array(12));
  bothRefuse('overlap.safetensors', bytes, ['"first"', '"second"', 'overlap']);
});

test('a missing file is a UserError naming it', () => {
  const file = path.join(tmp, 'does-not-exist.safetensors');
  throwsUserError(() => openSafetensors(file), [file, 'no such file']);
  throwsUserError(() => readSafetensors(file), [file]);
});

test('a refused file leaves no file descriptor open', { skip: !fs.existsSync('/proc/self/fd') && 'needs /proc/self/fd' }, () => {
  const bad = [
    writeTmp('fd-short.safetensors', new Uint8Array(3)),
    writeTmp('fd-long.safetensors', (() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(99n, 0); return b; })()),
    writeTmp('fd-json.safetensors', rawFile(null, undefined, 'nope')),
  ];
  const before = fs.readdirSync('/proc/self/fd').length;
  for (let i = 0; i < 10; i++) for (const file of bad) assert.throws(() => openSafetensors(file), isUserError);
  const afterCount = fs.readdirSync('/proc/self/fd').length;
  assert.equal(afterCount, before, `${afterCount - before} descriptors leaked by 30 refused opens`);
});
