import { create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { seededRandom } from '../golden.js';
import type { Datatype } from '../inference.js';
import { DATATYPE_TO_ONNX, encodeModel } from './model-io.js';

export type AttributeValue = number | number[] | string | { float: number } | { floats: number[] };

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'string') {
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(value) });
  }
  if (typeof value === 'number') {
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value) });
  }
  if (Array.isArray(value)) {
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: value.map(BigInt) });
  }
  if ('float' in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: value.float });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOATS, floats: value.floats });
}

function valueInfo(name: string, datatype: Datatype, shape: readonly number[]): ValueInfoProto {
  const dim = shape.map((d, i) =>
    create(TensorShapeProto_DimensionSchema, {
      value: d < 0 ? { case: 'dimParam', value: i === 0 ? 'batch' : `d${i}` } : { case: 'dimValue', value: BigInt(d) },
    }),
  );
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, { elemType: DATATYPE_TO_ONNX[datatype], shape: create(TensorShapeProtoSchema, { dim }) }),
      },
    }),
  });
}

export function floatTensor(name: string, dims: readonly number[], values: Float32Array): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dims: dims.map(BigInt),
    dataType: DATATYPE_TO_ONNX.FP32,
    rawData: new Uint8Array(Float32Array.from(values).buffer),
  });
}

export function int64Tensor(name: string, dims: readonly number[], values: readonly number[]): TensorProto {
  const arr = BigInt64Array.from(values.map(BigInt));
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: DATATYPE_TO_ONNX.INT64, rawData: new Uint8Array(arr.buffer) });
}

/** Small imperative ONNX graph builder: used by tests, the demo, the bench and compression. */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  input(name: string, datatype: Datatype, shape: readonly number[]): string {
    this.inputs.push(valueInfo(name, datatype, shape));
    return name;
  }

  output(name: string, datatype: Datatype, shape: readonly number[]): void {
    this.outputs.push(valueInfo(name, datatype, shape));
  }

  initializer(tensor: TensorProto): string {
    this.initializers.push(tensor);
    return tensor.name;
  }

  /** Adds a node and returns its (first) output's name; `outputName` names it explicitly. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttributeValue> = {}, outputName?: string): string {
    const out = outputName ?? `${opType.toLowerCase()}_${this.counter++}`;
    this.nodes.push(
      create(NodeProtoSchema, {
        name: `${opType}_${this.nodes.length}`,
        opType,
        input: [...inputs],
        output: [out],
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return out;
  }

  build(opset = 17): ModelProto {
    return create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: 'edgefleet',
      producerVersion: '0.1.0',
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
      graph: create(GraphProtoSchema, {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      }),
    });
  }
}

/** He-style uniform weights from a seeded generator, so every build of a model is byte-identical. */
function randomWeights(count: number, fanIn: number, rand: () => number): Float32Array {
  const limit = Math.sqrt(6 / fanIn);
  const w = new Float32Array(count);
  for (let i = 0; i < count; i++) w[i] = (rand() * 2 - 1) * limit;
  return w;
}

export interface MlpOptions {
  name?: string;
  inputSize: number;
  hidden: readonly number[];
  outputSize: number;
  seed?: number;
}

/** x[batch, inputSize] → Gemm/Relu layers → Softmax → probs[batch, outputSize]. Tiny and fast. */
export function buildMlp(opts: MlpOptions): Uint8Array {
  const rand = seededRandom(opts.seed ?? 1);
  const g = new GraphBuilder(opts.name ?? 'mlp');
  let x = g.input('input', 'FP32', [-1, opts.inputSize]);
  const sizes = [opts.inputSize, ...opts.hidden, opts.outputSize];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const [fin, fout] = [sizes[l]!, sizes[l + 1]!];
    const w = g.initializer(floatTensor(`fc${l}.weight`, [fin, fout], randomWeights(fin * fout, fin, rand)));
    const b = g.initializer(floatTensor(`fc${l}.bias`, [fout], randomWeights(fout, fin, rand).map((v) => v * 0.1)));
    x = g.node('Gemm', [x, w, b]);
    if (l + 2 < sizes.length) x = g.node('Relu', [x]);
  }
  g.node('Softmax', [x], { axis: -1 }, 'probs');
  g.output('probs', 'FP32', [-1, opts.outputSize]);
  return encodeModel(g.build());
}

export interface ConvNetOptions {
  name?: string;
  channels: number;
  size: number;
  /** Output channels of each 3x3 conv layer; each layer after the first halves the spatial size. */
  filters: readonly number[];
  classes: number;
  seed?: number;
}

/** image[batch, C, H, W] → (Conv3x3 → Relu)* → GlobalAveragePool → Gemm → Softmax: a compute-bound image classifier. */
export function buildConvNet(opts: ConvNetOptions): Uint8Array {
  const rand = seededRandom(opts.seed ?? 2);
  const g = new GraphBuilder(opts.name ?? 'convnet');
  let x = g.input('image', 'FP32', [-1, opts.channels, opts.size, opts.size]);
  let cin = opts.channels;
  opts.filters.forEach((cout, i) => {
    const fanIn = cin * 9;
    const w = g.initializer(floatTensor(`conv${i}.weight`, [cout, cin, 3, 3], randomWeights(cout * fanIn, fanIn, rand)));
    const b = g.initializer(floatTensor(`conv${i}.bias`, [cout], new Float32Array(cout).fill(0.01)));
    x = g.node('Conv', [x, w, b], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: i === 0 ? [1, 1] : [2, 2] });
    x = g.node('Relu', [x]);
    cin = cout;
  });
  x = g.node('GlobalAveragePool', [x]);
  x = g.node('Flatten', [x], { axis: 1 });
  const w = g.initializer(floatTensor('fc.weight', [cin, opts.classes], randomWeights(cin * opts.classes, cin, rand)));
  const b = g.initializer(floatTensor('fc.bias', [opts.classes], new Float32Array(opts.classes)));
  x = g.node('Gemm', [x, w, b]);
  g.node('Softmax', [x], { axis: -1 }, 'probs');
  g.output('probs', 'FP32', [-1, opts.classes]);
  return encodeModel(g.build());
}
