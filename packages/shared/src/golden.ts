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

/**
 * Golden inputs hold at most this many elements over all inputs (64 MB as FP32), and each golden
 * output at most as many. The bound is checked on the declared shapes before anything is allocated:
 * onnxruntime's buffers live outside the V8 heap, so no worker heap limit would stop a model that
 * declares a [1, 300000000] input.
 */
export const MAX_GOLDEN_ELEMENTS = 2 ** 24;

/**
 * Golden tensors of at most this many bytes in all travel inline in the signed manifest; past it, all
 * golden tensors go in one artifact referenced by sha256 (golden-file.ts), so a manifest and every
 * device's `desired` document stay small whatever the model's input size or number of inputs.
 */
export const GOLDEN_INLINE_MAX_BYTES = 64 * 1024;

/** A tensor with its values in the datatype's typed array (int64 exact, FP16 as raw bits). */
export interface TypedTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TypedArray;
}

/** The shape the golden input takes for a declared one: 1 for each dynamic dimension. */
function goldenShape(spec: TensorSpec): number[] {
  return spec.shape.map((d) => (d < 0 ? 1 : d));
}

/**
 * Throws naming the input when the default golden inputs of these specs would exceed
 * MAX_GOLDEN_ELEMENTS (or use an unsupported datatype). Call it before allocating anything.
 */
export function checkGoldenInputSize(specs: readonly TensorSpec[], max = MAX_GOLDEN_ELEMENTS): void {
  let total = 0;
  for (const spec of specs) {
    if (!isDatatype(spec.datatype)) throw new Error(`input ${spec.name}: unsupported datatype ${spec.datatype}`);
    const shape = goldenShape(spec);
    const n = elementCount(shape);
    total += n;
    if (!Number.isSafeInteger(n) || total > max) {
      throw new Error(
        `input ${spec.name} of shape [${spec.shape}] ${spec.datatype} needs ${n} elements for its golden vector; ` +
          `golden inputs are limited to ${max} elements in all (${(max * 4) / 2 ** 20} MB as FP32)`,
      );
    }
  }
}

/** Throws naming the tensor when one golden tensor (a computed output, or one read from a golden file) exceeds MAX_GOLDEN_ELEMENTS. */
export function checkGoldenTensorSize(t: { name: string; shape: readonly number[] }, role = 'output', max = MAX_GOLDEN_ELEMENTS): void {
  const n = elementCount(t.shape);
  if (!Number.isSafeInteger(n) || n > max) {
    throw new Error(`golden ${role} ${t.name} of shape [${t.shape}] has ${n} elements; a golden tensor is limited to ${max} elements`);
  }
}

/**
 * The default golden inputs as typed arrays, filled directly (no intermediate number[]): seeded
 * values in [-1, 1) for floats, 0..9 for integers, 0/1 for BOOL, 1 per dynamic dim. Checks the size
 * bound first.
 */
export function goldenInputTensors(specs: readonly TensorSpec[], seed = 42): TypedTensor[] {
  checkGoldenInputSize(specs);
  const rand = seededRandom(seed);
  return specs.map((spec) => {
    const datatype = spec.datatype as Datatype;
    const shape = goldenShape(spec);
    const n = elementCount(shape);
    const data = typedArrayView(datatype, new ArrayBuffer(n * DATATYPES[datatype].bytes), 0, n);
    const isFloat = FLOAT_TYPES.has(datatype);
    const isBig = datatype === 'INT64' || datatype === 'UINT64';
    for (let i = 0; i < n; i++) {
      const v = isFloat ? rand() * 2 - 1 : datatype === 'BOOL' ? (rand() < 0.5 ? 0 : 1) : Math.floor(rand() * 10);
      // The same conversions as TypedArray.from(values), so both forms of the golden input agree.
      if (isBig) (data as BigInt64Array)[i] = BigInt(Math.trunc(v));
      else (data as Float32Array)[i] = v;
    }
    return { name: spec.name, datatype, shape, data };
  });
}

/** The default golden input as numbers (see goldenInputTensors). */
export function goldenInputs(specs: readonly TensorSpec[], seed = 42): NumericTensor[] {
  return goldenInputTensors(specs, seed).map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, values: Array.from(t.data as ArrayLike<number | bigint>, Number) }));
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
  return encodeTypedTensor({ name: t.name, datatype: t.datatype, shape: t.shape, data: typedArrayFor(t.datatype, t.values) });
}

export function encodeTypedTensor(t: TypedTensor): EncodedTensor {
  return { name: t.name, datatype: t.datatype, shape: t.shape, b64: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') };
}

/**
 * True when the tensors are too large together to travel inline in a manifest (GOLDEN_INLINE_MAX_BYTES):
 * the sum counts, since a model with many inputs, each small, would otherwise inline megabytes.
 */
export function needsGoldenFile(tensors: readonly TypedTensor[]): boolean {
  return tensors.reduce((sum, t) => sum + t.data.byteLength, 0) > GOLDEN_INLINE_MAX_BYTES;
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

export function decodeTypedTensor(t: EncodedTensor): TypedTensor {
  const { datatype, data } = decodeTensorData(t);
  return { name: t.name, datatype, shape: [...t.shape], data };
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
  return compareValues(actual, expected, tolerance);
}

/** compareWithGolden over typed arrays: no number[] copies of image-sized outputs. */
export function compareTypedWithGolden(actual: readonly TypedTensor[], expected: readonly TypedTensor[], tolerance: Tolerance): GoldenComparison {
  return compareValues(
    actual.map((t) => ({ name: t.name, values: t.data as ArrayLike<number | bigint> })),
    expected.map((t) => ({ name: t.name, values: t.data as ArrayLike<number | bigint> })),
    tolerance,
  );
}

interface Values {
  name: string;
  values: ArrayLike<number | bigint>;
}

function compareValues(actual: readonly Values[], expected: readonly Values[], tolerance: Tolerance): GoldenComparison {
  let worst = 0;
  for (const exp of expected) {
    const act = actual.find((a) => a.name === exp.name);
    if (!act) return { ok: false, worst: Infinity, reason: `output ${exp.name} is missing` };
    if (act.values.length !== exp.values.length) {
      return { ok: false, worst: Infinity, reason: `output ${exp.name} has ${act.values.length} values, golden has ${exp.values.length}` };
    }
    for (let i = 0; i < exp.values.length; i++) {
      const b = Number(exp.values[i]!);
      const a = Number(act.values[i]!);
      const err = Math.abs(a - b) / (1 + Math.abs(b));
      if (!(err <= tolerance.atol)) {
        return { ok: false, worst: Number.isNaN(err) ? Infinity : err, reason: `output ${exp.name}[${i}] is ${a}, golden ${b} (tolerance ${tolerance.atol}·(1+|b|))` };
      }
      if (err > worst) worst = err;
    }
  }
  return { ok: true, worst };
}
