import { describe, expect, it } from 'vitest';
import {
  addSample,
  baselineFromReference,
  binOf,
  binStep,
  emptySummary,
  featureHistograms,
  mergeSummaries,
  summaryBytes,
  summaryInvalidity,
  summaryMismatch,
  summarySamples,
  MAX_SUMMARY_SAMPLES,
  type DriftBaseline,
  type DriftSummary,
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
    // Flat integer arrays (counts, step sums, missing) and no names: REFERENCES' 2–4 KB for 50
    // features. (Per-feature objects with float sums were 10.6 KB and 17.7 KB.)
    console.log(`drift summary bytes per window (500 samples, 12 bins): 30 features ${bytes[30]}, 50 features ${bytes[50]}`);
    expect(bytes[30]).toBeLessThanOrEqual(2.5 * 1024);
    expect(bytes[50]).toBeLessThanOrEqual(4 * 1024);
  });

  it('bins below, inside (last edge inclusive) and above the reference range', () => {
    const edges = [0, 1, 2, 3];
    expect([-1, 0, 0.5, 1, 2.9, 3, 3.1].map((v) => binOf(edges, v))).toEqual([0, 1, 1, 2, 3, 3, 4]);
  });

  it('counts NaN as missing and recovers each bin mean within half a step', () => {
    const baseline = baselineFromReference({ features: [{ name: 'x', values: Float64Array.from({ length: 100 }, (_, i) => i) }] });
    const summary = emptySummary(baseline);
    for (const v of [5, Number.NaN, -3, 250, 5.5]) addSample(baseline, summary, [v]);
    expect(summary.sums.every(Number.isInteger)).toBe(true);
    const [x] = featureHistograms(baseline, summary);
    expect([x?.n, x?.missing]).toEqual([4, 1]);
    const last = (x?.counts.length ?? 0) - 1;
    expect([x?.counts[0], x?.counts[1], x?.counts[last]]).toEqual([1, 2, 1]);
    const edges = baseline.features[0]?.kind === 'numeric' ? baseline.features[0].edges : [];
    // Each value is off by at most half a step (floor, then the middle of the step), so is the mean.
    for (const [bin, mean] of [[0, -3], [1, 5.25], [last, 250]] as const) {
      expect(Math.abs((x?.means?.[bin] ?? Number.NaN) - mean), `bin ${bin}`).toBeLessThanOrEqual(binStep(edges, bin) / 2);
    }
  });

  it('merges 10 device summaries into exactly the summary of the pooled data', () => {
    const random = prng(2);
    // Counts and step sums are integers: any merge order gives exactly the pooled summary.
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
    expect({ ...merged, window: pooled.window }).toEqual(pooled);
    expect(merged.window).toEqual({ start: 1000, end: 1009 });
  });

  it('refuses to merge summaries made on different baselines', () => {
    const random = prng(3);
    const a = baselineFromReference({ features: numericColumns(3, 1000, random) });
    const b = baselineFromReference({ features: numericColumns(3, 1000, random) });
    expect(() => mergeSummaries(emptySummary(a), emptySummary(b))).toThrow(/different baselines \(layout fingerprints \d+ and \d+\)/);
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
    const bins = featureHistograms(baseline, baseline.reference)[1]?.counts ?? [];
    expect(bins.length).toBe(edges.length + 1);
    expect(bins[0]).toBe(0); // below the reference minimum: empty by construction
    expect(bins[bins.length - 1]).toBe(0); // above the maximum too
    expect(featureHistograms(baseline, baseline.reference)[1]?.n).toBe(1000);
  });

  it('rejects bad summaries with a reason naming the problem', () => {
    const random = prng(5);
    const baseline = baselineFromReference({ features: numericColumns(2, 1000, random), outputs: [{ name: 'class', values: [0, 1, 2, 1] .concat(new Array(996).fill(0)) }] });
    const good = windowOf(baseline, 50, random);
    // Loosely typed on purpose: these edits make what a broken or hostile device could send.
    type Loose = { window: { start: number; end: number }; baseline: number; counts: number[]; sums: number[]; missing: number[]; [key: string]: unknown };
    const bad = (edit: (s: Loose) => void) => {
      const copy = structuredClone(good) as unknown as Loose;
      edit(copy);
      return copy;
    };
    expect(summaryInvalidity(good)).toBeNull();
    expect(summaryMismatch(baseline, good)).toBeNull();
    expect(summaryInvalidity(bad((s) => (s.counts[3] = -1)))).toMatch(/\/counts\/3/);
    expect(summaryInvalidity(bad((s) => (s.counts[3] = 1.5)))).toMatch(/\/counts\/3.*integer/);
    expect(summaryInvalidity(bad((s) => (s.sums[2] = 0.25)))).toMatch(/\/sums\/2.*integer/);
    expect(summaryInvalidity(bad((s) => (s.missing[0] = -2)))).toMatch(/\/missing\/0/);
    expect(summaryInvalidity(bad((s) => (s.extra = 1)))).toMatch(/does not match its schema/);
    expect(summaryInvalidity(bad((s) => (s.window.start = s.window.end + 1)))).toMatch(/window starts/);
    expect(summaryInvalidity(bad((s) => (s.counts = new Array(100_000).fill(0))))).toMatch(/\/counts/);
    expect(summaryInvalidity('not a summary')).toMatch(/does not match its schema/);
    // Schema-valid but not this baseline's: fingerprint, lengths, step sums its counts cannot hold.
    const shortened = bad((s) => s.counts.pop());
    expect(summaryInvalidity(shortened)).toBeNull();
    expect(summaryMismatch(baseline, shortened)).toBe('summary has 27 counts: 28 expected by the baseline');
    expect(summaryMismatch(baseline, bad((s) => s.sums.pop()))).toBe('summary has 23 sums: 24 expected by the baseline');
    expect(summaryMismatch(baseline, bad((s) => s.missing.pop()))).toBe('summary has 2 missing: 3 expected by the baseline');
    expect(summaryMismatch(baseline, bad((s) => (s.baseline ^= 1)))).toMatch(/made on another baseline/);
    expect(summaryMismatch(baseline, bad((s) => (s.sums[13] = (s.counts[13] ?? 0) * 15 + 1)))).toMatch(/feature "sensor_1" bin 1: step sum \d+ is beyond what its \d+ values allow \(±\d+\)/);
    expect(summaryMismatch(baseline, bad((s) => (s.sums[13] = -(s.counts[13] ?? 0) * 15 - 1)))).toMatch(/feature "sensor_1" bin 1: step sum -\d+ is beyond/);
    expect(summaryMismatch(baseline, bad((s) => (s.sums[12] = -1)))).toMatch(/feature "sensor_1" bin 0: step sum -1 is negative/);
  });

  it('refuses summaries whose features disagree on the sample count, hold none, or more than MAX_SUMMARY_SAMPLES', () => {
    const random = prng(6);
    const baseline = baselineFromReference({ features: numericColumns(2, 1000, random), outputs: [{ name: 'class', values: Float64Array.from({ length: 1000 }, (_, i) => i % 3) }] });
    const good = windowOf(baseline, 50, random);
    // windowOf gives no outputs: each sample then counts as missing in every output.
    expect(good.missing).toEqual([0, 0, 50]);
    expect(summaryMismatch(baseline, good)).toBeNull();
    const edited = (edit: (s: DriftSummary) => void) => {
      const copy = structuredClone(good);
      edit(copy);
      return copy;
    };
    const bins = (baseline.features[0]?.kind === 'numeric' ? baseline.features[0].edges.length : 0) + 1;
    // The first feature all zero: summarySamples alone would read 0 and the rest would still count.
    const firstZero = edited((s) => {
      for (let b = 0; b < bins; b++) s.counts[b] = 0;
      for (let b = 0; b < bins; b++) s.sums[b] = 0;
    });
    expect(summarySamples(baseline, firstZero)).toBe(0);
    expect(summaryMismatch(baseline, firstZero)).toBe('feature "sensor_1" holds 50 samples (counts + missing), feature "sensor_0" 0: every sample counts once in each feature and output');
    expect(summaryMismatch(baseline, edited((s) => (s.missing[2] = 49)))).toBe('output "class" holds 49 samples (counts + missing), feature "sensor_0" 50: every sample counts once in each feature and output');
    expect(summaryMismatch(baseline, emptySummary(baseline))).toBe('summary holds no samples: every count and missing is 0');
    // Every count ×1e9 (consistent, step sums scaled too): one device would outweigh the fleet.
    const inflated = edited((s) => {
      s.counts = s.counts.map((c) => c * 1e9);
      s.sums = s.sums.map((c) => c * 1e9);
      s.missing = s.missing.map((c) => c * 1e9);
    });
    expect(summaryInvalidity(inflated)).toBeNull();
    expect(summaryMismatch(baseline, inflated)).toBe(`summary holds 50000000000 samples (feature "sensor_0"): at most ${MAX_SUMMARY_SAMPLES} expected in one summary`);
    // The bound itself is admitted: all samples missing in every feature and output.
    const allMissing = (n: number) => edited((s) => {
      s.counts.fill(0);
      s.sums.fill(0);
      s.missing.fill(n);
    });
    expect(summaryMismatch(baseline, allMissing(MAX_SUMMARY_SAMPLES))).toBeNull();
    expect(summaryMismatch(baseline, allMissing(MAX_SUMMARY_SAMPLES + 1))).toMatch(/holds 10000001 samples/);
  });

  it('counts a sample with no outputs as missing in every output, so totals agree', () => {
    const baseline = baselineFromReference({
      features: [{ name: 'x', values: Float64Array.from({ length: 200 }, (_, i) => i) }],
      outputs: [{ name: 'y', values: Float64Array.from({ length: 200 }, (_, i) => i / 2) }, { name: 'class', values: Float64Array.from({ length: 200 }, (_, i) => i % 2) }],
    });
    const summary = emptySummary(baseline);
    addSample(baseline, summary, [1]);
    addSample(baseline, summary, [], [3, 1]);
    addSample(baseline, summary, [Number.NaN], [Number.NaN]);
    expect(summary.missing).toEqual([2, 2, 2]);
    expect(summarySamples(baseline, summary)).toBe(3);
    expect(summaryMismatch(baseline, summary)).toBeNull();
  });
});
