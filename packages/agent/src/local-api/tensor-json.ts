import { EdgefleetError, type Datatype } from '@edgefleet/shared';
import { fromHalf, toHalf } from '../inference/half-float.js';
import type { TensorData } from '../inference/types.js';

// JSON tensor data ↔ typed arrays for the Open Inference Protocol's `data` field. Pure functions.

function bad(message: string): never {
  throw new EdgefleetError('INVALID_TENSOR', message);
}

/**
 * Flattens nested `data` arrays (row-major), as the protocol allows either form, at most as deep as
 * the input's shape has dimensions. Iterative: `flat(Infinity)` recurses, and a request nesting its
 * data 10,000 deep overflowed the stack (a 500 instead of the answer naming the problem).
 */
export function flattenData(name: string, datatype: Datatype, shape: readonly number[], data: readonly unknown[]): unknown[] {
  if (!data.some(Array.isArray)) return data as unknown[];
  const maxDepth = Math.max(1, shape.length);
  const out: unknown[] = [];
  const stack: Array<{ items: readonly unknown[]; next: number }> = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.next++];
    if (!Array.isArray(item)) out.push(item);
    else if (stack.length < maxDepth) stack.push({ items: item, next: 0 });
    else bad(`input "${name}" (${datatype}): data is nested deeper than the ${shape.length} dimensions of its shape [${shape.join(',')}]`);
  }
  return out;
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
const INT_RANGES: Record<keyof typeof INT_ARRAYS | 'INT64' | 'UINT64', [number, number]> = {
  INT8: [-128, 127],
  UINT8: [0, 255],
  INT16: [-32768, 32767],
  UINT16: [0, 65535],
  INT32: [-2147483648, 2147483647],
  UINT32: [0, 4294967295],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

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
  const [min, max] = INT_RANGES[datatype];
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
