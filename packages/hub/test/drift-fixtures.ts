import { addSample, baselineFromReference, emptySummary, type DriftBaseline, type DriftSummary } from '@edgefleet/shared';
import type { DriftBaselines } from '../src/drift/drift-baselines.js';

/**
 * Drift baselines for ingest tests without building them from a model: two numeric input columns
 * and a three-class output, made with baselineFromReference from fixed reference data.
 */
export function testBaseline(offset = 0): DriftBaseline {
  const rows = 200;
  const a = Float64Array.from({ length: rows }, (_, i) => i / 10 + offset);
  const b = Float64Array.from({ length: rows }, (_, i) => Math.sin(i) * 5);
  const cls = Float64Array.from({ length: rows }, (_, i) => i % 3);
  return baselineFromReference({ features: [{ name: 'a', values: a }, { name: 'b', values: b }], outputs: [{ name: 'class', values: cls, categories: [0, 1, 2] }] });
}

/** A window of `samples` in-range samples summarised on `baseline`. */
export function windowSummary(baseline: DriftBaseline, samples = 50, start = Date.now() - 60_000): DriftSummary {
  const summary = emptySummary(baseline, start);
  for (let i = 0; i < samples; i++) addSample(baseline, summary, [(i % 20) / 2, Math.cos(i) * 4], [i % 3]);
  summary.window.end = start + 60_000;
  return summary;
}

/** The DriftBaselines interface over a fixed map of model@version → baseline (the hub's own reads artifacts). */
export function inMemoryBaselines(entries: ReadonlyArray<{ model: string; version: string; baseline: DriftBaseline }>): DriftBaselines {
  const byKey = new Map(entries.map((e) => [`${e.model}\n${e.version}`, e.baseline]));
  return {
    get: (model, version) => byKey.get(`${model}\n${version}`),
    info: () => undefined,
    list: () => [],
  };
}
