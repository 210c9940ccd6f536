import { Compile } from 'typebox/compile';
import {
  DATATYPES,
  EdgefleetError,
  InferRequest,
  isDatatype,
  splitBinaryBody,
  type InferOutput,
  type InferResponse,
  type TensorSpec,
} from '@edgefleet/shared';
import { describeSignature, describeSpec } from '../inference/tensor-signature.js';
import type { Tensor, TensorData } from '../inference/types.js';
import { flattenData, jsonToTypedArray, typedArrayToJson } from './tensor-json.js';

// Open Inference Protocol bodies ↔ tensors, JSON and Triton's binary tensor extension. Pure: no HTTP.

const checkRequest = Compile(InferRequest);

function badRequest(message: string): never {
  throw new EdgefleetError('BAD_REQUEST', message);
}

/** Parses a body: binary-extension header + tail when `headerLength` (the header's value) is given, else JSON. */
export function parseInferBody(body: Buffer, headerLength: string | undefined): { request: InferRequest; tail: Uint8Array } {
  let parsed: unknown;
  let tail: Uint8Array = new Uint8Array(0);
  if (headerLength !== undefined) {
    if (!/^\d+$/.test(headerLength)) badRequest(`Inference-Header-Content-Length must be a non-negative integer, got "${headerLength}"`);
    try {
      ({ header: parsed, tail } = splitBinaryBody(body, Number(headerLength)));
    } catch (err) {
      badRequest((err as Error).message);
    }
  } else {
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      badRequest(`request body is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!checkRequest.Check(parsed)) {
    const first = checkRequest.Errors(parsed)[0];
    badRequest(`inference request does not match the protocol at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`);
  }
  return { request: parsed, tail };
}

/** Builds the input tensors, each over its own ArrayBuffer (so the runtime can transfer it to a worker). */
export function requestTensors(request: InferRequest, tail: Uint8Array, specs: readonly TensorSpec[]): Tensor[] {
  let offset = 0;
  const tensors = request.inputs.map((input): Tensor => {
    const spec = specs.find((s) => s.name === input.name);
    const expected = spec ? `input "${spec.name}" expects ${describeSpec(spec)}` : `unknown input "${input.name}"; the model expects ${describeSignature(specs)}`;
    if (!spec) throw new EdgefleetError('INVALID_TENSOR', expected);
    const datatype = input.datatype;
    if (!isDatatype(datatype) || datatype !== spec.datatype) {
      throw new EdgefleetError('INVALID_TENSOR', `${expected}, got ${describeSpec(input)}`);
    }
    const size = input.parameters?.['binary_data_size'];
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) badRequest(`input "${input.name}": binary_data_size must be a non-negative integer`);
      if (input.data !== undefined) badRequest(`input "${input.name}" has both binary_data_size and data`);
      if (offset + size > tail.byteLength) {
        badRequest(`input "${input.name}" needs ${size} bytes at offset ${offset} of the binary data, which has only ${tail.byteLength} bytes`);
      }
      const bytes = DATATYPES[datatype].bytes;
      if (size % bytes !== 0) throw new EdgefleetError('INVALID_TENSOR', `${expected}, got ${size} bytes, not a whole number of ${bytes}-byte elements`);
      const data = fromBytes(datatype, tail.subarray(offset, offset + size));
      offset += size;
      return { name: input.name, datatype, shape: input.shape, data };
    }
    if (input.data === undefined) badRequest(`input "${input.name}" has neither data nor parameters.binary_data_size`);
    return { name: input.name, datatype, shape: input.shape, data: jsonToTypedArray(input.name, datatype, flattenData(input.data)) };
  });
  if (offset !== tail.byteLength) badRequest(`the binary data has ${tail.byteLength - offset} bytes beyond the inputs' binary_data_size`);
  return tensors;
}

/** Copies raw little-endian bytes into a fresh, aligned typed array of the datatype. */
function fromBytes(datatype: keyof typeof DATATYPES, bytes: Uint8Array): TensorData {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const buf = copy.buffer;
  switch (datatype) {
    case 'FP32': return new Float32Array(buf);
    case 'FP64': return new Float64Array(buf);
    case 'INT8': return new Int8Array(buf);
    case 'UINT8': case 'BOOL': return copy;
    case 'INT16': return new Int16Array(buf);
    case 'UINT16': case 'FP16': return new Uint16Array(buf);
    case 'INT32': return new Int32Array(buf);
    case 'UINT32': return new Uint32Array(buf);
    case 'INT64': return new BigInt64Array(buf);
    case 'UINT64': return new BigUint64Array(buf);
  }
}

/** Checks the requested outputs before anything runs; returns which of them go back as binary. */
export function planOutputs(request: InferRequest, specs: readonly TensorSpec[]): Array<{ name: string; binary: boolean }> {
  const binaryDefault = request.parameters?.['binary_data_output'] === true;
  if (!request.outputs || request.outputs.length === 0) return specs.map((s) => ({ name: s.name, binary: binaryDefault }));
  return request.outputs.map((o) => {
    if (!specs.some((s) => s.name === o.name)) badRequest(`unknown output "${o.name}"; the model has outputs ${describeSignature(specs)}`);
    const flag = o.parameters?.['binary_data'];
    return { name: o.name, binary: typeof flag === 'boolean' ? flag : binaryDefault };
  });
}

export type EncodedResponse = { kind: 'json'; body: InferResponse } | { kind: 'binary'; body: Buffer; headerLength: number };

/** The response: JSON, or a JSON header followed by the raw bytes of the binary outputs (in header order). */
export function encodeInferResponse(
  meta: { model_name: string; model_version: string; id?: string },
  outputs: readonly Tensor[],
  plan: ReadonlyArray<{ name: string; binary: boolean }>,
): EncodedResponse {
  const buffers: Uint8Array[] = [];
  const entries: InferOutput[] = plan.map(({ name, binary }) => {
    const t = outputs.find((o) => o.name === name);
    if (!t) throw new EdgefleetError('INTERNAL', `the model returned no output "${name}"`);
    if (!binary) return { name, datatype: t.datatype, shape: t.shape, data: typedArrayToJson(t.datatype, t.data) };
    buffers.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    return { name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.data.byteLength } };
  });
  const header: InferResponse = { ...meta, outputs: entries };
  if (buffers.length === 0) return { kind: 'json', body: header };
  const json = Buffer.from(JSON.stringify(header));
  return { kind: 'binary', body: Buffer.concat([json, ...buffers]), headerLength: json.byteLength };
}
