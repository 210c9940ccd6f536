import { describe, expect, it } from 'vitest';
import {
  addSample,
  baselineFromReference,
  binOf,
  emptySummary,
  imageSummaryFeatureNames,
  imageSummaryFeatures,
  MAX_DRIFT_FEATURES,
  mergeSummaries,
  summaryBytes,
  summaryInvalidity,
  summaryMismatch,
  type DriftBaseline,
  type DriftSummary,
  type NumericFeatureSummary,
  seededRandom,
} from '@edgefleet/shared';

/** The shared seeded PRNG (mulberry32), so every run sees the same data. */
const prng = seededRandom;

function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Sensor-like numeric columns: different scales, never round numbers. */
function numericColumns(features: number, rows: number, random: () => number) {
  return Array.from({ length: features }, (_, f) => ({
    name: `sensor_${f}`,
    values: Float64Array.from({ length: rows }, () => 20 + f * 3.7 + (1 + f / 7) * normal(random)),
  }));
}

function windowOf(baseline: DriftBaseline, rows: number, random: () => number): DriftSummary {
  const summary = emptySummary(baseline, 1_764_000_000_000);
  const row = new Array<number>(baseline.features.length).fill(0);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < row.length; f++) row[f] = 20 + f * 3.7 + (1 + f / 7) * normal(random);
    addSample(baseline, summary, row);
  }
  summary.window.end = summary.window.start + 60_000;
  return summary;
}

describe('drift summary format', () => {
  it('states the bytes per window of 500 samples for 30 and 50 numeric features', () => {
    const random = prng(1);
    const bytes: Record<number, number> = {};
    for (const features of [30, 50]) {
      const baseline = baselineFromReference({ features: numericColumns(features, 5000, random) });
      const summary = windowOf(baseline, 500, random);
      expect(summaryInvalidity(summary)).toBeNull();
      expect(summaryMismatch(baseline, summary)).toBeNull();
      bytes[features] = summaryBytes(summary);
    }
    // Measured: 30 features ≈ 10.6 KB, 50 ≈ 17.7 KB (12 bins; the float sums, ~18 characters each
    // in JSON, are three quarters of it). Above REFERENCES' 2–4 KB, which needs sums in fewer digits.
    console.log(`drift summary bytes per window (500 samples, 12 bins): 30 features ${bytes[30]}, 50 features ${bytes[50]}`);
    expect(bytes[30]).toBeLessThan(12 * 1024);
    expect(bytes[50]).toBeLessThan(20 * 1024);
  });

  it('bins below, inside (last edge inclusive) and above the reference range', () => {
    const edges = [0, 1, 2, 3];
    expect([-1, 0, 0.5, 1, 2.9, 3, 3.1].map((v) => binOf(edges, v))).toEqual([0, 1, 1, 2, 3, 3, 4]);
  });

  it('counts NaN as missing and tracks n, min, max, per-bin sums', () => {
    const baseline = baselineFromReference({ features: [{ name: 'x', values: Float64Array.from({ length: 100 }, (_, i) => i) }] });
    const summary = emptySummary(baseline);
    for (const v of [5, Number.NaN, -3, 250, 5.5]) addSample(baseline, summary, [v]);
    const x = summary.features[0] as NumericFeatureSummary;
    expect([x.n, x.missing, x.min, x.max]).toEqual([4, 1, -3, 250]);
    expect(x.counts[0]).toBe(1);
    expect(x.counts[x.counts.length - 1]).toBe(1);
    expect(x.sums.reduce((s, v) => s + v, 0)).toBe(5 + -3 + 250 + 5.5);
  });

  it('merges 10 device summaries into exactly the summary of the pooled data', () => {
    const random = prng(2);
    // Values on a 1/1024 grid: every float sum is exact in any order, so equality can be exact.
    const grid = () => Math.round((50 + 10 * normal(random)) * 1024) / 1024;
    const code = () => Math.floor(random() * random() * 6);
    const reference = { features: [
      { name: 'temp', values: Float64Array.from({ length: 4000 }, grid) },
      { name: 'mode', values: Float64Array.from({ length: 4000 }, code) },
    ], outputs: [{ name: 'class', values: Float64Array.from({ length: 4000 }, code) }] };
    const baseline = baselineFromReference(reference);
    expect(baseline.features.map((f) => f.kind)).toEqual(['numeric', 'categorical']);
    const pooled = emptySummary(baseline, 1000);
    const devices = Array.from({ length: 10 }, (_, d) => emptySummary(baseline, 1000 + d));
    for (const device of devices) {
      for (let r = 0; r < 300; r++) {
        const inputs = [r % 37 === 0 ? Number.NaN : grid() + 15, code()];
        const outputs = [code()];
        addSample(baseline, device, inputs, outputs);
        addSample(baseline, pooled, inputs, outputs);
      }
    }
    const merged = devices.reduce((a, b) => mergeSummaries(a, b));
    expect(merged.features).toEqual(pooled.features);
    expect(merged.outputs).toEqual(pooled.outputs);
    expect(merged.window).toEqual({ start: 1000, end: 1009 });
  });

  it('refuses to merge summaries binned on different edges, naming the feature', () => {
    const random = prng(3);
    const a = baselineFromReference({ features: numericColumns(3, 1000, random) });
    const b = baselineFromReference({ features: numericColumns(3, 1000, random) });
    expect(() => mergeSummaries(emptySummary(a), emptySummary(b))).toThrow(/feature "sensor_0": its bin edges differ/);
  });

  it('builds categorical baselines for few distinct values and dedupes edges of discrete data', () => {
    const random = prng(4);
    const flags = Float64Array.from({ length: 1000 }, () => (random() < 0.3 ? 1 : 0));
    // Integer counts, mostly 0: many equal quantiles collapse into one edge.
    const counts = Float64Array.from({ length: 1000 }, () => (random() < 0.6 ? 0 : Math.floor(random() * 40)));
    const baseline = baselineFromReference({ features: [{ name: 'flag', values: flags }, { name: 'count', values: counts }] });
    const [flag, count] = baseline.features;
    expect(flag).toEqual({ name: 'flag', kind: 'categorical', categories: [0, 1] });
    expect(count?.kind).toBe('numeric');
    const edges = count?.kind === 'numeric' ? count.edges : [];
    expect(new Set(edges).size).toBe(edges.length);
    expect(edges.length).toBeLessThan(11);
    expect(edges[0]).toBe(0);
    const reference = baseline.reference.features[1] as NumericFeatureSummary;
    expect(reference.counts.length).toBe(edges.length + 1);
    expect(reference.counts[0]).toBe(0); // below the reference minimum: empty by construction
    expect(reference.counts[reference.counts.length - 1]).toBe(0); // above the maximum too
    expect(reference.n).toBe(1000);
  });

  it('rejects bad summaries with a reason naming the problem', () => {
    const random = prng(5);
    const baseline = baselineFromReference({ features: numericColumns(2, 1000, random), outputs: [{ name: 'class', values: [0, 1, 2, 1] .concat(new Array(996).fill(0)) }] });
    const good = windowOf(baseline, 50, random);
    // Loosely typed on purpose: these edits make what a broken or hostile device could send.
    type Loose = { window: { start: number; end: number }; features: any[]; outputs: any[] };
    const bad = (edit: (s: Loose) => void) => {
      const copy = structuredClone(good) as unknown as Loose;
      edit(copy);
      return copy;
    };
    expect(summaryInvalidity(good)).toBeNull();
    expect(summaryInvalidity(bad((s) => (s.features[0].counts[3] = -1)))).toMatch(/\/features\/0\/counts\/3/);
    expect(summaryInvalidity(bad((s) => (s.features[0].counts[3] = 1.5)))).toMatch(/\/features\/0\/counts\/3.*integer/);
    expect(summaryInvalidity(bad((s) => (s.features[1].sums = s.features[1].sums.slice(1))))).toMatch(/feature "sensor_1": 11 sums for 12 bins/);
    expect(summaryInvalidity(bad((s) => (s.features[0].n += 1)))).toMatch(/feature "sensor_0": n is 51 but its counts add up to 50/);
    expect(summaryInvalidity(bad((s) => (s.features[0].extra = 1)))).toMatch(/\/features\/0/);
    expect(summaryInvalidity(bad((s) => (s.window.start = s.window.end + 1)))).toMatch(/window starts/);
    expect(summaryInvalidity(bad((s) => (s.features = new Array(MAX_DRIFT_FEATURES + 1).fill(s.features[0]))))).toMatch(/\/features.*256/);
    expect(summaryInvalidity(bad((s) => (s.features[0].counts = new Array(100).fill(0))))).toMatch(/\/features\/0/);
    expect(summaryInvalidity('not a summary')).toMatch(/does not match its schema/);
    // Schema-valid but not this baseline's shape: bins = edges + 1, names, kinds, edges.
    const shortened = bad((s) => {
      s.features[0].counts.pop();
      s.features[0].sums.pop();
      s.features[0].n = s.features[0].counts.reduce((a: number, b: number) => a + b, 0);
    });
    expect(summaryInvalidity(shortened)).toBeNull();
    expect(summaryMismatch(baseline, shortened)).toBe('feature "sensor_0" has 11 bins: 12 expected (11 edges + 1)');
    expect(summaryMismatch(baseline, bad((s) => (s.features[1].name = 'other')))).toMatch(/feature "other" found where the baseline has "sensor_1"/);
    expect(summaryMismatch(baseline, bad((s) => (s.features[1].edges ^= 1)))).toMatch(/feature "sensor_1" was binned on other edges/);
    expect(summaryMismatch(baseline, bad((s) => s.outputs.pop()))).toMatch(/0 outputs: 1 expected/);
  });

  it('computes image summary features per channel and the brightness from a CHW tensor', () => {
    const [h, w] = [4, 5];
    const tensor = new Float32Array(3 * h * w);
    for (let i = 0; i < h * w; i++) {
      tensor[i] = i % 2 === 0 ? 0.2 : 0.4; // red: mean 0.3, std 0.1
      tensor[h * w + i] = 0.5; // green: flat
      tensor[2 * h * w + i] = 1; // blue
    }
    const out = imageSummaryFeatures(tensor, [3, h, w]);
    const expected = [0.3, 0.1, 0.5, 0, 1, 0, 0.299 * 0.3 + 0.587 * 0.5 + 0.114];
    out.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 6));
    expect(imageSummaryFeatureNames('image', 3)).toEqual(['image.c0.mean', 'image.c0.std', 'image.c1.mean', 'image.c1.std', 'image.c2.mean', 'image.c2.std', 'image.brightness']);
    expect(() => imageSummaryFeatures(tensor, [3, h, w + 1])).toThrow(/60 values: 3x4x6 = 72 expected/);
  });
});
