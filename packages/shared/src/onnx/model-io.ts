import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataType, type ModelProto, type ValueInfoProto } from 'onnx-buf';
import type { Datatype, TensorSpec } from '../inference.js';

export type { ModelProto } from 'onnx-buf';

/** ONNX element types and their Open Inference Protocol names. */
export const ONNX_TO_DATATYPE: Partial<Record<number, Datatype>> = {
  [TensorProto_DataType.FLOAT]: 'FP32',
  [TensorProto_DataType.DOUBLE]: 'FP64',
  [TensorProto_DataType.FLOAT16]: 'FP16',
  [TensorProto_DataType.INT8]: 'INT8',
  [TensorProto_DataType.UINT8]: 'UINT8',
  [TensorProto_DataType.INT16]: 'INT16',
  [TensorProto_DataType.UINT16]: 'UINT16',
  [TensorProto_DataType.INT32]: 'INT32',
  [TensorProto_DataType.UINT32]: 'UINT32',
  [TensorProto_DataType.INT64]: 'INT64',
  [TensorProto_DataType.UINT64]: 'UINT64',
  [TensorProto_DataType.BOOL]: 'BOOL',
};

export const DATATYPE_TO_ONNX = Object.fromEntries(
  Object.entries(ONNX_TO_DATATYPE).map(([k, v]) => [v, Number(k)]),
) as Record<Datatype, number>;

/** Decodes ONNX bytes; throws with a message naming why the bytes are not a model. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  if (bytes.byteLength === 0) throw new Error('the file is empty, expected an ONNX model');
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (err) {
    throw new Error(`not an ONNX model: protobuf decoding failed (${(err as Error).message})`);
  }
  if (!model.graph || model.graph.node.length === 0) throw new Error('not an ONNX model: it has no graph nodes');
  if (model.opsetImport.length === 0) throw new Error('not an ONNX model: it imports no operator set');
  return model;
}

export function encodeModel(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model);
}

function toSpec(v: ValueInfoProto): TensorSpec {
  const type = v.type?.value;
  if (type?.case !== 'tensorType') throw new Error(`value ${v.name} is not a tensor`);
  const datatype = ONNX_TO_DATATYPE[type.value.elemType];
  if (!datatype) throw new Error(`value ${v.name} has unsupported element type ${type.value.elemType}`);
  const shape = (type.value.shape?.dim ?? []).map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : -1));
  return { name: v.name, datatype, shape };
}

/** The graph's real inputs (not initializers) and outputs as tensor specs. */
export function readSignature(model: ModelProto): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const initializers = new Set(graph.initializer.map((t) => t.name));
  return {
    inputs: graph.input.filter((i) => !initializers.has(i.name)).map(toSpec),
    outputs: graph.output.map(toSpec),
  };
}
