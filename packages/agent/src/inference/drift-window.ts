import { datatypeFromOrt, layoutFingerprint, mergeSummaries, type DriftBaseline, type DriftSummary } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { WorkerDriftPart } from './drift-takes.js';
import type { DriftWindow, FieldSampleCandidate, Tensor } from './types.js';
import type { FieldSampleOptions, WireFieldSample } from './worker-protocol.js';

// The main thread's side of a drift take: the workers' windows of one loaded version merged into
// one. Pure apart from the logger and Math.random (which samples to keep).

function toCandidate(sample: WireFieldSample): FieldSampleCandidate | null {
  const inputs: Tensor[] = [];
  for (const t of sample.inputs) {
    const datatype = datatypeFromOrt(t.type);
    if (!datatype) return null;
    inputs.push({ name: t.name, datatype, shape: t.dims, data: t.data });
  }
  return { reason: sample.reason, margin: sample.margin, entropy: sample.entropy, takenAt: sample.takenAt, inputs };
}

/** `count` of `list` chosen uniformly (Fisher–Yates on a copy's prefix). */
function pick<T>(list: readonly T[], count: number): T[] {
  const copy = [...list];
  for (let i = 0; i < Math.min(count, copy.length); i++) {
    const j = i + Math.floor(Math.random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy.slice(0, count);
}

/**
 * One window from every worker's part. Every part was made on this pool's baseline (one pool per
 * model version, and its workers, respawned ones included, all get that baseline), but a part whose
 * layout is not this baseline's is dropped with a warning rather than merged: mergeSummaries would
 * throw, and a window must never mix versions. Each worker kept its own field samples, so the union
 * is cut back to the per-window limits: a uniform choice of the random ones, the lowest margins of
 * the hard ones.
 */
export function mergeDriftParts(baseline: DriftBaseline, parts: readonly WorkerDriftPart[], fieldSamples: FieldSampleOptions | undefined, log: Logger): DriftWindow {
  const expected = layoutFingerprint(baseline);
  let summary: DriftSummary | null = null;
  const random: FieldSampleCandidate[] = [];
  const hard: FieldSampleCandidate[] = [];
  for (const part of parts) {
    if (part.summary) {
      if (part.summary.baseline !== expected) {
        log.warn({ worker: part.worker, layout: part.summary.baseline, expected }, 'drift window of another baseline dropped');
        continue;
      }
      summary = summary ? mergeSummaries(summary, part.summary) : part.summary;
    }
    for (const sample of part.samples) {
      const candidate = toCandidate(sample);
      if (candidate) (candidate.reason === 'hard' ? hard : random).push(candidate);
    }
  }
  const randomLimit = fieldSamples?.randomPerWindow ?? 0;
  const hardLimit = fieldSamples?.hardPerWindow ?? 0;
  hard.sort((a, b) => (a.margin ?? 1) - (b.margin ?? 1));
  return { summary, samples: [...pick(random, randomLimit), ...hard.slice(0, hardLimit)] };
}
