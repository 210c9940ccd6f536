import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { checkGoldenTensorSize, typedArrayFromBytes, type TypedTensor } from './golden.js';
import { DATATYPES, elementCount, isDatatype } from './inference.js';

/**
 * A golden file holds the golden tensors of a model whose inputs or outputs are too large for the
 * manifest. Layout: the 8 ASCII bytes `EFGOLD01`, a uint32 LE header length, a UTF-8 JSON header
 * `{inputs, outputs}` of `{name, datatype, shape}`, then each tensor's raw little-endian bytes in
 * header order, every part starting on an 8-byte boundary. Binary rather than base64 JSON: a
 * [1,3,640,640] FP32 input is 4.9 MB here and 6.6 MB as base64.
 */
const MAGIC = 'EFGOLD01';
const ALIGN = 8;
/** Far above any real header (a few hundred bytes per tensor); bounds what a decoder parses. */
const MAX_HEADER_BYTES = 1 << 20;

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

const padded = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export function encodeGoldenFile(golden: GoldenTensors): Uint8Array {
  const describe = (t: TypedTensor) => ({ name: t.name, datatype: t.datatype, shape: t.shape });
  const header = Buffer.from(JSON.stringify({ inputs: golden.inputs.map(describe), outputs: golden.outputs.map(describe) }), 'utf8');
  const tensors = [...golden.inputs, ...golden.outputs];
  let size = padded(MAGIC.length + 4 + header.byteLength);
  for (const t of tensors) size += padded(t.data.byteLength);
  const out = Buffer.alloc(size);
  out.write(MAGIC, 0, 'ascii');
  out.writeUInt32LE(header.byteLength, MAGIC.length);
  header.copy(out, MAGIC.length + 4);
  let offset = padded(MAGIC.length + 4 + header.byteLength);
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), offset);
    offset += padded(t.data.byteLength);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Parses a golden file; throws naming what does not fit (the digest was checked by the caller, this guards the layout). */
export function decodeGoldenFile(bytes: Uint8Array): GoldenTensors {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.byteLength < MAGIC.length + 4 || buf.toString('ascii', 0, MAGIC.length) !== MAGIC) {
    throw new Error(`golden file does not start with ${MAGIC}`);
  }
  const headerLength = buf.readUInt32LE(MAGIC.length);
  if (headerLength > MAX_HEADER_BYTES || MAGIC.length + 4 + headerLength > buf.byteLength) {
    throw new Error(`golden file header of ${headerLength} bytes does not fit the file's ${buf.byteLength} bytes (at most ${MAX_HEADER_BYTES})`);
  }
  let header: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength));
  } catch (err) {
    throw new Error(`golden file header is not JSON: ${(err as Error).message}`);
  }
  if (!headerValidator.Check(header)) {
    const first = headerValidator.Errors(header)[0];
    throw new Error(`golden file header does not match its schema: ${first?.instancePath ?? ''} ${first?.message ?? ''}`);
  }
  let offset = padded(MAGIC.length + 4 + headerLength);
  const read = (h: { name: string; datatype: string; shape: number[] }): TypedTensor => {
    if (!isDatatype(h.datatype)) throw new Error(`golden tensor ${h.name}: unsupported datatype ${h.datatype}`);
    checkGoldenTensorSize(h, 'tensor');
    const length = elementCount(h.shape) * DATATYPES[h.datatype].bytes;
    if (offset + length > buf.byteLength) {
      throw new Error(`golden tensor ${h.name} of shape [${h.shape}] ${h.datatype} needs ${length} bytes at ${offset}; the file has ${buf.byteLength}`);
    }
    const data = typedArrayFromBytes(h.datatype, buf.subarray(offset, offset + length));
    offset += padded(length);
    return { name: h.name, datatype: h.datatype, shape: h.shape, data };
  };
  const golden = { inputs: header.inputs.map(read), outputs: header.outputs.map(read) };
  if (offset !== buf.byteLength) throw new Error(`golden file has ${buf.byteLength} bytes, its header describes ${offset}`);
  return golden;
}
