import { clone, create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { EdgefleetError } from '../error-codes.js';
import { fromHalf, toHalf } from '../half-float.js';

export type { GraphProto, NodeProto, TensorProto, ValueInfoProto } from 'onnx-buf';

/** ONNX element type numbers used by graph transforms (TensorProto.DataType). */
export const ELEMENT_TYPE = {
  FLOAT: TensorProto_DataType.FLOAT,
  UINT8: TensorProto_DataType.UINT8,
  INT8: TensorProto_DataType.INT8,
  INT32: TensorProto_DataType.INT32,
  INT64: TensorProto_DataType.INT64,
  BOOL: TensorProto_DataType.BOOL,
  FLOAT16: TensorProto_DataType.FLOAT16,
  DOUBLE: TensorProto_DataType.DOUBLE,
} as const;

export type TensorValues = Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

/** A deep copy, so a transform never edits the model its caller holds. */
export function cloneModel(model: ModelProto): ModelProto {
  return clone(ModelProtoSchema, model);
}

/** The model's graph, or an INVALID_MODEL error saying it has none. */
export function requireGraph(model: ModelProto): GraphProto {
  if (!model.graph || model.graph.node.length === 0) throw new EdgefleetError('INVALID_MODEL', 'the model has no graph nodes');
  return model.graph;
}

export function elementCount(tensor: TensorProto): number {
  return tensor.dims.reduce((n, d) => n * Number(d), 1);
}

/** True when the values live in this file (not in external data files a transform cannot read). */
export function hasInlineData(tensor: TensorProto): boolean {
  return tensor.dataLocation !== TensorProto_DataLocation.EXTERNAL && tensor.externalData.length === 0;
}

/** Copies raw_data into a fresh aligned buffer: protobuf byte fields are views at arbitrary offsets. */
function rawBuffer(tensor: TensorProto, bytesPerElement: number): ArrayBuffer {
  const expected = elementCount(tensor) * bytesPerElement;
  if (tensor.rawData.byteLength !== expected) {
    throw new EdgefleetError(
      'INVALID_MODEL',
      `tensor "${tensor.name}" has ${tensor.rawData.byteLength} bytes of raw_data, expected ${expected} for dims [${tensor.dims.join(', ')}]`,
    );
  }
  // A copy of exactly these bytes: when the model was decoded from a Node Buffer, rawData is a Buffer
  // too, whose slice() is a view on the whole file, not a copy.
  return new Uint8Array(tensor.rawData).buffer;
}

function checkCount(tensor: TensorProto, found: number, field: string): void {
  if (found !== elementCount(tensor)) {
    throw new EdgefleetError('INVALID_MODEL', `tensor "${tensor.name}" has ${found} values in ${field}, expected ${elementCount(tensor)} for dims [${tensor.dims.join(', ')}]`);
  }
}

/**
 * A tensor's values as a typed array, from raw_data (little-endian, which is what every platform we
 * run on uses) or from the typed fields exporters also write. FLOAT16 comes back as its bit patterns.
 */
export function tensorValues(tensor: TensorProto): TensorValues {
  if (!hasInlineData(tensor)) throw new EdgefleetError('INVALID_MODEL', `tensor "${tensor.name}" keeps its data in an external file`);
  const raw = tensor.rawData.byteLength > 0;
  switch (tensor.dataType) {
    case TensorProto_DataType.FLOAT:
      if (raw) return new Float32Array(rawBuffer(tensor, 4));
      checkCount(tensor, tensor.floatData.length, 'float_data');
      return Float32Array.from(tensor.floatData);
    case TensorProto_DataType.DOUBLE:
      if (raw) return new Float64Array(rawBuffer(tensor, 8));
      checkCount(tensor, tensor.doubleData.length, 'double_data');
      return Float64Array.from(tensor.doubleData);
    case TensorProto_DataType.INT64:
      if (raw) return new BigInt64Array(rawBuffer(tensor, 8));
      checkCount(tensor, tensor.int64Data.length, 'int64_data');
      return BigInt64Array.from(tensor.int64Data);
    case TensorProto_DataType.INT32:
      if (raw) return new Int32Array(rawBuffer(tensor, 4));
      checkCount(tensor, tensor.int32Data.length, 'int32_data');
      return Int32Array.from(tensor.int32Data);
    case TensorProto_DataType.FLOAT16:
      if (raw) return new Uint16Array(rawBuffer(tensor, 2));
      checkCount(tensor, tensor.int32Data.length, 'int32_data');
      return Uint16Array.from(tensor.int32Data);
    case TensorProto_DataType.INT8:
      if (raw) return new Int8Array(rawBuffer(tensor, 1));
      checkCount(tensor, tensor.int32Data.length, 'int32_data');
      return Int8Array.from(tensor.int32Data);
    case TensorProto_DataType.UINT8:
    case TensorProto_DataType.BOOL:
      if (raw) return new Uint8Array(rawBuffer(tensor, 1));
      checkCount(tensor, tensor.int32Data.length, 'int32_data');
      return Uint8Array.from(tensor.int32Data);
    default:
      throw new EdgefleetError('INVALID_MODEL', `tensor "${tensor.name}" has element type ${tensor.dataType}, which graph access does not read`);
  }
}

/** A floating-point tensor (float, double or float16) as float32 values. */
export function readFloatTensor(tensor: TensorProto): Float32Array {
  const values = tensorValues(tensor);
  if (values instanceof Float32Array) return values;
  if (values instanceof Float64Array) return Float32Array.from(values);
  if (tensor.dataType === TensorProto_DataType.FLOAT16) return float16BitsToFloat32(values as Uint16Array);
  throw new EdgefleetError('INVALID_MODEL', `tensor "${tensor.name}" is not a floating-point tensor (element type ${tensor.dataType})`);
}

/**
 * float32 → IEEE half bit patterns, rounding to nearest even. Finite values past the half range
 * saturate to ±65504 instead of becoming infinities: one outlier weight should not poison a model.
 */
export function float32ToFloat16Bits(values: Float32Array): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const h = toHalf(v);
    // toHalf overflows to infinity (also when rounding carries past 65504); keep the largest finite value instead.
    out[i] = (h & 0x7fff) === 0x7c00 && Number.isFinite(v) ? (h & 0x8000) | 0x7bff : h;
  }
  return out;
}

export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = fromHalf(bits[i]!);
  return out;
}

/** A FLOAT16 initializer in raw_data form holding `values` rounded to half precision. */
export function float16Tensor(name: string, dims: readonly bigint[], values: Float32Array): TensorProto {
  const bits = float32ToFloat16Bits(values);
  return create(TensorProtoSchema, {
    name,
    dims: [...dims],
    dataType: TensorProto_DataType.FLOAT16,
    rawData: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength),
  });
}

/** The tensor a Constant node produces, including the value_float(s)/value_int(s) shorthand forms. */
export function constantNodeTensor(node: NodeProto): TensorProto | undefined {
  if (node.opType !== 'Constant' || (node.domain !== '' && node.domain !== 'ai.onnx')) return undefined;
  const name = node.output[0] ?? '';
  for (const attr of node.attribute) {
    switch (attr.name) {
      case 'value': {
        if (!attr.t) return undefined;
        const tensor = clone(TensorProtoSchema, attr.t);
        tensor.name = name;
        return tensor;
      }
      case 'value_float':
        return create(TensorProtoSchema, { name, dataType: TensorProto_DataType.FLOAT, floatData: [attr.f] });
      case 'value_floats':
        return create(TensorProtoSchema, { name, dims: [BigInt(attr.floats.length)], dataType: TensorProto_DataType.FLOAT, floatData: [...attr.floats] });
      case 'value_int':
        return create(TensorProtoSchema, { name, dataType: TensorProto_DataType.INT64, int64Data: [attr.i] });
      case 'value_ints':
        return create(TensorProtoSchema, { name, dims: [BigInt(attr.ints.length)], dataType: TensorProto_DataType.INT64, int64Data: [...attr.ints] });
    }
  }
  return undefined;
}

/** The element type a value_info declares, or undefined when it is not a typed tensor. */
export function valueInfoElementType(info: ValueInfoProto): number | undefined {
  const type = info.type?.value;
  return type?.case === 'tensorType' && type.value.elemType !== 0 ? type.value.elemType : undefined;
}

/** Every tensor whose element type the graph states: inputs, outputs, value_info, initializers, Constant nodes. */
export function declaredElementTypes(graph: GraphProto): Map<string, number> {
  const types = new Map<string, number>();
  for (const info of [...graph.valueInfo, ...graph.output, ...graph.input]) {
    const type = valueInfoElementType(info);
    if (type !== undefined) types.set(info.name, type);
  }
  for (const t of graph.initializer) types.set(t.name, t.dataType);
  for (const node of graph.node) {
    const t = constantNodeTensor(node);
    if (t) types.set(t.name, t.dataType);
  }
  return types;
}

export function findInitializer(graph: GraphProto, name: string): TensorProto | undefined {
  return graph.initializer.find((t) => t.name === name);
}

/** Replaces the initializer of the same name, or adds it when there is none. */
export function putInitializer(graph: GraphProto, tensor: TensorProto): void {
  const i = graph.initializer.findIndex((t) => t.name === tensor.name);
  if (i >= 0) graph.initializer[i] = tensor;
  else graph.initializer.push(tensor);
}

/** Removes an initializer and its graph input entry (older exporters list initializers as inputs). */
export function removeInitializer(graph: GraphProto, name: string): void {
  graph.initializer = graph.initializer.filter((t) => t.name !== name);
  graph.input = graph.input.filter((i) => i.name !== name);
}

export type NodeAttribute = { int: number } | { ints: number[] } | { float: number } | { tensor: TensorProto };

function toAttribute(name: string, value: NodeAttribute): AttributeProto {
  if ('int' in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value.int) });
  if ('ints' in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: value.ints.map(BigInt) });
  if ('float' in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: value.float });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.TENSOR, t: value.tensor });
}

export function makeNode(opType: string, inputs: readonly string[], outputs: readonly string[], name: string, attrs: Record<string, NodeAttribute> = {}): NodeProto {
  return create(NodeProtoSchema, {
    name,
    opType,
    input: [...inputs],
    output: [...outputs],
    attribute: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
  });
}

export function castNode(input: string, output: string, to: number): NodeProto {
  return makeNode('Cast', [input], [output], `Cast_${output}`, { to: { int: to } });
}

/** Names read by nodes of the graphs a node carries (If/Loop/Scan bodies), which can reach outer tensors. */
export function subgraphReads(node: NodeProto): string[] {
  const names: string[] = [];
  const visit = (g: GraphProto): void => {
    for (const n of g.node) {
      names.push(...n.input.filter((x) => x !== ''));
      for (const a of n.attribute) [a.g, ...a.graphs].forEach((sub) => sub && visit(sub));
    }
  };
  for (const a of node.attribute) [a.g, ...a.graphs].forEach((sub) => sub && visit(sub));
  return names;
}

/** Hands out tensor names unused anywhere in the graph, so inserted nodes never collide with the model's own. */
export function nameAllocator(graph: GraphProto): (base: string) => string {
  const taken = new Set<string>([...graph.input, ...graph.output, ...graph.valueInfo].map((v) => v.name));
  for (const t of graph.initializer) taken.add(t.name);
  for (const n of graph.node) {
    n.input.forEach((x) => taken.add(x));
    n.output.forEach((x) => taken.add(x));
    subgraphReads(n).forEach((x) => taken.add(x));
  }
  return (base) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
}
