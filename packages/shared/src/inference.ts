import { Type, type Static } from 'typebox';

/**
 * Open Inference Protocol (KServe v2 / Triton HTTP) types, and Triton's binary-tensor extension:
 * the body is a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensors
 * in the order of the header's entries that carry `parameters.binary_data_size`.
 */
export const BINARY_HEADER = 'inference-header-content-length';

export const DATATYPES = {
  FP32: { ort: 'float32', bytes: 4 },
  FP64: { ort: 'float64', bytes: 8 },
  FP16: { ort: 'float16', bytes: 2 },
  INT8: { ort: 'int8', bytes: 1 },
  UINT8: { ort: 'uint8', bytes: 1 },
  INT16: { ort: 'int16', bytes: 2 },
  UINT16: { ort: 'uint16', bytes: 2 },
  INT32: { ort: 'int32', bytes: 4 },
  UINT32: { ort: 'uint32', bytes: 4 },
  INT64: { ort: 'int64', bytes: 8 },
  UINT64: { ort: 'uint64', bytes: 8 },
  BOOL: { ort: 'bool', bytes: 1 },
} as const;
export type Datatype = keyof typeof DATATYPES;
export function isDatatype(d: string): d is Datatype {
  return Object.hasOwn(DATATYPES, d);
}

export function datatypeFromOrt(ortType: string): Datatype | undefined {
  return (Object.keys(DATATYPES) as Datatype[]).find((d) => DATATYPES[d].ort === ortType);
}

/** A tensor's declared signature; `-1` marks a variable dimension. */
export const TensorSpec = Type.Object({
  name: Type.String({ minLength: 1 }),
  datatype: Type.String(),
  shape: Type.Array(Type.Integer({ minimum: -1 })),
});
export type TensorSpec = Static<typeof TensorSpec>;

const Parameters = Type.Record(Type.String(), Type.Unknown());

export const InferInput = Type.Object({
  name: Type.String({ minLength: 1 }),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  datatype: Type.String(),
  parameters: Type.Optional(Parameters),
  data: Type.Optional(Type.Array(Type.Unknown())),
});
export type InferInput = Static<typeof InferInput>;

export const InferRequestedOutput = Type.Object({
  name: Type.String({ minLength: 1 }),
  parameters: Type.Optional(Parameters),
});

export const InferRequest = Type.Object({
  id: Type.Optional(Type.String()),
  parameters: Type.Optional(Parameters),
  inputs: Type.Array(InferInput, { minItems: 1 }),
  outputs: Type.Optional(Type.Array(InferRequestedOutput)),
});
export type InferRequest = Static<typeof InferRequest>;

export const InferOutput = Type.Object({
  name: Type.String(),
  shape: Type.Array(Type.Integer()),
  datatype: Type.String(),
  parameters: Type.Optional(Parameters),
  data: Type.Optional(Type.Array(Type.Unknown())),
});
export type InferOutput = Static<typeof InferOutput>;

export const InferResponse = Type.Object({
  model_name: Type.String(),
  model_version: Type.Optional(Type.String()),
  id: Type.Optional(Type.String()),
  parameters: Type.Optional(Parameters),
  outputs: Type.Array(InferOutput),
});
export type InferResponse = Static<typeof InferResponse>;

export const ServerMetadata = Type.Object({
  name: Type.String(),
  version: Type.String(),
  extensions: Type.Array(Type.String()),
});
export type ServerMetadata = Static<typeof ServerMetadata>;

export const ModelMetadata = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  platform: Type.String(),
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
});
export type ModelMetadata = Static<typeof ModelMetadata>;

export const ErrorBody = Type.Object({ error: Type.String() });

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

// One decoder for every body: making a TextDecoder costs more than decoding a header of a few hundred bytes.
const utf8 = new TextDecoder();

/** Splits a binary-extension body into its JSON header and the raw bytes that follow it. */
export function splitBinaryBody(body: Uint8Array, headerLength: number): { header: unknown; tail: Uint8Array } {
  if (!Number.isInteger(headerLength) || headerLength < 0 || headerLength > body.byteLength) {
    throw new RangeError(
      `Inference-Header-Content-Length ${headerLength} is not within the body's ${body.byteLength} bytes`,
    );
  }
  const text = utf8.decode(body.subarray(0, headerLength));
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(`binary inference header is not valid JSON: ${(err as Error).message}`);
  }
  return { header, tail: body.subarray(headerLength) };
}

/** Builds a binary-extension body: JSON header, then each buffer in order. */
export function joinBinaryBody(header: unknown, buffers: readonly Uint8Array[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...buffers]), headerLength: json.byteLength };
}
