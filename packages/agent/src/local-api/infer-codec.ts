import { Compile } from 'typebox/compile';
import {
  DATATYPES,
  EdgefleetError,
  InferRequest,
  isDatatype,
  splitBinaryBody,
  typedArrayView,
  type Datatype,
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

/**
 * Builds the input tensors. Binary inputs are copied into their own ArrayBuffers, unless `ownsBuffer`
 * says the whole buffer under `tail` belongs to this request (a request body): then each input is
 * moved in place to an offset aligned for its element size (over bytes already parsed, such as the
 * header) and viewed there, and the runtime moves that one buffer to its worker without any copy.
 */
export function requestTensors(request: InferRequest, tail: Uint8Array, specs: readonly TensorSpec[], ownsBuffer = false): Tensor[] {
  let offset = 0;
  let cursor = 0; // in the underlying buffer: where the last input placed in place ends
  const tensors = request.inputs.map((input): Tensor => {
    const spec = specs.find((s) => s.name === input.name);
    if (!spec) throw new EdgefleetError('INVALID_TENSOR', `unknown input "${input.name}"; the model expects ${describeSignature(specs)}`);
    const expected = () => `input "${spec.name}" expects ${describeSpec(spec)}`;
    const datatype = input.datatype;
    if (!isDatatype(datatype) || datatype !== spec.datatype) {
      throw new EdgefleetError('INVALID_TENSOR', `${expected()}, got ${describeSpec(input)}`);
    }
    const size = input.parameters?.['binary_data_size'];
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) badRequest(`input "${input.name}": binary_data_size must be a non-negative integer`);
      if (input.data !== undefined) badRequest(`input "${input.name}" has both binary_data_size and data`);
      if (offset + size > tail.byteLength) {
        badRequest(`input "${input.name}" needs ${size} bytes at offset ${offset} of the binary data, which has only ${tail.byteLength} bytes`);
      }
      const bytes = DATATYPES[datatype].bytes;
      if (size % bytes !== 0) throw new EdgefleetError('INVALID_TENSOR', `${expected()}, got ${size} bytes, not a whole number of ${bytes}-byte elements`);
      const start = tail.byteOffset + offset;
      const aligned = start - (start % bytes);
      offset += size;
      if (ownsBuffer && aligned >= cursor) {
        if (aligned !== start) new Uint8Array(tail.buffer).copyWithin(aligned, start, start + size);
        cursor = aligned + size;
        return { name: input.name, datatype, shape: input.shape, data: view(datatype, tail.buffer as ArrayBuffer, aligned, size), ownedBuffer: true };
      }
      const copy = new Uint8Array(size);
      copy.set(tail.subarray(offset - size, offset));
      return { name: input.name, datatype, shape: input.shape, data: view(datatype, copy.buffer, 0, size) };
    }
    if (input.data === undefined) badRequest(`input "${input.name}" has neither data nor parameters.binary_data_size`);
    return { name: input.name, datatype, shape: input.shape, data: jsonToTypedArray(input.name, datatype, flattenData(input.name, datatype, input.shape, input.data)) };
  });
  if (offset !== tail.byteLength) badRequest(`the binary data has ${tail.byteLength - offset} bytes beyond the inputs' binary_data_size`);
  return tensors;
}

function view(datatype: Datatype, buf: ArrayBuffer, offset: number, length: number): TensorData {
  return typedArrayView(datatype, buf, offset, length / DATATYPES[datatype].bytes);
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
