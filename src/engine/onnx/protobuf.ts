/**
 * The protocol-buffer wire format, only as much as writing an ONNX model needs: varint fields
 * (tags, int32/int64/enum values), 32-bit float fields and length-delimited fields (bytes,
 * strings, nested messages). A message is a list of chunks with a running byte length, so nesting
 * a message never copies its (possibly hundreds of MB of) tensor payload; `toBytes` flattens once.
 */

const WIRE_VARINT = 0;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

/** Varint bytes of a non-negative integer (exact up to 2^53) or of a negative int64 (two's complement, 10 bytes). */
function varint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value)) throw new RangeError(`protobuf: ${value} is not a safe integer`);
  if (value < 0) {
    let v = BigInt.asUintN(64, BigInt(value));
    const out = new Uint8Array(10);
    for (let i = 0; i < 10; i++) {
      out[i] = Number(v & 0x7fn) | (i < 9 ? 0x80 : 0);
      v >>= 7n;
    }
    return out;
  }
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Uint8Array.from(bytes);
}

export class Message {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  private tag(field: number, wire: number): void {
    this.push(varint(field * 8 + wire));
  }

  /** int32, int64 and enum fields (a repeated one is written once per value, unpacked, as proto2 does). */
  varint(field: number, value: number): this {
    this.tag(field, WIRE_VARINT);
    this.push(varint(value));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  /** Raw bytes, kept by reference (not copied) until `toBytes`. */
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LENGTH);
    this.push(varint(data.length));
    this.push(data);
    return this;
  }

  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }

  message(field: number, m: Message): this {
    this.tag(field, WIRE_LENGTH);
    this.push(varint(m.size));
    for (const c of m.chunks) this.push(c);
    return this;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
