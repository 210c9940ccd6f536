import { splitBinaryBody } from '@edgefleet/shared';

/** The keys a field sample's JSON (or binary header) may hold, per level: only the model inputs. */
const TOP_KEYS = new Set(['inputs']);
const INPUT_KEYS = new Set(['name', 'datatype', 'shape', 'data', 'parameters']);
const PARAMETER_KEYS = new Set(['binary_data_size']);

function firstUnknown(value: unknown, allowed: ReadonlySet<string>): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return Object.keys(value).find((k) => !allowed.has(k));
}

/**
 * The first key a field sample body holds beyond its inputs (`id`, request `parameters`, `outputs`,
 * anything else), as a path like `inputs[0].parameters.shm_region`; undefined when there is none.
 * Samples are stored byte for byte for replay, so whatever else a device puts in would be kept and
 * served to operators verbatim: refused instead. Call it on a body the calibration parser accepted.
 */
export function extraFieldSampleKey(body: Uint8Array, headerLength: string | undefined): string | undefined {
  const header: unknown =
    headerLength === undefined ? JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) : splitBinaryBody(body, Number(headerLength)).header;
  const top = firstUnknown(header, TOP_KEYS);
  if (top !== undefined) return top;
  const inputs = (header as { inputs: unknown[] }).inputs;
  for (const [i, input] of inputs.entries()) {
    const key = firstUnknown(input, INPUT_KEYS);
    if (key !== undefined) return `inputs[${i}].${key}`;
    const parameter = firstUnknown((input as { parameters?: unknown }).parameters, PARAMETER_KEYS);
    if (parameter !== undefined) return `inputs[${i}].parameters.${parameter}`;
  }
  return undefined;
}
