import { EdgefleetError, flattenTensorData, INTEGER_RANGES, type Datatype } from '@edgefleet/shared';
import { fromHalf, toHalf } from '../inference/half-float.js';
import type { TensorData } from '../inference/types.js';

// JSON tensor data ↔ typed arrays for the Open Inference Protocol's `data` field. Pure functions.

function bad(message: string): never {
  throw new EdgefleetError('INVALID_TENSOR', message);
}

/**
 * Flattens nested `data` arrays (row-major), as the protocol allows either form, at most as deep as
 * the input's shape has dimensions (iterative: see flattenTensorData).
 */
export function flattenData(name: string, datatype: Datatype, shape: readonly number[], data: readonly unknown[]): unknown[] {
  return flattenTensorData(shape, data) ?? bad(`input "${name}" (${datatype}): data is nested deeper than the ${shape.length} dimensions of its shape [${shape.join(',')}]`);
}

/** A value for an error message: short, and safe for any depth (JSON.stringify recurses). */
function preview(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value !== null && typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

const FLOAT_ARRAYS = { FP32: Float32Array, FP64: Float64Array } as const;
const INT_ARRAYS = {
  INT8: Int8Array,
  UINT8: Uint8Array,
  INT16: Int16Array,
  UINT16: Uint16Array,
  INT32: Int32Array,
  UINT32: Uint32Array,
} as const;
/** Converts flat JSON values to the datatype's typed array, rejecting values the type cannot hold. */
export function jsonToTypedArray(name: string, datatype: Datatype, values: readonly unknown[]): TensorData {
  const n = values.length;
  const where = (i: number) => `input "${name}" (${datatype}): data[${i}] = ${preview(values[i])}`;
  if (datatype === 'FP32' || datatype === 'FP64' || datatype === 'FP16') {
    const out = datatype === 'FP16' ? new Uint16Array(n) : new FLOAT_ARRAYS[datatype](n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'number') bad(`${where(i)} is not a number`);
      out[i] = datatype === 'FP16' ? toHalf(v) : v;
    }
    return out;
  }
  if (datatype === 'BOOL') {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v === 'boolean') out[i] = v ? 1 : 0;
      else if (v === 0 || v === 1) out[i] = v;
      else bad(`${where(i)} is not a boolean`);
    }
    return out;
  }
  const [min, max] = INTEGER_RANGES[datatype];
  const out = datatype === 'INT64' ? new BigInt64Array(n) : datatype === 'UINT64' ? new BigUint64Array(n) : new INT_ARRAYS[datatype](n);
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${where(i)} is not an integer in [${min}, ${max}]`);
    out[i] = (big ? BigInt(v) : v) as never;
  }
  return out;
}

/** Typed array → JSON values: 64-bit integers as numbers, BOOL as booleans, FP16 as floats. */
export function typedArrayToJson(datatype: Datatype, data: TensorData): Array<number | boolean> {
  if (datatype === 'BOOL') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (datatype === 'FP16') return Array.from(data as Uint16Array, fromHalf);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, Number);
  return Array.from(data as ArrayLike<number>);
}
