/**
 * Big typed arrays kept for reuse. A fresh 100 MB array costs its first writes a page fault per
 * 4 KB page (measured here: ~0.5 s of CPU for the 171 MB of one 3780 px sample's pixels, ten
 * times the work of filling it); a reused one costs nothing. Training makes arrays of the same
 * few sizes every sample, so a handful of kept buffers serve them all.
 *
 * A taken array's contents are whatever its last user left: callers overwrite it entirely.
 */
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  /** `maxBuffers` kept at most (the oldest go first); `slack`: a buffer up to this much bigger than asked for serves. */
  constructor(
    private readonly maxBuffers = 32,
    private readonly slack = 1.25,
  ) {}

  private take(bytes: number): ArrayBuffer | undefined {
    let best = -1;
    this.free.forEach((b, i) => {
      if (b.byteLength >= bytes && b.byteLength <= bytes * this.slack && (best < 0 || b.byteLength < this.free[best]!.byteLength)) best = i;
    });
    return best < 0 ? undefined : this.free.splice(best, 1)[0];
  }

  float32(length: number): Float32Array {
    const b = this.take(length * 4);
    return b ? new Float32Array(b, 0, length) : new Float32Array(length);
  }

  uint8(length: number): Uint8Array {
    const b = this.take(length);
    return b ? new Uint8Array(b, 0, length) : new Uint8Array(length);
  }

  /** Hand arrays back once nothing reads them any more; small ones (under 1 MB) are not kept. */
  give(...arrays: ReadonlyArray<ArrayBufferView | undefined>): void {
    for (const a of arrays) {
      if (!a || !(a.buffer instanceof ArrayBuffer) || a.buffer.byteLength < 2 ** 20 || this.free.includes(a.buffer)) continue;
      this.free.push(a.buffer);
      if (this.free.length > this.maxBuffers) this.free.shift();
    }
  }
}
