import {
  DATATYPES,
  EdgefleetError,
  elementCount,
  flattenTensorData,
  INTEGER_RANGES,
  InferRequest,
  isDatatype,
  splitBinaryBody,
  typedArrayView,
  type Datatype,
  type InferInput,
  type TensorSpec,
  type TypedArray,
  type TypedTensor,
} from '@edgefleet/shared';
import { Compile } from 'typebox/compile';

/**
 * Calibration data: an Open Inference Protocol request body whose tensors hold N samples along dim 0,
 * parsed and checked against the model's inputs (pure: no HTTP, no disk), and the binary file format
 * it is stored in. Non-finite floats (NaN, ±Infinity) are refused: one of them would make every
 * min/max activation range, and so every int8-static scale, meaningless.
 */

/** The tensor that carries one class index per sample; not a model input. */
export const LABELS_TENSOR = 'labels';
export const MAX_CALIBRATION_SAMPLES = 10_000;
/** JSON costs a synchronous parse on the event loop (~0.5 s for 50 MB here); larger sets use the binary form. */
export const MAX_CALIBRATION_JSON_BYTES = 32 * 1024 * 1024;
/**
 * The JSON header of the binary form names and shapes the tensors; their numbers follow it as bytes.
 * Capped so the binary form's larger body limit cannot carry a JSON parse of hundreds of MB.
 */
export const MAX_CALIBRATION_BINARY_HEADER_BYTES = 1024 * 1024;

export interface CalibrationSet {
  samples: number;
  /** One tensor per model input, in the model's input order; dim 0 is the sample. */
  inputs: TypedTensor[];
  /** One class index per sample. */
  labels?: Int32Array;
}

const checkRequest = Compile(InferRequest);

function bad(message: string): never {
  throw new EdgefleetError('BAD_REQUEST', message);
}

const describe = (s: { datatype: string; shape: readonly number[] }) => `${s.datatype} [${s.shape.join(',')}]`;

/** The JSON header (and the binary tail) of an upload body; `what` names the upload in errors. */
function parseEnvelope(body: Uint8Array, headerLength: string | undefined, what: string): { request: InferRequest; tail: Uint8Array } {
  let parsed: unknown;
  let tail: Uint8Array = new Uint8Array(0);
  if (headerLength !== undefined) {
    if (!/^\d+$/.test(headerLength)) bad(`Inference-Header-Content-Length must be a non-negative integer, got "${headerLength}"`);
    if (Number(headerLength) > MAX_CALIBRATION_BINARY_HEADER_BYTES) {
      bad(`Inference-Header-Content-Length ${headerLength} is over the ${MAX_CALIBRATION_BINARY_HEADER_BYTES}-byte limit of a binary ${what} body's JSON header: tensors' numbers go after the header as bytes (parameters.binary_data_size), not in it`);
    }
    try {
      ({ header: parsed, tail } = splitBinaryBody(body, Number(headerLength)));
    } catch (err) {
      bad(`${what} body: ${(err as Error).message}`);
    }
  } else {
    try {
      parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    } catch (err) {
      bad(`${what} body is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!checkRequest.Check(parsed)) {
    const first = checkRequest.Errors(parsed)[0];
    bad(`${what} body is not an inference request: at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`);
  }
  if (headerLength !== undefined) {
    const inline = parsed.inputs.find((input) => input.data !== undefined);
    if (inline) bad(`tensor "${inline.name}" has JSON data in a binary ${what} body's header: in the binary form every tensor's bytes follow the header (parameters.binary_data_size); send JSON data as application/json`);
  }
  return { request: parsed, tail };
}

/** Reads binary_data_size tensors in header order from the tail. */
function binaryReader(tail: Uint8Array) {
  let offset = 0;
  return {
    take(input: InferInput, datatype: Datatype, count: number): TypedArray | undefined {
      const size = input.parameters?.['binary_data_size'];
      if (size === undefined) return undefined;
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) bad(`tensor "${input.name}": binary_data_size must be a non-negative integer`);
      if (input.data !== undefined) bad(`tensor "${input.name}" has both binary_data_size and data`);
      const expected = count * DATATYPES[datatype].bytes;
      if (size !== expected) bad(`tensor "${input.name}" has ${size} bytes of binary data, expected ${expected} for ${describe({ datatype, shape: input.shape })}`);
      if (offset + size > tail.byteLength) {
        bad(`tensor "${input.name}" needs ${size} bytes at offset ${offset} of the binary data, which has only ${tail.byteLength} bytes (truncated)`);
      }
      // A copy into its own buffer: aligned for the element size, and transferable to the build worker alone.
      const copy = new Uint8Array(size);
      copy.set(tail.subarray(offset, offset + size));
      offset += size;
      return typedArrayView(datatype, copy.buffer, 0, count);
    },
    finish(): void {
      if (offset !== tail.byteLength) bad(`the binary data has ${tail.byteLength - offset} bytes beyond the tensors' binary_data_size`);
    },
  };
}

/** Flattens nested JSON `data` (row-major) without recursion, at most as deep as the shape. */
function flatten(name: string, shape: readonly number[], data: readonly unknown[]): unknown[] {
  return flattenTensorData(shape, data) ?? bad(`tensor "${name}": data is nested deeper than its shape [${shape.join(',')}]`);
}

const INT_RANGES: Partial<Record<Datatype, readonly [number, number]>> = { ...INTEGER_RANGES, BOOL: [0, 1] };

/** JSON values into the datatype's typed array, refusing what the type cannot hold. */
function fromJson(name: string, datatype: Datatype, shape: readonly number[], data: readonly unknown[], count: number): TypedArray {
  if (datatype === 'FP16') bad(`tensor "${name}": FP16 data goes in the binary form (Inference-Header-Content-Length), not JSON`);
  const values = flatten(name, shape, data);
  if (values.length !== count) bad(`tensor "${name}" has ${values.length} values, expected ${count} for shape [${shape.join(',')}]`);
  const out = typedArrayView(datatype, new ArrayBuffer(count * DATATYPES[datatype].bytes), 0, count);
  const range = INT_RANGES[datatype];
  const big = datatype === 'INT64' || datatype === 'UINT64';
  for (let i = 0; i < count; i++) {
    let v = values[i];
    if (datatype === 'BOOL' && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number') bad(`tensor "${name}" (${datatype}): data[${i}] is not a number`);
    if (range && (!Number.isInteger(v) || v < range[0] || v > range[1])) bad(`tensor "${name}" (${datatype}): data[${i}] = ${v} is not an integer in ${range[0]}..${range[1]}`);
    if (big) (out as BigInt64Array)[i] = BigInt(v);
    else (out as Float32Array)[i] = v;
  }
  return out;
}

/** The first non-finite value of a float tensor, named with its sample. */
function checkFinite(t: TypedTensor, perSample: number, what: string): void {
  if (t.datatype !== 'FP32' && t.datatype !== 'FP64') return;
  const data = t.data as Float32Array | Float64Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) bad(`tensor "${t.name}" holds ${data[i]} at element ${i} (sample ${Math.floor(i / perSample)}): ${what} data must be finite`);
  }
}

/** FP16 travels as raw bits: an all-ones exponent is NaN or ±Infinity. */
function checkFiniteHalf(t: TypedTensor, perSample: number, what: string): void {
  if (t.datatype !== 'FP16') return;
  const bits = t.data as Uint16Array;
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i]! & 0x7c00) === 0x7c00) bad(`tensor "${t.name}" holds a NaN or infinite FP16 value at element ${i} (sample ${Math.floor(i / perSample)}): ${what} data must be finite`);
  }
}

/**
 * Checks a tensor's shape against the model input's: same rank, dim 0 the samples, fixed dims equal.
 * Samples are fed one at a time (batch 1), so the model's dim 0 must be dynamic or 1: a fixed batch
 * of 4 would read [3,4] as 3 samples of [4] and fail in the build, long after the upload's 200.
 */
function checkShape(input: InferInput, spec: TensorSpec, what: string): number {
  if (input.shape.length !== spec.shape.length) {
    bad(`input "${spec.name}": shape [${input.shape.join(',')}] has rank ${input.shape.length}; the model's input is ${describe(spec)} (samples along dim 0)`);
  }
  const batch = spec.shape[0]!;
  if (batch > 1) {
    bad(`input "${spec.name}": the model's input is ${describe(spec)}, a fixed batch of ${batch}; ${what} samples are fed at batch 1, so dim 0 must be dynamic or 1 (export the model with a dynamic batch dimension)`);
  }
  for (let d = 1; d < spec.shape.length; d++) {
    const want = spec.shape[d]!;
    if (want >= 0 && input.shape[d] !== want) {
      bad(`input "${spec.name}": shape [${input.shape.join(',')}] does not fit the model's ${describe(spec)}: dimension ${d} is ${input.shape[d]}, expected ${want}`);
    }
  }
  const samples = input.shape[0]!;
  if (samples < 1) bad(`input "${spec.name}": shape [${input.shape.join(',')}] holds no samples (dim 0 is 0)`);
  return samples;
}

function labelsFrom(input: InferInput, data: TypedArray, samples: number): Int32Array {
  const out = new Int32Array(samples);
  for (let i = 0; i < samples; i++) {
    const v = Number(data[i]!);
    if (v < 0 || v > 2147483647) bad(`tensor "${LABELS_TENSOR}": label ${i} is ${v}; labels are class indices ≥ 0`);
    out[i] = v;
  }
  return out;
}

/**
 * Parses and checks a calibration upload against the model's inputs; throws BAD_REQUEST naming the
 * first problem (missing or unknown tensor, wrong datatype, shape mismatch with the numbers,
 * truncated binary data, sample counts that differ, labels of the wrong length or sign, NaN).
 * Reference data and field samples share the format: `what` names the upload in the messages.
 */
export function parseCalibration(body: Uint8Array, headerLength: string | undefined, specs: readonly TensorSpec[], what = 'calibration'): CalibrationSet {
  const { request, tail } = parseEnvelope(body, headerLength, what);
  const byName = new Map<string, InferInput>();
  for (const input of request.inputs) {
    if (byName.has(input.name)) bad(`tensor "${input.name}" appears twice`);
    if (input.name !== LABELS_TENSOR && !specs.some((s) => s.name === input.name)) {
      bad(`unknown tensor "${input.name}": the model's inputs are ${specs.map((s) => `"${s.name}" ${describe(s)}`).join(', ')} (and optional "${LABELS_TENSOR}")`);
    }
    byName.set(input.name, input);
  }
  let samples: number | undefined;
  const sampleCount = (name: string, n: number) => {
    if (n > MAX_CALIBRATION_SAMPLES) bad(`tensor "${name}" holds ${n} samples; at most ${MAX_CALIBRATION_SAMPLES} are accepted`);
    if (samples !== undefined && n !== samples) bad(`tensor "${name}" holds ${n} samples along dim 0, the other tensors ${samples}`);
    samples = n;
  };
  const reader = binaryReader(tail);
  // Header order decides the binary offsets, so tensors are read in that order and sorted afterwards.
  const read = new Map<string, TypedArray>();
  for (const input of request.inputs) {
    const spec = specs.find((s) => s.name === input.name);
    if (spec) {
      if (input.datatype !== spec.datatype) bad(`input "${spec.name}": datatype ${input.datatype}, the model expects ${spec.datatype}`);
      sampleCount(spec.name, checkShape(input, spec, what));
    } else {
      if (input.datatype !== 'INT64' && input.datatype !== 'INT32') bad(`tensor "${LABELS_TENSOR}": datatype ${input.datatype}, expected INT64 or INT32`);
      if (input.shape.length !== 1) bad(`tensor "${LABELS_TENSOR}": shape [${input.shape.join(',')}], expected [N] (one class index per sample)`);
      sampleCount(LABELS_TENSOR, input.shape[0]!);
    }
    const datatype = input.datatype as Datatype;
    if (!isDatatype(datatype)) bad(`tensor "${input.name}": unsupported datatype ${input.datatype}`);
    const count = elementCount(input.shape);
    const data = reader.take(input, datatype, count) ?? (input.data ? fromJson(input.name, datatype, input.shape, input.data, count) : undefined);
    if (!data) bad(`tensor "${input.name}" has neither data nor parameters.binary_data_size`);
    read.set(input.name, data);
  }
  reader.finish();
  for (const spec of specs) {
    if (!byName.has(spec.name)) bad(`${what} data lacks model input "${spec.name}" ${describe(spec)}`);
  }
  const n = samples!;
  const inputs = specs.map((spec): TypedTensor => {
    const input = byName.get(spec.name)!;
    const t = { name: spec.name, datatype: spec.datatype as Datatype, shape: [...input.shape], data: read.get(spec.name)! };
    const perSample = Math.max(1, elementCount(input.shape.slice(1)));
    checkFinite(t, perSample, what);
    checkFiniteHalf(t, perSample, what);
    return t;
  });
  const labelsInput = byName.get(LABELS_TENSOR);
  return { samples: n, inputs, ...(labelsInput ? { labels: labelsFrom(labelsInput, read.get(LABELS_TENSOR)!, n) } : {}) };
}
