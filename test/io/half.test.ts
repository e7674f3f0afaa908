/**
 * src/io/half.ts against numpy's float16 rounding (test/data/make_half.py), and F16 safetensors
 * that read back as the half-precision values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { floatToHalfBits } from '../../src/io/half.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const data = JSON.parse(fs.readFileSync(new URL('../../../test/data/half.json', import.meta.url), 'utf8')) as { values: number[]; bits: number[] };

test('float32 -> float16 bits equal numpy\'s for edge cases (ties, subnormals, overflow) and random values', () => {
  data.values.forEach((v, i) => assert.equal(floatToHalfBits(v), data.bits[i], `value ${v}`));
  assert.equal(floatToHalfBits(Infinity), 0x7c00);
  assert.equal(floatToHalfBits(-Infinity), 0xfc00);
  assert.equal(floatToHalfBits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(floatToHalfBits(NaN) & 0x3ff, 0);
});

test('F16 safetensors: half the bytes, read back within half precision', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-half-'));
  const values = Float32Array.from(data.values.slice(30, 230));
  const tensors = new Map([['w', { shape: [10, 20], data: values }], ['ids', { shape: [3], data: Int32Array.from([1, 2, 3]) }]]);
  writeSafetensors(path.join(dir, 'a.safetensors'), tensors, undefined, 'F16');
  writeSafetensors(path.join(dir, 'b.safetensors'), tensors);
  const [a, b] = ['a', 'b'].map((n) => fs.statSync(path.join(dir, `${n}.safetensors`)).size);
  assert.ok(a! < b! - 390, `F16 file ${a} bytes vs F32 ${b}`);
  const back = readSafetensors(path.join(dir, 'a.safetensors'));
  assert.deepEqual(Array.from(back.get('ids')!.data), [1, 2, 3]);
  back.get('w')!.data.forEach((v, i) => assert.ok(Math.abs(v - values[i]!) <= Math.abs(values[i]!) * 2 ** -11 + 1e-7, `${v} vs ${values[i]}`));
  fs.rmSync(dir, { recursive: true, force: true });
});
