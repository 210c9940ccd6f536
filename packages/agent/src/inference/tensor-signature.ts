import { DATATYPES, EdgefleetError, elementCount, isDatatype, type TensorSpec } from '@edgefleet/shared';
import type { Tensor } from './types.js';

/** `FP32 [-1,3,64,64]`: how a signature or a tensor is named in error messages. */
export function describeSpec(spec: { datatype: string; shape: readonly number[] }): string {
  return `${spec.datatype} [${spec.shape.join(',')}]`;
}

/** `"image": FP32 [-1,3,64,64], "mask": BOOL [-1,64]`: the whole input signature of a model. */
export function describeSignature(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `"${s.name}": ${describeSpec(s)}`).join(', ');
}

function shapeMatches(expected: readonly number[], actual: readonly number[]): boolean {
  return expected.length === actual.length && expected.every((d, i) => d < 0 || d === actual[i]);
}

function invalid(message: string): never {
  throw new EdgefleetError('INVALID_TENSOR', message);
}

/**
 * Checks request tensors against a model's input signature before anything is dispatched:
 * every declared input present exactly once, no unknown names, the declared datatype, a shape of
 * the declared rank whose fixed dimensions match (−1 = any), and data holding exactly that many values.
 */
export function validateInputs(specs: readonly TensorSpec[], inputs: readonly Tensor[]): void {
  const seen = new Set<string>();
  for (const input of inputs) {
    const spec = specs.find((s) => s.name === input.name);
    if (!spec) invalid(`unknown input "${input.name}"; the model expects ${describeSignature(specs)}`);
    if (seen.has(input.name)) invalid(`input "${input.name}" is given twice; the model expects ${describeSignature(specs)}`);
    seen.add(input.name);
    const expected = () => `input "${spec.name}" expects ${describeSpec(spec)}`;
    if (input.datatype !== spec.datatype || !shapeMatches(spec.shape, input.shape)) {
      invalid(`${expected()}, got ${describeSpec(input)}`);
    }
    if (!input.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      invalid(`${expected()}, got shape [${input.shape.join(',')}] with a negative or fractional dimension`);
    }
    const count = elementCount(input.shape);
    if (input.data.length !== count) {
      invalid(`${expected()}, got shape [${input.shape.join(',')}] (${count} values) with ${input.data.length} values of data`);
    }
    if (isDatatype(input.datatype) && input.data.BYTES_PER_ELEMENT !== DATATYPES[input.datatype].bytes) {
      invalid(`${expected()}, got ${input.data.BYTES_PER_ELEMENT}-byte elements for ${input.datatype}`);
    }
  }
  const missing = specs.filter((s) => !seen.has(s.name));
  if (missing.length > 0) {
    invalid(`missing input ${missing.map((s) => `"${s.name}"`).join(', ')}; the model expects ${describeSignature(specs)}`);
  }
}
