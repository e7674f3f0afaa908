/**
 * A small seeded generator (mulberry32) so data, augmentation and initialisation are
 * reproducible from one integer seed, and its state can be saved and restored for resume.
 */

/**
 * Marsaglia and Tsang's ziggurat (2000) for the standard normal, 128 layers: `ZIG_K[i]` bounds
 * the fast path of layer i, `ZIG_W[i]` scales a 25-bit signed integer to x, `ZIG_F[i]` is the
 * density exp(-x^2/2) at the layer's edge; `ZIG_R` is where the tail starts.
 */
const ZIG_R = 3.442619855899;
const ZIG_SCALE = 2 ** 24;
const ZIG_K = new Float64Array(128);
const ZIG_W = new Float64Array(128);
const ZIG_F = new Float64Array(128);
{
  const area = 9.91256303526217e-3; // each layer's area
  let dn = ZIG_R;
  let tn = dn;
  const q = area / Math.exp(-0.5 * dn * dn);
  ZIG_K[0] = (dn / q) * ZIG_SCALE;
  ZIG_K[1] = 0;
  ZIG_W[0] = q / ZIG_SCALE;
  ZIG_W[127] = dn / ZIG_SCALE;
  ZIG_F[0] = 1;
  ZIG_F[127] = Math.exp(-0.5 * dn * dn);
  for (let i = 126; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(area / dn + Math.exp(-0.5 * dn * dn)));
    ZIG_K[i + 1] = (dn / tn) * ZIG_SCALE;
    tn = dn;
    ZIG_F[i] = Math.exp(-0.5 * dn * dn);
    ZIG_W[i] = dn / ZIG_SCALE;
  }
}

/** FNV-1a over a run of values (each taken whole, as the 32-bit variant takes a byte), from `start`: a seed made from data. */
export function fnv1a(values: Iterable<number>, start = 0x811c9dc5): number {
  let h = start;
  for (const v of values) h = Math.imul(h ^ v, 0x01000193);
  return h >>> 0;
}

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** uniform in [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** uniform in [lo, hi) */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** integer in [lo, hi] inclusive */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** standard normal (Box-Muller) */
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /**
   * Fill `out` with independent N(0, std^2) draws (the ziggurat: about twice as fast as `normal`,
   * which matters for the hundreds of millions of values of a large model's random weights).
   * Each draw takes one 32-bit output: its low 7 bits pick the layer and its upper 25 the signed
   * value (separate bits, so the layer and the value are independent); rare draws outside a
   * layer's rectangle take more.
   */
  fillNormal(out: Float32Array, std = 1): Float32Array {
    for (let n = 0; n < out.length; n++) {
      let bits = this.int32();
      let layer = bits & 127;
      let j = bits >> 7;
      if (Math.abs(j) < ZIG_K[layer]!) {
        out[n] = j * ZIG_W[layer]! * std;
        continue;
      }
      let x: number;
      for (;;) {
        x = j * ZIG_W[layer]!;
        if (layer === 0) {
          // the tail beyond R (Marsaglia's exponential method)
          let y: number;
          do {
            x = -Math.log(1 - this.next()) / ZIG_R;
            y = -Math.log(1 - this.next());
          } while (y + y < x * x);
          x = j > 0 ? ZIG_R + x : -ZIG_R - x;
          break;
        }
        if (ZIG_F[layer]! + this.next() * (ZIG_F[layer - 1]! - ZIG_F[layer]!) < Math.exp(-0.5 * x * x)) break;
        bits = this.int32();
        layer = bits & 127;
        j = bits >> 7;
        if (Math.abs(j) < ZIG_K[layer]!) {
          x = j * ZIG_W[layer]!;
          break;
        }
      }
      out[n] = x * std;
    }
    return out;
  }

  /** the next raw 32-bit output, signed (the same stream `next` scales to [0, 1)) */
  private int32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) | 0;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** an independent generator derived from this one's next draw (for per-item streams) */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }

  getState(): number {
    return this.state;
  }

  static fromState(state: number): Rng {
    return new Rng(state);
  }
}
