import {
  addSample,
  baselineFromReference,
  createFeatureExtractor,
  emptySummary,
  extractionFeatureNames,
  featureHistograms,
  type DriftBaseline,
  type DriftExtraction,
  type DriftSummary,
} from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { normal, prng, referenceBaseline, windowSummary } from './drift-evaluation-fixtures.js';
import { binnedKsAndWasserstein, chiSquare, jensenShannon, psi, PSI_BASE, psiThreshold, scoreFeatures } from '../src/drift/drift-math.js';

/** The test's 30 mixed tabular features (shared with the evaluation tests); a shifted feature moves by 0.5 σ here. */
const window = (baseline: DriftBaseline, rows: number, random: () => number, shifted: ReadonlySet<number> = new Set()): DriftSummary =>
  windowSummary(baseline, rows, random, { shifted, shiftSd: 0.5 });

function rawKs(a: Float64Array, b: Float64Array): number {
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i] as number, y[j] as number);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

/** Wasserstein-1 of two equal-size samples: mean distance between matching order statistics. */
function rawWasserstein(a: Float64Array, b: Float64Array): number {
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.abs((x[i] as number) - (y[i] as number));
  return sum / x.length;
}

describe('drift maths', () => {
  const baseline = referenceBaseline(10_000, prng(11));

  it('builds the mixed baseline as intended', () => {
    const kinds = baseline.features.map((f) => f.kind);
    expect(kinds.filter((k) => k === 'categorical').length).toBe(6); // the f % 5 = 4 codes
    expect(featureHistograms(baseline, baseline.reference).every((f) => f.n === 10_000)).toBe(true);
  });

  it('raises (almost) no false alarm over 100 windows of 500 samples drawn from the reference', () => {
    const random = prng(12);
    let alarms = 0;
    let noiseOnly = 0;
    let maxScore = 0;
    for (let w = 0; w < 100; w++) {
      const scores = scoreFeatures(baseline, window(baseline, 500, random));
      alarms += scores.filter((s) => s.drifted).length;
      noiseOnly += scores.filter((s) => s.psi > s.threshold - PSI_BASE).length;
      maxScore = Math.max(maxScore, scores[0]?.score ?? 0);
    }
    // 3,000 feature tests. The noise term alone is crossed with probability 0.001 each (3 expected),
    // and the base 0.1 on top makes a false alarm far rarer: at most 3 is a generous bound.
    console.log(`false alarms: ${alarms} of 3000 feature-windows (noise term alone crossed ${noiseOnly} times); highest score ${maxScore.toFixed(3)} (1 = threshold)`);
    expect(alarms).toBeLessThanOrEqual(3);
    // The noise model itself: crossing the noise quantile alone should be rare (Poisson mean 3;
    // more than 12 would have probability < 1e-4 if the χ² model held).
    expect(noiseOnly).toBeLessThanOrEqual(12);
  });

  it('puts exactly the 3 features shifted by 0.5 σ on top, the continuous ones over the threshold', () => {
    const random = prng(13);
    const shifted = new Set([0, 7, 13]); // a normal, a uniform, an integer count
    const overThreshold = new Map<string, number>();
    for (let w = 0; w < 10; w++) {
      const scores = scoreFeatures(baseline, window(baseline, 500, random, shifted));
      const top = scores.slice(0, 3);
      expect(new Set(top.map((s) => s.name))).toEqual(new Set(['f0', 'f7', 'f13']));
      expect(scores.slice(3).some((s) => s.drifted)).toBe(false);
      for (const s of top) if (s.drifted) overThreshold.set(s.name, (overThreshold.get(s.name) ?? 0) + 1);
      if (w === 0) console.log(`shifted scores: ${top.map((s) => `${s.name} psi ${s.psi.toFixed(3)} js ${s.js.toFixed(3)} ks ${s.ks?.toFixed(3)} (threshold ${s.threshold.toFixed(3)})`).join('; ')}; next ${scores[3]?.name} psi ${scores[3]?.psi.toFixed(3)}`);
    }
    console.log(`windows of 10 over the threshold: ${[...overThreshold].map(([n, c]) => `${n} ${c}`).join(', ')}`);
    expect(overThreshold.get('f0')).toBe(10);
    expect(overThreshold.get('f7')).toBe(10);
    // A 0.5 σ shift of a count with σ = 2 moves it by one unit: PSI sits near the threshold.
    expect(overThreshold.get('f13') ?? 0).toBeGreaterThanOrEqual(5);
  });

  it('gets KS from bins within 0.02 of the raw KS on 5,000 samples', () => {
    const random = prng(14);
    const cases = [
      { name: 'normal, no shift', draw: () => normal(random), shift: 0 },
      { name: 'normal, 0.5 σ', draw: () => normal(random), shift: 0.5 },
      { name: 'normal, 0.1 σ', draw: () => normal(random), shift: 0.1 },
      { name: 'log-normal, ×1.2', draw: () => Math.exp(0.5 * normal(random)), shift: 0, scale: 1.2 },
      { name: 'uniform, +0.3', draw: () => random(), shift: 0.3 },
    ];
    const gaps: string[] = [];
    for (const c of cases) {
      const ref = Float64Array.from({ length: 5000 }, c.draw);
      const cur = Float64Array.from({ length: 5000 }, () => c.draw() * (c.scale ?? 1) + c.shift);
      const base = baselineFromReference({ features: [{ name: 'x', values: ref }] });
      const summary = emptySummary(base);
      for (const v of cur) addSample(base, summary, [v]);
      const edges = base.features[0]?.kind === 'numeric' ? base.features[0].edges : [];
      const [refSide] = featureHistograms(base, base.reference);
      const [curSide] = featureHistograms(base, summary);
      const side = (h: typeof refSide) => ({ counts: h?.counts ?? [], n: h?.n ?? 0, means: h?.means ?? [] });
      const binned = binnedKsAndWasserstein(edges, side(refSide), side(curSide));
      const raw = rawKs(ref, cur);
      gaps.push(`${c.name}: raw ${raw.toFixed(4)} binned ${binned.ks.toFixed(4)}`);
      expect(Math.abs(binned.ks - raw), c.name).toBeLessThan(0.02);
      const w1 = rawWasserstein(ref, cur);
      gaps.push(`W1 raw ${w1.toFixed(4)} binned ${binned.wasserstein.toFixed(4)}`);
      expect(Math.abs(binned.wasserstein - w1), c.name).toBeLessThan(0.1 * w1 + 0.01);
    }
    console.log(`KS: ${gaps.join('; ')}`);
  });

  it('detects a brightness shift on image summary features', () => {
    const random = prng(15);
    const [c, h, w] = [3, 8, 8];
    const image = (gain: number) => Float32Array.from({ length: c * h * w }, (_, i) => gain * (0.3 + 0.1 * Math.floor(i / (h * w)) + 0.1 * random()));
    const extraction: DriftExtraction = { inputs: [{ tensor: 'image', mode: 'image', layout: 'nchw', size: c }], outputs: [] };
    const extractor = createFeatureExtractor(extraction, { inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, c, h, w] }], outputs: [] });
    const features = (gain: number, out: Float64Array) => extractor.inputRow([{ name: 'image', dims: [1, c, h, w], data: image(gain) }], 0, out);
    const names = extractionFeatureNames(extraction).features;
    const columns = names.map((name) => ({ name, values: new Float64Array(2000) }));
    const out = new Float64Array(names.length);
    for (let r = 0; r < 2000; r++) {
      features(1 + 0.05 * normal(random), out);
      columns.forEach((col, i) => (col.values[r] = out[i] as number));
    }
    const base = baselineFromReference({ features: columns });
    const darker = emptySummary(base);
    for (let r = 0; r < 500; r++) {
      features(0.9 + 0.05 * normal(random), out);
      addSample(base, darker, out);
    }
    const scores = scoreFeatures(base, darker);
    expect(scores.find((s) => s.name === 'image.brightness')?.drifted).toBe(true);
    expect(scores[0]?.name).toMatch(/mean|brightness/);
  });

  it('has the textbook values on small cases', () => {
    expect(psi([100, 100], [100, 100])).toBe(0);
    expect(Number.isFinite(psi([0, 50, 50, 0], [10, 40, 40, 10]))).toBe(true);
    expect(jensenShannon([1, 0], [0, 1])).toBeCloseTo(1, 12);
    expect(jensenShannon([5, 5], [5, 5])).toBe(0);
    // 2 × 2 table [[30, 10], [10, 30]]: χ² = 20 with 1 degree of freedom.
    expect(chiSquare([30, 10], [10, 30])).toEqual({ statistic: 20, df: 1 });
    // Noise part: (1/500 + 1/10000) · χ²₁₁(0.999) ≈ 0.0021 · 31.26.
    expect(psiThreshold(12, 500, 10_000)).toBeCloseTo(0.1 + 0.0021 * 31.26, 3);
    // REFERENCES: at n = 100, B = 10 a fixed 0.1 is crossed by chance 38 % of the time; the noise-aware threshold is far above it.
    expect(psiThreshold(10, 100, 1e9)).toBeGreaterThan(0.37);
    expect(psiThreshold(12, 0, 10_000)).toBe(Number.POSITIVE_INFINITY);
  });
});
