import { float32ToFloat16Bits } from '@edgefleet/shared/onnx';
import type { TypedTensor } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { batches, checkCalibrationSet, generatedSamples, sliceSamples, splitCalibration } from '../src/compression/evaluation-data.js';
import { fidelityTally, goldenTolerance, judgeVariant, mergeBudget, percentile, top1Rows, type Fidelity } from '../src/compression/evaluation.js';
import { closerToFp32 } from '../src/compression/profiles.js';

const fp32 = (values: number[], shape = [1, values.length], name = 'logits'): TypedTensor => ({ name, datatype: 'FP32', shape, data: Float32Array.from(values) });

const fidelity = (over: Partial<Fidelity>): Fidelity => ({
  samples: 1000,
  agreement: 1,
  accuracy: null,
  fp32Accuracy: null,
  maxAbsError: 0.01,
  meanAbsError: 0.001,
  relativeError: 0.001,
  ...over,
});

describe('fidelity of a variant against fp32', () => {
  it('counts top-1 agreement per row of the class axis, first index on ties', () => {
    expect(top1Rows([0, 3, 1, 5, 5, 2], 3)).toEqual([1, 0]);
    const tally = fidelityTally();
    tally.add([fp32([0.1, 0.9, 0.0])], [fp32([0.2, 0.7, 0.1])]);
    tally.add([fp32([0.6, 0.4, 0.0])], [fp32([0.3, 0.5, 0.2])]); // flips 0 → 1
    tally.add([fp32([1, 2, 3, 3, 2, 1], [2, 3])], [fp32([1, 2, 3, 3, 2, 1], [2, 3])]); // two rows, both agree
    expect(tally.result().agreement).toBe(3 / 4);
    expect(tally.result().samples).toBe(3);
  });

  it('measures accuracy of both models against the labels', () => {
    const tally = fidelityTally();
    tally.add([fp32([0.9, 0.1])], [fp32([0.8, 0.2])], 0); // both right
    tally.add([fp32([0.4, 0.6])], [fp32([0.6, 0.4])], 1); // fp32 right, variant wrong
    tally.add([fp32([0.7, 0.3])], [fp32([0.7, 0.3])], 1); // both wrong
    tally.add([fp32([0.2, 0.8])], [fp32([0.1, 0.9])], 1); // both right
    const r = tally.result();
    expect(r.fp32Accuracy).toBe(3 / 4);
    expect(r.accuracy).toBe(2 / 4);
    expect(r.agreement).toBe(3 / 4);
  });

  it('leaves accuracy null when some samples have no label', () => {
    const tally = fidelityTally();
    tally.add([fp32([0.9, 0.1])], [fp32([0.8, 0.2])], 0);
    tally.add([fp32([0.9, 0.1])], [fp32([0.8, 0.2])]);
    expect(tally.result().accuracy).toBeNull();
  });

  it('takes max, mean and relative error over every float output and skips integer ones', () => {
    const tally = fidelityTally();
    const argmax = (v: bigint): TypedTensor => ({ name: 'argmax', datatype: 'INT64', shape: [1], data: BigInt64Array.of(v) });
    tally.add([fp32([1, -2]), fp32([4], [1, 1], 'score'), argmax(0n)], [fp32([1.5, -2]), fp32([3], [1, 1], 'score'), argmax(7n)]);
    const r = tally.result();
    expect(r.maxAbsError).toBeCloseTo(1);
    expect(r.meanAbsError).toBeCloseTo((0.5 + 0 + 1) / 3);
    expect(r.relativeError).toBeCloseTo(1.5 / 7);
  });

  it('has no agreement for a regression output (no class axis) and judges it by relative error', () => {
    const tally = fidelityTally();
    tally.add([fp32([2], [1, 1])], [fp32([2.2], [1, 1])], 0);
    const r = tally.result();
    expect(r.agreement).toBeNull();
    expect(r.accuracy).toBeNull();
    expect(r.relativeError).toBeCloseTo(0.1);
    const judged = judgeVariant(r, 'generated', {});
    expect(judged.state).toBe('rejected');
    expect(judged.reason).toMatch(/relative error 0\.1 > 0\.05 allowed .*1 generated samples/);
  });

  it('reads FP16 outputs through their bits', () => {
    const half: TypedTensor = { name: 'logits', datatype: 'FP16', shape: [1, 2], data: float32ToFloat16Bits(Float32Array.of(0.25, 0.5)) };
    const tally = fidelityTally();
    tally.add([fp32([0.25, 0.75])], [half]);
    expect(tally.result().maxAbsError).toBeCloseTo(0.25);
    expect(tally.result().agreement).toBe(1);
  });

  it('names a mismatch in outputs instead of comparing garbage', () => {
    const tally = fidelityTally();
    expect(() => tally.add([fp32([1, 2])], [])).toThrow(/produced 0 outputs, fp32 1/);
    expect(() => tally.add([fp32([1, 2])], [fp32([1, 2, 3])])).toThrow(/output logits: the variant produced 3 values, fp32 2/);
  });

  it('makes NaN outputs an infinite error, never a quiet pass', () => {
    const tally = fidelityTally();
    tally.add([fp32([1, 2])], [fp32([NaN, 2])]);
    expect(tally.result().maxAbsError).toBe(Infinity);
  });
});

describe('percentiles and tolerances', () => {
  it('interpolates between sorted values', () => {
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(percentile([4, 1, 3, 2], 0)).toBe(1);
    expect(percentile([4, 1, 3, 2], 100)).toBe(4);
    expect(percentile([7], 90)).toBe(7);
    expect(() => percentile([], 50)).toThrow(/no values/);
  });

  it('takes the golden tolerance from the largest deviation relative to 1 + |fp32|, never below 1e-4', () => {
    expect(goldenTolerance([fp32([1, 2])], [fp32([1, 2])])).toEqual({ atol: 1e-4 });
    expect(goldenTolerance([fp32([1, 3])], [fp32([1.2, 3.2])]).atol).toBeCloseTo(0.1);
  });
});

describe('the accuracy budget', () => {
  it('merges the version budget over the defaults', () => {
    expect(mergeBudget({})).toEqual({ minAgreement: 0.99, maxRelativeError: 0.05 });
    expect(mergeBudget({ minAgreement: 0.995, maxAccuracyDrop: 0.01 })).toEqual({ minAgreement: 0.995, maxRelativeError: 0.05, maxAccuracyDrop: 0.01 });
  });

  it('accepts a variant within every rule', () => {
    expect(judgeVariant(fidelity({ agreement: 0.995 }), 'calibration', {})).toEqual({ state: 'accepted', reason: null });
  });

  it('rejects low agreement with the numbers and the samples in the reason', () => {
    const r = judgeVariant(fidelity({ agreement: 0.981 }), 'calibration', {});
    expect(r).toEqual({ state: 'rejected', reason: 'top-1 agreement 0.981 < 0.99 required (1000 held-out samples)' });
  });

  it('ignores the default relative error for a classifier but applies one the budget sets', () => {
    expect(judgeVariant(fidelity({ relativeError: 0.2 }), 'calibration', {}).state).toBe('accepted');
    const r = judgeVariant(fidelity({ relativeError: 0.2 }), 'calibration', { maxRelativeError: 0.1 });
    expect(r.reason).toMatch(/^relative error 0\.2 > 0\.1 allowed/);
  });

  it('rejects an accuracy drop past maxAccuracyDrop, and joins every broken rule', () => {
    const f = fidelity({ agreement: 0.9, accuracy: 0.91, fp32Accuracy: 0.95 });
    expect(judgeVariant(f, 'calibration', {}).reason).not.toMatch(/accuracy/);
    const r = judgeVariant(f, 'calibration', { maxAccuracyDrop: 0.02 });
    expect(r.reason).toBe(
      'top-1 agreement 0.9 < 0.99 required (1000 held-out samples); top-1 accuracy 0.91 vs fp32 0.95: drop 0.04 > 0.02 allowed (1000 held-out samples)',
    );
  });
});

describe('evaluation data', () => {
  it('calibrates on the first min(N/2, 256) samples and holds out the rest, up to 2000', () => {
    expect(splitCalibration(10)).toEqual({ calibrate: { start: 0, end: 5 }, evaluate: { start: 5, end: 10 } });
    expect(splitCalibration(1000)).toEqual({ calibrate: { start: 0, end: 256 }, evaluate: { start: 256, end: 1000 } });
    expect(splitCalibration(5000)).toEqual({ calibrate: { start: 0, end: 256 }, evaluate: { start: 256, end: 2256 } });
    expect(splitCalibration(1)).toEqual({ calibrate: { start: 0, end: 0 }, evaluate: { start: 0, end: 1 } });
  });

  it('slices samples along dim 0 as views and batches a range', () => {
    const input: TypedTensor = { name: 'x', datatype: 'FP32', shape: [4, 2], data: Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7) };
    const [slice] = sliceSamples([input], { start: 1, end: 3 });
    expect(slice!.shape).toEqual([2, 2]);
    expect([...slice!.data]).toEqual([2, 3, 4, 5]);
    expect(slice!.data.buffer).toBe(input.data.buffer);
    expect(batches({ start: 2, end: 9 }, 3)).toEqual([{ start: 2, end: 5 }, { start: 5, end: 8 }, { start: 8, end: 9 }]);
  });

  it('generates 64 seeded samples from the signature: floats in [-1, 1), small integers, dynamic dims 1', () => {
    const specs = [
      { name: 'x', datatype: 'FP32', shape: [-1, 3] },
      { name: 'ids', datatype: 'INT64', shape: [-1, 2] },
    ];
    const samples = generatedSamples(specs);
    expect(samples).toHaveLength(64);
    expect(samples[0]![0]!.shape).toEqual([1, 3]);
    const floats = samples.flatMap((s) => [...(s[0]!.data as Float32Array)]);
    expect(Math.min(...floats)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...floats)).toBeLessThan(1);
    const ids = samples.flatMap((s) => [...(s[1]!.data as BigInt64Array)].map(Number));
    expect(ids.every((v) => Number.isInteger(v) && v >= 0 && v <= 9)).toBe(true);
    expect(generatedSamples(specs)[5]![0]!.data).toEqual(samples[5]![0]!.data);
    expect(samples[1]![0]!.data).not.toEqual(samples[0]![0]!.data);
  });

  it('names what is wrong with a calibration set', () => {
    const x = (shape: number[], n: number): TypedTensor => ({ name: 'x', datatype: 'FP32', shape, data: new Float32Array(n) });
    expect(() => checkCalibrationSet({ samples: 3, inputs: [x([2, 4], 8)] })).toThrow(/calibration input x has shape \[2,4\]; samples go along dim 0, expected 3/);
    expect(() => checkCalibrationSet({ samples: 2, inputs: [x([2, 4], 7)] })).toThrow(/holds 7 values, its shape \[2,4\] needs 8/);
    expect(() => checkCalibrationSet({ samples: 2, inputs: [x([2, 4], 8)], labels: Int32Array.of(1) })).toThrow(/1 labels for 2 samples/);
    expect(() => checkCalibrationSet({ samples: 2, inputs: [x([2, 4], 8)], labels: Int32Array.of(1, 0) })).not.toThrow();
  });
});

describe('choosing the int8-static calibration method', () => {
  it('prefers fewer top-1 flips, then the smaller relative error, and the first on a tie', () => {
    expect(closerToFp32({ disagreement: 0.01, relativeError: 0.5 }, { disagreement: 0.02, relativeError: 0.01 })).toBe(true);
    expect(closerToFp32({ disagreement: 0.01, relativeError: 0.05 }, { disagreement: 0.01, relativeError: 0.04 })).toBe(false);
    expect(closerToFp32({ disagreement: 0, relativeError: 0.04 }, { disagreement: 0, relativeError: 0.04 })).toBe(true);
  });
});
