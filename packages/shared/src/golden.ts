import { DATATYPES, elementCount, isDatatype, type Datatype, type TensorSpec } from './inference.js';
import type { EncodedTensor, Tolerance } from './manifest.js';

/** A decoded tensor: values as numbers (int64 narrowed; golden inputs are small). */
export interface NumericTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  values: number[];
}

/** mulberry32: tiny, fast, good enough for reproducible test inputs. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLOAT_TYPES: ReadonlySet<Datatype> = new Set(['FP32', 'FP64', 'FP16']);

/** The default golden input: seeded values in [-1, 1) for floats, 0..9 for integers, 1 per dynamic dim. */
export function goldenInputs(specs: readonly TensorSpec[], seed = 42): NumericTensor[] {
  const rand = seededRandom(seed);
  return specs.map((spec) => {
    if (!isDatatype(spec.datatype)) throw new Error(`input ${spec.name}: unsupported datatype ${spec.datatype}`);
    const shape = spec.shape.map((d) => (d < 0 ? 1 : d));
    const n = elementCount(shape);
    const values = new Array<number>(n);
    const isFloat = FLOAT_TYPES.has(spec.datatype);
    for (let i = 0; i < n; i++) values[i] = isFloat ? rand() * 2 - 1 : spec.datatype === 'BOOL' ? (rand() < 0.5 ? 0 : 1) : Math.floor(rand() * 10);
    return { name: spec.name, datatype: spec.datatype, shape, values };
  });
}

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Typed array for a datatype; FP16 travels as raw Uint16 bits. */
export function typedArrayFor(datatype: Datatype, values: ArrayLike<number>): TypedArray {
  switch (datatype) {
    case 'FP32': return Float32Array.from(values);
    case 'FP64': return Float64Array.from(values);
    case 'INT8': return Int8Array.from(values);
    case 'UINT8': case 'BOOL': return Uint8Array.from(values);
    case 'INT16': return Int16Array.from(values);
    case 'UINT16': case 'FP16': return Uint16Array.from(values);
    case 'INT32': return Int32Array.from(values);
    case 'UINT32': return Uint32Array.from(values);
    case 'INT64': return BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case 'UINT64': return BigUint64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
  }
}

const ARRAY_TYPES: Record<Datatype, new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArray> = {
  FP32: Float32Array,
  FP64: Float64Array,
  FP16: Uint16Array,
  INT8: Int8Array,
  UINT8: Uint8Array,
  BOOL: Uint8Array,
  INT16: Int16Array,
  UINT16: Uint16Array,
  INT32: Int32Array,
  UINT32: Uint32Array,
  INT64: BigInt64Array,
  UINT64: BigUint64Array,
};

/** The datatype's typed array over `length` elements of `buffer` from `byteOffset` (no copy; must be aligned). */
export function typedArrayView(datatype: Datatype, buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray {
  return new ARRAY_TYPES[datatype](buffer, byteOffset, length);
}

/** Raw little-endian bytes as the datatype's typed array (copies, so any alignment works). */
export function typedArrayFromBytes(datatype: Datatype, bytes: Uint8Array): TypedArray {
  return typedArrayView(datatype, new Uint8Array(bytes).buffer, 0, bytes.byteLength / DATATYPES[datatype].bytes);
}

export function encodeTensor(t: NumericTensor): EncodedTensor {
  const arr = typedArrayFor(t.datatype, t.values);
  return { name: t.name, datatype: t.datatype, shape: t.shape, b64: Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength).toString('base64') };
}

/** An encoded tensor's values as its typed array (int64 stays exact), after checking the byte count against the shape. */
export function decodeTensorData(t: EncodedTensor): { datatype: Datatype; data: TypedArray } {
  if (!isDatatype(t.datatype)) throw new Error(`tensor ${t.name}: unsupported datatype ${t.datatype}`);
  const bytes = Buffer.from(t.b64, 'base64');
  const expected = elementCount(t.shape) * DATATYPES[t.datatype].bytes;
  if (bytes.byteLength !== expected) {
    throw new Error(`tensor ${t.name}: ${bytes.byteLength} bytes of data, expected ${expected} for shape [${t.shape}] ${t.datatype}`);
  }
  return { datatype: t.datatype, data: typedArrayFromBytes(t.datatype, bytes) };
}

export function decodeTensor(t: EncodedTensor): NumericTensor {
  const { datatype, data } = decodeTensorData(t);
  return { name: t.name, datatype, shape: t.shape, values: Array.from(data as ArrayLike<number | bigint>, Number) };
}

export interface GoldenComparison {
  ok: boolean;
  /** Largest |a−b|/(1+|b|) seen over all outputs. */
  worst: number;
  reason?: string;
}

/** Compares actual outputs with the golden ones under max |a−b| ≤ atol·(1+|b|). */
export function compareWithGolden(
  actual: readonly NumericTensor[],
  expected: readonly NumericTensor[],
  tolerance: Tolerance,
): GoldenComparison {
  let worst = 0;
  for (const exp of expected) {
    const act = actual.find((a) => a.name === exp.name);
    if (!act) return { ok: false, worst: Infinity, reason: `output ${exp.name} is missing` };
    if (act.values.length !== exp.values.length) {
      return { ok: false, worst: Infinity, reason: `output ${exp.name} has ${act.values.length} values, golden has ${exp.values.length}` };
    }
    for (let i = 0; i < exp.values.length; i++) {
      const b = exp.values[i]!;
      const a = act.values[i]!;
      const err = Math.abs(a - b) / (1 + Math.abs(b));
      if (!(err <= tolerance.atol)) {
        return { ok: false, worst: Number.isNaN(err) ? Infinity : err, reason: `output ${exp.name}[${i}] is ${a}, golden ${b} (tolerance ${tolerance.atol}·(1+|b|))` };
      }
      if (err > worst) worst = err;
    }
  }
  return { ok: true, worst };
}
