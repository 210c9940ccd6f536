import { DATATYPES, isDatatype, type TensorSpec } from '@edgefleet/shared';

// How large an inference request body may be, from the model's declared inputs. Pure.
//
// A JSON body costs far more memory than its size once parsed (a 48 MB one grew the agent to 940 MB
// and the heap stayed there), so JSON gets what the inputs can need as JSON text and no more; large
// tensors belong in the binary extension, whose bytes are used in place.

export interface BodyLimitSettings {
  /** Smallest JSON limit, whatever the model: small models still get room for batches and ids. */
  jsonFloor: number;
  /** Largest JSON limit, whatever the model. */
  jsonCap: number;
  /** Largest binary body (header and tensor bytes). */
  binaryCap: number;
}

export const DEFAULT_BODY_LIMITS: BodyLimitSettings = {
  jsonFloor: 1024 * 1024,
  jsonCap: 8 * 1024 * 1024,
  binaryCap: 256 * 1024 * 1024,
};

/** Longest JSON text of one value: a float with 17 significant digits, sign, exponent, separator. */
const JSON_BYTES_PER_VALUE = 32;
/** A variable dimension (-1) counts as this many for JSON; past it, binary is the way. */
const DYNAMIC_DIM_ALLOWANCE = 64;
/** Room for the request's own fields (id, parameters, outputs) and the binary header. */
const SLACK = 64 * 1024;

export interface BodyLimit {
  bytes: number;
  /** Completes "over the N-byte limit for …" in the refusal. */
  reason: string;
}

function valuesOf(spec: TensorSpec, dynamic: number): number {
  return spec.shape.reduce((n, d) => n * (d < 0 ? dynamic : d), 1);
}

function bytesPerValue(spec: TensorSpec): number {
  return isDatatype(spec.datatype) ? DATATYPES[spec.datatype].bytes : 8;
}

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/** The JSON limit: every declared input as JSON text, a variable dimension counting DYNAMIC_DIM_ALLOWANCE. */
export function jsonBodyLimit(model: { name: string; inputs: readonly TensorSpec[] }, s: BodyLimitSettings): BodyLimit {
  const values = model.inputs.reduce((n, spec) => n + valuesOf(spec, DYNAMIC_DIM_ALLOWANCE), 0);
  return {
    bytes: clamp(values * JSON_BYTES_PER_VALUE + SLACK, s.jsonFloor, s.jsonCap),
    reason:
      `JSON inference requests to model "${model.name}" (${JSON_BYTES_PER_VALUE} bytes per input value, at least ${s.jsonFloor} and at most ${s.jsonCap} bytes); ` +
      'send large tensors as binary data with the Inference-Header-Content-Length header (binary tensor extension)',
  };
}

/** The binary limit: the inputs' bytes plus the header; a model with a variable dimension gets the cap. */
export function binaryBodyLimit(model: { name: string; inputs: readonly TensorSpec[] }, s: BodyLimitSettings): BodyLimit {
  const dynamic = model.inputs.some((spec) => spec.shape.some((d) => d < 0));
  const tensorBytes = model.inputs.reduce((n, spec) => n + valuesOf(spec, 1) * bytesPerValue(spec), 0);
  // The header may carry some inputs as JSON data, so a binary body may always be as large as a JSON one.
  const bytes = dynamic ? s.binaryCap : clamp(tensorBytes + SLACK, jsonBodyLimit(model, s).bytes, s.binaryCap);
  return {
    bytes,
    reason: dynamic
      ? `binary inference requests to model "${model.name}" (the largest body this agent accepts)`
      : `binary inference requests to model "${model.name}" (its inputs hold ${tensorBytes} bytes)`,
  };
}
