import { DATATYPES, elementCount, encodeTensorFile, isDatatype, readTensorFile, typedArrayView, type Datatype, type TypedArray, type TypedTensor } from '@edgefleet/shared';
import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import type { CalibrationSet } from './calibration-data.js';

/**
 * Stored calibration file: a tensor file (shared's tensor-file.ts) with magic `EFCALIB1`, a header
 * `{samples, inputs: [{name, datatype, shape}], labels: boolean}`, then each input's bytes in header
 * order and, with labels, `samples` INT32 labels. Not a golden file: golden-file.ts bounds each
 * tensor to a golden vector's size, which a calibration set may exceed.
 */
const MAGIC = 'EFCALIB1';
const checkHeader = Compile(
  Type.Object({
    samples: Type.Integer({ minimum: 1 }),
    inputs: Type.Array(Type.Object({ name: Type.String(), datatype: Type.String(), shape: Type.Array(Type.Integer({ minimum: 0 })) })),
    labels: Type.Boolean(),
  }),
);

export function encodeCalibrationFile(set: CalibrationSet): Uint8Array {
  const header = { samples: set.samples, inputs: set.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })), labels: set.labels !== undefined };
  const parts: TypedArray[] = [...set.inputs.map((t) => t.data), ...(set.labels ? [set.labels] : [])];
  return encodeTensorFile(MAGIC, header, parts);
}

/** Reads a stored calibration file; each tensor gets its own buffer (so each can be transferred to a worker). */
export function decodeCalibrationFile(bytes: Uint8Array): CalibrationSet {
  const file = readTensorFile(bytes, MAGIC, 'calibration file');
  const header = file.header;
  if (!checkHeader.Check(header)) throw new Error(`calibration file header does not match its schema at "${checkHeader.Errors(header)[0]?.instancePath ?? ''}"`);
  const take = (datatype: Datatype, count: number, what: string): TypedArray => {
    const length = count * DATATYPES[datatype].bytes;
    const copy = new Uint8Array(length);
    copy.set(file.take(length, (offset, size) => `calibration file: ${what} needs ${length} bytes at ${offset}; the file has ${size}`));
    return typedArrayView(datatype, copy.buffer, 0, count);
  };
  const inputs = header.inputs.map((h): TypedTensor => {
    if (!isDatatype(h.datatype)) throw new Error(`calibration file: input ${h.name} has unsupported datatype ${h.datatype}`);
    return { name: h.name, datatype: h.datatype, shape: h.shape, data: take(h.datatype, elementCount(h.shape), `input ${h.name}`) };
  });
  const labels = header.labels ? (take('INT32', header.samples, 'labels') as Int32Array) : undefined;
  file.end();
  return { samples: header.samples, inputs, ...(labels ? { labels } : {}) };
}
