import { DATATYPES, elementCount, isDatatype, typedArrayView, type Datatype, type TypedArray, type TypedTensor } from '@edgefleet/shared';
import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import type { CalibrationSet } from './calibration-data.js';

/**
 * Stored calibration file. Layout: the 8 ASCII bytes `EFCALIB1`, a uint32 LE header length, a UTF-8
 * JSON header `{samples, inputs: [{name, datatype, shape}], labels: boolean}`, then each input's raw
 * little-endian bytes in header order and, with labels, `samples` INT32 labels; every part starts on
 * an 8-byte boundary (so tensors are viewed in place). golden-file.ts's own format bounds each tensor
 * to a golden vector's size, which a calibration set may exceed.
 */
const MAGIC = 'EFCALIB1';
const ALIGN = 8;
const padded = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
const checkHeader = Compile(
  Type.Object({
    samples: Type.Integer({ minimum: 1 }),
    inputs: Type.Array(Type.Object({ name: Type.String(), datatype: Type.String(), shape: Type.Array(Type.Integer({ minimum: 0 })) })),
    labels: Type.Boolean(),
  }),
);

export function encodeCalibrationFile(set: CalibrationSet): Uint8Array {
  const header = Buffer.from(
    JSON.stringify({ samples: set.samples, inputs: set.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })), labels: set.labels !== undefined }),
    'utf8',
  );
  const parts: TypedArray[] = [...set.inputs.map((t) => t.data), ...(set.labels ? [set.labels] : [])];
  let size = padded(MAGIC.length + 4 + header.byteLength);
  for (const p of parts) size += padded(p.byteLength);
  const out = Buffer.alloc(size);
  out.write(MAGIC, 0, 'ascii');
  out.writeUInt32LE(header.byteLength, MAGIC.length);
  header.copy(out, MAGIC.length + 4);
  let offset = padded(MAGIC.length + 4 + header.byteLength);
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), offset);
    offset += padded(p.byteLength);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Reads a stored calibration file; each tensor gets its own buffer (so each can be transferred to a worker). */
export function decodeCalibrationFile(bytes: Uint8Array): CalibrationSet {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.byteLength < MAGIC.length + 4 || buf.toString('ascii', 0, MAGIC.length) !== MAGIC) throw new Error(`calibration file does not start with ${MAGIC}`);
  const headerLength = buf.readUInt32LE(MAGIC.length);
  if (MAGIC.length + 4 + headerLength > buf.byteLength) throw new Error(`calibration file header of ${headerLength} bytes does not fit the file's ${buf.byteLength} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength));
  } catch (err) {
    throw new Error(`calibration file header is not JSON: ${(err as Error).message}`);
  }
  if (!checkHeader.Check(header)) throw new Error(`calibration file header does not match its schema at "${checkHeader.Errors(header)[0]?.instancePath ?? ''}"`);
  let offset = padded(MAGIC.length + 4 + headerLength);
  const take = (datatype: Datatype, count: number, what: string): TypedArray => {
    const length = count * DATATYPES[datatype].bytes;
    if (offset + length > buf.byteLength) throw new Error(`calibration file: ${what} needs ${length} bytes at ${offset}; the file has ${buf.byteLength}`);
    const copy = new Uint8Array(length);
    copy.set(buf.subarray(offset, offset + length));
    offset += padded(length);
    return typedArrayView(datatype, copy.buffer, 0, count);
  };
  const inputs = header.inputs.map((h): TypedTensor => {
    if (!isDatatype(h.datatype)) throw new Error(`calibration file: input ${h.name} has unsupported datatype ${h.datatype}`);
    return { name: h.name, datatype: h.datatype, shape: h.shape, data: take(h.datatype, elementCount(h.shape), `input ${h.name}`) };
  });
  const labels = header.labels ? (take('INT32', header.samples, 'labels') as Int32Array) : undefined;
  if (offset !== buf.byteLength) throw new Error(`calibration file has ${buf.byteLength} bytes, its header describes ${offset}`);
  return { samples: header.samples, inputs, ...(labels ? { labels } : {}) };
}
