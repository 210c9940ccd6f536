import { readFile } from 'node:fs/promises';
import { seededRandom } from '@edgefleet/shared';
import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import { argmaxRows } from './compression-support.js';

/** Helpers of the int8-weights and pruned tests: the PyTorch fixtures, seeded inputs, closeness to fp32. */

const FIXTURES = new URL('../../../test/fixtures/onnx/', import.meta.url);

/** The PyTorch fixtures: input shape per sample and how many seeded samples to compare on. */
export const TORCH_FIXTURES = [
  { name: 'torch-cnn', sample: [3, 32, 32], samples: 300 },
  { name: 'torch-mlp', sample: [256], samples: 1000 },
  { name: 'torch-encoder', sample: [16, 128], samples: 200 },
] as const;

export const fixtureBytes = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(new URL(`${name}.onnx`, FIXTURES)));

export function seededValues(count: number, seed: number, scale = 1): Float32Array {
  const rand = seededRandom(seed);
  return Float32Array.from({ length: count }, () => (rand() * 2 - 1) * scale);
}

/** Runs a model once on a batch; the first output's values. */
export async function runModel(bytes: Uint8Array, input: string, data: Float32Array, shape: readonly number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    const out = await session.run({ [input]: new ort.Tensor('float32', data, [...shape]) });
    return out[session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

export interface Closeness {
  readonly maxAbsDiff: number;
  /** Top-1 agreement over rows of `classes` values. */
  readonly agreement: number;
}

export function closeness(expected: Float32Array, actual: Float32Array, classes: number): Closeness {
  expect(actual.length).toBe(expected.length);
  const maxAbsDiff = expected.reduce((m, v, i) => Math.max(m, Math.abs(v - actual[i]!)), 0);
  const top1 = argmaxRows(expected, classes);
  const agreement = argmaxRows(actual, classes).filter((c, i) => c === top1[i]).length / top1.length;
  return { maxAbsDiff, agreement };
}

/** fp32 and a variant on the same seeded uniform(-1, 1) batch. */
export async function compareOnFixture(fp32: Uint8Array, variant: Uint8Array, fixture: (typeof TORCH_FIXTURES)[number]): Promise<Closeness> {
  const shape = [fixture.samples, ...fixture.sample];
  const data = seededValues(shape.reduce((a, b) => a * b, 1), 42);
  return closeness(await runModel(fp32, 'input', data, shape), await runModel(variant, 'input', data, shape), 10);
}

