import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { checkGoldenTensorSize, typedArrayFromBytes, type TypedTensor } from './golden.js';
import { DATATYPES, elementCount, isDatatype } from './inference.js';
import { encodeTensorFile, readTensorFile } from './tensor-file.js';

/**
 * A golden file holds the golden tensors of a model whose inputs or outputs are too large for the
 * manifest: a tensor file (tensor-file.ts) with magic `EFGOLD01`, a header `{inputs, outputs}` of
 * `{name, datatype, shape}`, then each tensor's bytes in header order. Binary rather than base64 JSON: a
 * [1,3,640,640] FP32 input is 4.9 MB here and 6.6 MB as base64.
 */
const MAGIC = 'EFGOLD01';

const TensorHeader = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 1024 }),
    datatype: Type.String(),
    shape: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 16 }),
  },
  { additionalProperties: false },
);
const Header = Type.Object(
  { inputs: Type.Array(TensorHeader, { maxItems: 256 }), outputs: Type.Array(TensorHeader, { maxItems: 256 }) },
  { additionalProperties: false },
);
const headerValidator = Compile(Header);

export interface GoldenTensors {
  inputs: TypedTensor[];
  outputs: TypedTensor[];
}

export function encodeGoldenFile(golden: GoldenTensors): Uint8Array {
  const describe = (t: TypedTensor) => ({ name: t.name, datatype: t.datatype, shape: t.shape });
  const header = { inputs: golden.inputs.map(describe), outputs: golden.outputs.map(describe) };
  return encodeTensorFile(MAGIC, header, [...golden.inputs, ...golden.outputs].map((t) => t.data));
}

/** Parses a golden file; throws naming what does not fit (the digest was checked by the caller, this guards the layout). */
export function decodeGoldenFile(bytes: Uint8Array): GoldenTensors {
  const file = readTensorFile(bytes, MAGIC, 'golden file');
  const header = file.header;
  if (!headerValidator.Check(header)) {
    const first = headerValidator.Errors(header)[0];
    throw new Error(`golden file header does not match its schema: ${first?.instancePath ?? ''} ${first?.message ?? ''}`);
  }
  const read = (h: { name: string; datatype: string; shape: number[] }): TypedTensor => {
    if (!isDatatype(h.datatype)) throw new Error(`golden tensor ${h.name}: unsupported datatype ${h.datatype}`);
    checkGoldenTensorSize(h, 'tensor');
    const length = elementCount(h.shape) * DATATYPES[h.datatype].bytes;
    const part = file.take(length, (offset, size) => `golden tensor ${h.name} of shape [${h.shape}] ${h.datatype} needs ${length} bytes at ${offset}; the file has ${size}`);
    const data = typedArrayFromBytes(h.datatype, part);
    return { name: h.name, datatype: h.datatype, shape: h.shape, data };
  };
  const golden = { inputs: header.inputs.map(read), outputs: header.outputs.map(read) };
  file.end();
  return golden;
}
