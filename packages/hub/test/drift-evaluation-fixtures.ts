import { addSample, baselineFromReference, emptySummary, seededRandom, type BaselineInfo, type DriftBaseline, type DriftSummary } from '@edgefleet/shared';
import type { DriftBaselines } from '../src/drift/drift-baselines.js';

/**
 * Tabular drift data for evaluation tests: 30 features of mixed kinds (normals at different scales,
 * log-normals, uniforms, integer counts, categorical codes), each with the standard deviation a
 * test shifts it by. Seeded (shared mulberry32), so every run sees the same numbers.
 */
export const FEATURES = 30;
const SD = Array.from({ length: FEATURES }, (_, f) => [1 + f / 5, 0.5, 2.9, 2, 0][f % 5] as number);
export const normal = (random: () => number) => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

export const prng = (seed: number): (() => number) => seededRandom(seed);

function draw(f: number, random: () => number, shiftSd: number): number {
  const shift = shiftSd * (SD[f] as number);
  switch (f % 5) {
    case 0: return 10 * f + (SD[f] as number) * normal(random) + shift;
    case 1: return Math.exp(0.5 * normal(random)) + shift;
    case 2: return 10 * random() + shift;
    case 3: return Math.max(0, Math.round(4 + 2 * normal(random) + shift));
    default: {
      const u = random();
      return u < 0.5 ? 0 : u < 0.8 ? 1 : u < 0.95 ? 2 : 3;
    }
  }
}

export function referenceBaseline(rows: number, random: () => number): DriftBaseline {
  const columns = Array.from({ length: FEATURES }, (_, f) => ({ name: `f${f}`, values: new Float64Array(rows) }));
  for (let r = 0; r < rows; r++) columns.forEach((c, f) => (c.values[r] = draw(f, random, 0)));
  return baselineFromReference({ features: columns });
}

/** A device's summary of `rows` samples made at `start`..`start + 1000`; features in `shifted` moved by `shiftSd` standard deviations. */
export function windowSummary(baseline: DriftBaseline, rows: number, random: () => number, opts: { shifted?: ReadonlySet<number>; shiftSd?: number; start?: number } = {}): DriftSummary {
  const summary = emptySummary(baseline, opts.start ?? 0);
  const row = new Array<number>(FEATURES).fill(0);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < FEATURES; f++) row[f] = draw(f, random, opts.shifted?.has(f) ? (opts.shiftSd ?? 1) : 0);
    addSample(baseline, summary, row);
  }
  summary.window.end = (opts.start ?? 0) + 1000;
  return summary;
}

/** An in-memory DriftBaselines for one version (the hub's real one loads artifacts). */
export function oneBaseline(model: string, version: string, baseline: DriftBaseline): DriftBaselines & { remove(): void } {
  let current: DriftBaseline | undefined = baseline;
  const info = (): BaselineInfo => ({
    model,
    version,
    source: 'reference',
    samples: 20_000,
    features: [],
    outputs: [],
    sha256: '0'.repeat(64),
    size: 1,
    summaryBytes: 0,
    createdAt: new Date(0).toISOString(),
  });
  return {
    get: (m, v) => (m === model && v === version ? current : undefined),
    info: (m, v) => (current && m === model && v === version ? info() : undefined),
    list: () => (current ? [info()] : []),
    remove: () => {
      current = undefined;
    },
  };
}
