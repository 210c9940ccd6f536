import { describe, expect, it } from 'vitest';
import {
  createFeatureExtractor,
  extractionFeatureNames,
  extractionWidth,
  MAX_DRIFT_FEATURES,
  planExtraction,
  seededRandom,
  toHalf,
  type DriftExtraction,
  type TensorSpec,
} from '@edgefleet/shared';

const spec = (name: string, shape: number[], datatype: TensorSpec['datatype'] = 'FP32'): TensorSpec => ({ name, datatype, shape });

/** Mean, population std of `values`. */
function moments(values: number[]): [number, number] {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return [mean, Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length)];
}

describe('drift extraction: planning from a model signature', () => {
  it('tracks small tensors value by value, images by summary features, the rest by stats', () => {
    const plan = planExtraction(
      [spec('tabular', [-1, 30]), spec('nchw', [-1, 3, 32, 32]), spec('nhwc', [-1, 24, 24, 1]), spec('tokens', [-1, 128, 64]), spec('text', [-1, 1], 'BYTES')],
      [spec('logits', [-1, 10]), spec('score', [-1, 1]), spec('boxes', [-1, 100, 4]), spec('label', [-1, 1], 'BYTES')],
    );
    expect(plan).toEqual({
      inputs: [
        { tensor: 'tabular', mode: 'elements', size: 30 },
        { tensor: 'nchw', mode: 'image', layout: 'nchw', size: 3 },
        { tensor: 'nhwc', mode: 'image', layout: 'nhwc', size: 1 },
        { tensor: 'tokens', mode: 'stats' },
      ],
      outputs: [
        { tensor: 'logits', mode: 'class', size: 10 },
        { tensor: 'score', mode: 'elements', size: 1 },
        { tensor: 'boxes', mode: 'stats' },
      ],
    });
    const names = extractionFeatureNames(plan);
    expect(names.features.slice(29, 33)).toEqual(['tabular[29]', 'nchw.c0.mean', 'nchw.c0.std', 'nchw.c1.mean']);
    expect(names.features.slice(36)).toEqual(['nchw.brightness', 'nhwc.c0.mean', 'nhwc.c0.std', 'nhwc.brightness', 'tokens.mean', 'tokens.std', 'tokens.min', 'tokens.max', 'tokens.zeros']);
    expect(names.outputs).toEqual(['logits.class', 'score[0]', 'boxes.mean', 'boxes.std', 'boxes.min', 'boxes.max', 'boxes.zeros']);
  });

  it('keeps within the feature limit: an element tensor that would pass it falls back to stats, else is left out', () => {
    const inputs = [spec('a', [-1, 64]), spec('b', [-1, 64]), spec('c', [-1, 64]), spec('d', [-1, 50]), spec('e', [-1, 20]), spec('f', [-1, 64]), spec('g', [-1, 64])];
    const plan = planExtraction(inputs, []);
    expect(plan.inputs.map((e) => `${e.tensor}:${e.mode}`)).toEqual(['a:elements', 'b:elements', 'c:elements', 'd:elements', 'e:stats', 'f:stats']);
    expect(plan.inputs.reduce((n, e) => n + extractionWidth(e), 0)).toBeLessThanOrEqual(MAX_DRIFT_FEATURES);
  });

  it('leaves out scalars and tensors of a type without numbers', () => {
    expect(planExtraction([spec('s', []), spec('b', [-1, 4], 'BYTES')], [spec('o', [-1, 2], 'BYTES')])).toEqual({ inputs: [], outputs: [] });
  });
});

describe('drift extraction: feature values', () => {
  const random = seededRandom(3);

  it('computes per-channel mean, std and brightness of NCHW and NHWC images as a direct computation does', () => {
    const [c, h, w] = [3, 5, 4];
    const plane = h * w;
    // Two samples, channels first; the same pixels channels last.
    const nchw = Float32Array.from({ length: 2 * c * plane }, () => random());
    const nhwc = new Float32Array(nchw.length);
    for (let s = 0; s < 2; s++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < plane; p++) nhwc[s * c * plane + p * c + ch] = nchw[s * c * plane + ch * plane + p]!;
    const extraction: DriftExtraction = {
      inputs: [
        { tensor: 'a', mode: 'image', layout: 'nchw', size: c },
        { tensor: 'b', mode: 'image', layout: 'nhwc', size: c },
      ],
      outputs: [],
    };
    const ex = createFeatureExtractor(extraction, { inputs: [spec('a', [-1, c, h, w]), spec('b', [-1, h, w, c])], outputs: [] });
    expect(ex.featureCount).toBe(14);
    const row = new Float64Array(ex.featureCount);
    const tensors = [
      { name: 'a', dims: [2, c, h, w], data: nchw },
      { name: 'b', dims: [2, h, w, c], data: nhwc },
    ];
    ex.inputRow(tensors, 1, row);
    const expected: number[] = [];
    for (let ch = 0; ch < c; ch++) expected.push(...moments(Array.from(nchw.subarray(c * plane + ch * plane, c * plane + (ch + 1) * plane))));
    expected.push(0.299 * expected[0]! + 0.587 * expected[2]! + 0.114 * expected[4]!);
    Array.from(row.subarray(0, 7)).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    Array.from(row.subarray(7)).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
  });

  it('reads FP16 as raw bits and INT64 as bigint, takes the class by argmax, and gives NaN for a missing tensor', () => {
    const inputs = [spec('half', [-1, 3], 'FP16'), spec('ids', [-1, 2], 'INT64'), spec('absent', [-1, 2])];
    const outputs = [spec('logits', [-1, 4]), spec('seq', [-1, 3, 4])];
    const plan = planExtraction(inputs, outputs);
    const ex = createFeatureExtractor(plan, { inputs, outputs });
    const features = new Float64Array(ex.featureCount);
    const values = new Float64Array(ex.outputCount);
    ex.inputRow(
      [
        { name: 'half', dims: [1, 3], data: Uint16Array.from([0.5, -2, 1024], toHalf) },
        { name: 'ids', dims: [1, 2], data: BigInt64Array.of(7n, 9007199254740993n) },
      ],
      0,
      features,
    );
    expect(Array.from(features.subarray(0, 4))).toEqual([0.5, -2, 1024, 7]);
    expect(features[4]).toBe(9007199254740992);
    expect(Array.from(features.subarray(5)).every(Number.isNaN)).toBe(true);
    ex.outputRow(
      [
        { name: 'logits', dims: [2, 4], data: Float32Array.of(0, 0, 0, 1, 0.1, 0.9, 0.3, 0.2) },
        { name: 'seq', dims: [2, 3, 4], data: Float32Array.from({ length: 24 }, (_, i) => (i === 14 || i === 15 ? 4 : i < 3 ? 1 : 0)) },
      ],
      1,
      values,
    );
    expect(values[0]).toBe(1);
    // seq row 1 = [0, 0, 4, 4, 0 × 8] (rank 3, 12 values: too many to track one by one): mean 2/3, min 0, max 4, zeros 10/12.
    expect(values[1]).toBeCloseTo(2 / 3, 12);
    expect(values[2]).toBeCloseTo(Math.sqrt((2 * (4 - 2 / 3) ** 2 + 10 * (2 / 3) ** 2) / 12), 12);
    expect(Array.from(values.subarray(3))).toEqual([0, 4, 10 / 12]);
    // A row past the tensor's rows is missing too.
    ex.outputRow([{ name: 'logits', dims: [1, 4], data: Float32Array.of(1, 0, 0, 0) }], 1, values);
    expect(Number.isNaN(values[0])).toBe(true);
    // A NaN score leaves the class unknown (missing), not class 0.
    for (const row of [Float32Array.of(NaN, NaN, NaN, NaN), Float32Array.of(0.1, NaN, 0.9, 0)]) {
      ex.outputRow([{ name: 'logits', dims: [1, 4], data: row }], 0, values);
      expect(Number.isNaN(values[0])).toBe(true);
    }
  });
});
