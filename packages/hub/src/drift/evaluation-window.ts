import { mergeSummaries, summarySamples, type DriftBaseline, type DriftSummary } from '@edgefleet/shared';

/**
 * Evaluation windows: consecutive summaries of one scope (a device, or the fleet) merged until they
 * hold at least `minSamples` samples. Pure. A summary cannot be split, so a window closes with the
 * summary that carries it over the minimum and nothing is carried into the next one; what stays
 * below the minimum is the scope's pending summary, kept until more arrives.
 */

/** The fleet's scope key in drift_pending (a device's is its id). */
export const FLEET_SCOPE = '';

export interface PendingWindow {
  summary: DriftSummary;
  samples: number;
}

export interface WindowStep {
  /** What stays pending after this summary (null: nothing, the window closed). */
  pending: PendingWindow | null;
  /** The window this summary closed, if any. */
  closed: PendingWindow | null;
  /** True when the pending summary was made on another baseline layout and was dropped. */
  droppedStale: boolean;
}

/**
 * Adds one summary to a scope's pending window. A pending summary from an earlier baseline layout
 * (the version's baseline was rebuilt) cannot merge with the new one: it is dropped, not scored
 * against a baseline it was not made on.
 */
export function addToWindow(baseline: DriftBaseline, pending: PendingWindow | null, summary: DriftSummary, minSamples: number): WindowStep {
  const stale = pending !== null && pending.summary.baseline !== summary.baseline;
  const base = stale ? null : pending;
  const merged = base === null ? summary : mergeSummaries(base.summary, summary);
  const samples = (base?.samples ?? 0) + summarySamples(baseline, summary);
  const window = { summary: merged, samples };
  return samples >= minSamples ? { pending: null, closed: window, droppedStale: stale } : { pending: window, closed: null, droppedStale: stale };
}
