import { elementCount, goldenInputTensors, type TensorSpec, type TypedTensor } from '@edgefleet/shared';

/**
 * The samples a variant build calibrates and evaluates on: the uploaded calibration set split into a
 * calibration part and a held-out part, or seeded inputs generated from the model's signature when
 * there is no set. Pure: slices are views, nothing is copied.
 */

export interface CalibrationSet {
  /** Samples along dim 0 of every input. */
  samples: number;
  inputs: TypedTensor[];
  /** One class index per sample. */
  labels?: Int32Array;
}

/** Calibration uses at most this many samples: ranges settle long before, and each sample's activations are kept. */
export const MAX_CALIBRATION_SAMPLES = 256;
/** Held-out samples compared per variant, at most. */
export const MAX_EVALUATION_SAMPLES = 2000;
/** Samples generated when no calibration set was uploaded. */
export const GENERATED_SAMPLES = 64;
/** Seeds of generated samples start here: away from the golden vector's seed (42), so the golden input is not one of them. */
const GENERATED_SEED = 1000;

/** A run of samples: [start, end) along dim 0. */
export interface SampleRange {
  start: number;
  end: number;
}

/** Throws naming the tensor when the set's shapes, data lengths or labels do not agree with `samples`. */
export function checkCalibrationSet(set: CalibrationSet): void {
  if (!(Number.isInteger(set.samples) && set.samples >= 1)) throw new Error(`a calibration set needs at least one sample, got ${set.samples}`);
  if (set.inputs.length === 0) throw new Error('the calibration set has no input tensors');
  for (const t of set.inputs) {
    if (t.shape[0] !== set.samples) throw new Error(`calibration input ${t.name} has shape [${t.shape}]; samples go along dim 0, expected ${set.samples} there`);
    if (t.data.length !== elementCount(t.shape)) throw new Error(`calibration input ${t.name} holds ${t.data.length} values, its shape [${t.shape}] needs ${elementCount(t.shape)}`);
  }
  if (set.labels && set.labels.length !== set.samples) throw new Error(`the calibration set has ${set.labels.length} labels for ${set.samples} samples`);
}

/**
 * The first min(⌊N/2⌋, 256) samples calibrate; the rest, up to 2000, are held out for evaluation, so
 * a variant is never judged on the samples its ranges came from. A single sample only evaluates.
 */
export function splitCalibration(samples: number): { calibrate: SampleRange; evaluate: SampleRange } {
  const k = Math.min(Math.floor(samples / 2), MAX_CALIBRATION_SAMPLES);
  return { calibrate: { start: 0, end: k }, evaluate: { start: k, end: Math.min(samples, k + MAX_EVALUATION_SAMPLES) } };
}

/** Samples [start, end) of every input as views of shape [end − start, …rest]. */
export function sliceSamples(inputs: readonly TypedTensor[], range: SampleRange): TypedTensor[] {
  return inputs.map((t) => {
    const perSample = elementCount(t.shape.slice(1));
    return { name: t.name, datatype: t.datatype, shape: [range.end - range.start, ...t.shape.slice(1)], data: t.data.subarray(range.start * perSample, range.end * perSample) };
  });
}

/** Consecutive runs of at most `size` samples covering the range. */
export function batches(range: SampleRange, size: number): SampleRange[] {
  const out: SampleRange[] = [];
  for (let start = range.start; start < range.end; start += size) out.push({ start, end: Math.min(range.end, start + size) });
  return out;
}

/**
 * Seeded inputs from the model's signature, as the golden vector makes them (floats uniform in
 * [−1, 1), integers 0–9, 1 for each dynamic dimension), one seed per sample.
 */
export function generatedSamples(specs: readonly TensorSpec[], count = GENERATED_SAMPLES): TypedTensor[][] {
  return Array.from({ length: count }, (_, i) => goldenInputTensors(specs, GENERATED_SEED + i));
}
