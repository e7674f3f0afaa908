/**
 * Shared loader for test/data/numerics.json (PyTorch reference values written by
 * test/data/make_numerics.py). Inputs are not stored in the file: `hashInput` regenerates them
 * bit-for-bit from the same integer formula as the generator.
 */
import { readFileSync } from 'node:fs';

export interface MatrixCase {
  mode: 'bicubic' | 'bicubic-antialias' | 'nearest' | 'area';
  in: number;
  out: number;
  /** Per output row: [first nonzero column, ...weights from there to the last nonzero]. */
  rows: number[][];
}

export interface ResizeCase {
  mode: MatrixCase['mode'];
  count: number;
  h: number;
  w: number;
  outH: number;
  outW: number;
  salt: number;
  out: number[];
}

export interface MaxPoolCase {
  count: number;
  h: number;
  w: number;
  outH: number;
  outW: number;
  salt: number;
  nanAt: number[];
  quantum?: number;
  out: Array<number | null>;
}

export interface BinsCase {
  in: number;
  out: number;
  startSum: number;
  endSum: number;
  start?: number[];
  end?: number[];
  at?: Record<string, [number, number]>;
}

export interface OpCase {
  kind: 'resize2d' | 'maxPool2d';
  shape: number[];
  rowAxis: number;
  outH: number;
  outW: number;
  mode?: MatrixCase['mode'];
  cropH?: number;
  cropW?: number;
  quantum?: number;
  nanAt?: number[];
  salt: number;
  rSalt: number;
  out: Array<number | null>;
  grad: number[];
}

export interface TopKCase {
  note: string;
  values: Array<number | string>;
  k: number;
  indices: number[];
}

export interface Numerics {
  meta: { torch: string; generator: string };
  matrices: MatrixCase[];
  resize: ResizeCase[];
  maxPool: MaxPoolCase[];
  bins: BinsCase[];
  ops: OpCase[];
  topk: TopKCase[];
}

// Resolved from this module (dist/test/tensor/) rather than the working directory, so the tests
// do not depend on where `node --test` is started.
const DATA_URL = new URL('../../../test/data/numerics.json', import.meta.url);

let cached: Numerics | undefined;

export function loadNumerics(): Numerics {
  cached ??= JSON.parse(readFileSync(DATA_URL, 'utf8')) as Numerics;
  return cached;
}

/** Mirrors `hash_input` in make_numerics.py; every step is exact in float64 up to one rounding. */
export function hashInput(n: number, salt: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const q = (i * i * 7919 + i * 104729 + salt * 15485863 + 1) % 1000003;
    out[i] = q / 1000003 - 0.5;
  }
  return out;
}

/** `torch.round(x / q) * q` in float32: torch rounds halves to even, unlike Math.round. */
export function quantize(x: Float32Array, quantum: number): Float32Array {
  return x.map((v) => {
    const s = Math.fround(v / quantum);
    const f = Math.floor(s);
    const r = s - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(s);
    return r * quantum;
  });
}

/** JSON null stands for NaN (not representable in JSON). */
export function f32(values: ArrayLike<number | null>): Float32Array {
  return Float32Array.from(Array.from(values, (v) => (v === null ? NaN : v)));
}

/** Largest |a - b|, treating NaN = NaN as equal and a NaN mismatch as infinite. */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) || Number.isNaN(e)) {
      if (Number.isNaN(a) !== Number.isNaN(e)) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(a - e));
  }
  return worst;
}

/** Index of the first element that differs by more than `tol` (for failure messages), or -1. */
export function firstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): number {
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e) || Math.abs(a - e) > tol) return i;
  }
  return -1;
}

/** Dense [out, in] float32 matrix from the banded rows of a MatrixCase. */
export function denseMatrix(c: MatrixCase): Float32Array {
  const m = new Float32Array(c.out * c.in);
  c.rows.forEach((row, o) => {
    const first = row[0]!;
    for (let k = 1; k < row.length; k++) m[o * c.in + first + k - 1] = row[k]!;
  });
  return m;
}

/** Assert every element is within `tol` of PyTorch's (NaN must match NaN); returns the max error. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, label: string): number {
  const worst = maxAbsDiff(actual, expected);
  if (!(worst <= tol)) {
    const i = firstMismatch(actual, expected, tol);
    throw new Error(`${label}: max |diff| ${worst} > ${tol}; first at [${i}]: got ${actual[i]}, PyTorch ${expected[i]}`);
  }
  return worst;
}
