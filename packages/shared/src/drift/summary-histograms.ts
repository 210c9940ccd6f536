import type { DriftBaseline, DriftSummary } from './schema.js';
import { binMean, binsOf } from './summary.js';

type Layout = Pick<DriftBaseline, 'features' | 'outputs'>;

/** One feature or output of a summary, decoded against its baseline (for scoring; allocates). */
export interface FeatureHistogram {
  name: string;
  role: 'input' | 'output';
  kind: 'numeric' | 'categorical';
  counts: number[];
  /** Mean value per bin (NaN when empty); numeric features only. */
  means: number[] | null;
  /** Non-missing values: Σ counts. */
  n: number;
  missing: number;
}

/** The summary's features then outputs as histograms, in baseline order. The summary must fit (`summaryMismatch`). */
export function featureHistograms(baseline: Layout, summary: DriftSummary): FeatureHistogram[] {
  const out: FeatureHistogram[] = [];
  let countAt = 0;
  let sumAt = 0;
  let slot = 0;
  for (const [list, role] of [[baseline.features, 'input'], [baseline.outputs, 'output']] as const) {
    for (const feature of list) {
      const bins = binsOf(feature);
      const counts = summary.counts.slice(countAt, countAt + bins);
      let means: number[] | null = null;
      if (feature.kind === 'numeric') {
        const edges = feature.edges;
        means = counts.map((c, bin) => binMean(edges, bin, c, summary.sums[sumAt + bin] as number));
        sumAt += bins;
      }
      out.push({ name: feature.name, role, kind: feature.kind, counts, means, n: counts.reduce((s, c) => s + c, 0), missing: summary.missing[slot] as number });
      countAt += bins;
      slot++;
    }
  }
  return out;
}
