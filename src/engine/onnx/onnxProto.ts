/**
 * ONNX's protobuf messages (onnx.proto, IR version 8), only the fields this project writes:
 * ModelProto, OperatorSetIdProto, GraphProto, NodeProto, AttributeProto, TensorProto (raw data),
 * ValueInfoProto with TypeProto.Tensor and TensorShapeProto (fixed or symbolic dimensions).
 * Field numbers are onnx.proto's.
 */
import { Message } from './protobuf.js';

/** TensorProto.DataType values used here. */
export const FLOAT = 1;
export const INT64 = 7;
export type ElemType = typeof FLOAT | typeof INT64;

/** Opset 17 is IR version 8 (onnx/helper.py's VERSION_TABLE). */
export const IR_VERSION = 8;

export interface TensorInit {
  readonly name: string;
  readonly dims: readonly number[];
  readonly type: ElemType;
  /** little-endian element bytes (what `raw_data` holds) */
  readonly raw: Uint8Array;
}

export function tensorProto(t: TensorInit): Message {
  const m = new Message();
  for (const d of t.dims) m.varint(1, d);
  return m.varint(2, t.type).string(8, t.name).bytes(9, t.raw);
}

/** A dimension: a fixed size, or a symbolic name (one name means one size within a run). */
export type Dim = number | string;

export function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): Message {
  const shape = new Message();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Message().varint(1, d) : new Message().string(2, d));
  const tensorType = new Message().varint(1, type).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

export type Attribute =
  | { readonly name: string; readonly int: number }
  | { readonly name: string; readonly float: number }
  | { readonly name: string; readonly ints: readonly number[] };

/** AttributeProto.AttributeType values */
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

function attributeProto(a: Attribute): Message {
  const m = new Message().string(1, a.name);
  if ('int' in a) return m.varint(3, a.int).varint(20, ATTR_INT);
  if ('float' in a) return m.float(2, a.float).varint(20, ATTR_FLOAT);
  for (const v of a.ints) m.varint(8, v);
  return m.varint(20, ATTR_INTS);
}

export interface NodeInit {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: readonly Attribute[];
  /** empty for the default ONNX domain */
  readonly domain: string;
}

export function nodeProto(n: NodeInit): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name).string(4, n.op);
  for (const a of n.attributes) m.message(5, attributeProto(a));
  if (n.domain) m.string(7, n.domain);
  return m;
}

export interface GraphInit {
  readonly name: string;
  readonly nodes: readonly Message[];
  readonly initializers: readonly Message[];
  readonly inputs: readonly Message[];
  readonly outputs: readonly Message[];
}

export function graphProto(g: GraphInit): Message {
  const m = new Message();
  for (const n of g.nodes) m.message(1, n);
  m.string(2, g.name);
  for (const t of g.initializers) m.message(5, t);
  for (const i of g.inputs) m.message(11, i);
  for (const o of g.outputs) m.message(12, o);
  return m;
}

/** A model of one graph; `opsets` maps a domain ('' for ONNX's own) to its version. */
export function modelProto(graph: Message, opsets: ReadonlyMap<string, number>, producer: string): Message {
  const m = new Message().varint(1, IR_VERSION).string(2, producer).string(3, '0.1.0').message(7, graph);
  for (const [domain, version] of opsets) m.message(8, new Message().string(1, domain).varint(2, version));
  return m;
}
