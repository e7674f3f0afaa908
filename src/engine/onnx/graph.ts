/**
 * A small ONNX graph builder: nodes with generated unique value names, float32 and int64
 * initializers, typed inputs and outputs, serialised to a ModelProto's bytes.
 */
import { Message } from './protobuf.js';
import { FLOAT, INT64, graphProto, modelProto, nodeProto, tensorProto, valueInfo, type Attribute, type Dim, type ElemType } from './onnxProto.js';

// raw_data is little-endian; typed arrays are in host order (checked without node:os: the page builds graphs too)
if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error('ONNX export needs a little-endian host');

export const OPSET = 17;

export class GraphBuilder {
  private readonly nodes: Message[] = [];
  private readonly initializers: Message[] = [];
  private readonly inputs: Message[] = [];
  private readonly outputs: Message[] = [];
  private readonly opsets = new Map<string, number>([['', OPSET]]);
  private readonly int64Constants = new Map<string, string>();
  private counter = 0;

  constructor(private readonly name: string) {}

  private fresh(base: string): string {
    return `${base}_${this.counter++}`;
  }

  /** Add a node; returns its output names (`outputs` of them, generated). */
  node(op: string, inputs: readonly string[], attributes: readonly Attribute[] = [], outputs = 1, domain = ''): string[] {
    const name = this.fresh(op);
    const outs = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? name : `${name}.${i}`));
    this.nodes.push(nodeProto({ op, name, inputs, outputs: outs, attributes, domain }));
    return outs;
  }

  /** One-output node; `name` names the output (a graph output, say) instead of a generated one. */
  op(op: string, inputs: readonly string[], attributes: readonly Attribute[] = [], name?: string): string {
    if (name === undefined) return this.node(op, inputs, attributes)[0]!;
    this.nodes.push(nodeProto({ op, name: this.fresh(op), inputs, outputs: [name], attributes, domain: '' }));
    return name;
  }

  useDomain(domain: string, version: number): void {
    this.opsets.set(domain, version);
  }

  /** A float32 initializer; the array's bytes are referenced, not copied, until `toBytes`. */
  floats(name: string, dims: readonly number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, c) => a * c, 1)) throw new RangeError(`initializer ${name}: ${data.length} values for [${dims.join(', ')}]`);
    this.initializers.push(tensorProto({ name, dims, type: FLOAT, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }));
    return name;
  }

  /** An int64 constant (a shape, axes, split sizes), shared by every node that needs the same values. */
  int64s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `${dims.join('x')}:${values.join(',')}`;
    const hit = this.int64Constants.get(key);
    if (hit) return hit;
    const name = this.fresh('const_i64');
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push(tensorProto({ name, dims, type: INT64, raw: new Uint8Array(data.buffer) }));
    this.int64Constants.set(key, name);
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    return this.floats(this.fresh('const_f32'), [], Float32Array.of(value));
  }

  input(name: string, dims: readonly Dim[], type: ElemType = FLOAT): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, dims: readonly Dim[], type: ElemType = FLOAT): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  toBytes(): Uint8Array {
    const graph = graphProto({ name: this.name, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs });
    return modelProto(graph, this.opsets, 'ps3-ts').toBytes();
  }
}
