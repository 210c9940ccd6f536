import type { Datatype, ShadowResult } from '@edgefleet/shared';
import { fromHalf } from './half-float.js';
import type { Tensor } from './types.js';

// How a candidate's outputs are judged against the active version's on the same request. Pure.

/** Relative tolerance for floating-point outputs that are not class scores: |c − a| ≤ TOLERANCE·(1 + |a|). */
export const SHADOW_TOLERANCE = 1e-3;
/** ShadowResult caps numbers (JSON has no Infinity); an incomparable output counts as this far off. */
export const MAX_REPORTED_DIFF = 1e300;

export interface SampleComparison {
  agrees: boolean;
  /** Largest |candidate − active| over all outputs (MAX_REPORTED_DIFF when they cannot be compared). */
  maxAbsDiff: number;
}

type Values = ArrayLike<number | bigint>;

const FLOAT_TYPES: ReadonlySet<Datatype> = new Set(['FP16', 'FP32', 'FP64']);

/** Class scores: floating-point rows of more than one score. An integer output holds labels or counts, whose argmax position means nothing. */
function isClassScores(t: Tensor): boolean {
  return FLOAT_TYPES.has(t.datatype) && t.shape.length >= 2 && t.shape.at(-1)! > 1;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A tensor's elements as numbers to compare: FP16 travels as raw bits, whose order and distance are not the values'. */
function valuesOf(t: Tensor): Values {
  return t.datatype === 'FP16' ? Float32Array.from(t.data as Uint16Array, fromHalf) : t.data;
}

/** Per row, the index of the largest score; -1 for a row with a NaN, which picks no class at all. */
function argmaxRows(values: Values, rowLength: number): number[] {
  const rows = values.length / rowLength;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bestValue = -Infinity;
    for (let i = 0; i < rowLength; i++) {
      const v = Number(values[r * rowLength + i]!);
      if (Number.isNaN(v)) {
        // Without this a NaN row keeps index 0 and "agrees" wherever the active version picks class 0.
        best = -1;
        break;
      }
      if (v > bestValue) {
        best = i;
        bestValue = v;
      }
    }
    out.push(best);
  }
  return out;
}

/** |c − a|, 0 when equal: ∞ − ∞ is NaN, and an output that is −∞ (log 0) on both sides is no difference. */
function absDiff(c: number, a: number): number {
  return c === a ? 0 : Math.abs(c - a);
}

function maxAbsDiffOf(candidate: Values, active: Values): number {
  let worst = 0;
  for (let i = 0; i < active.length; i++) {
    const d = absDiff(Number(candidate[i]!), Number(active[i]!));
    // NaN on either side is as far apart as it gets.
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/** Labels, counts, masks: equal or not (int64 compared exactly, not through a double). */
function equalElements(candidate: Values, active: Values): boolean {
  for (let i = 0; i < active.length; i++) {
    const a = active[i]!;
    const c = candidate[i]!;
    if (typeof a === 'bigint' && typeof c === 'bigint' ? a !== c : Number(a) !== Number(c)) return false;
  }
  return true;
}

function withinTolerance(candidate: Values, active: Values): boolean {
  for (let i = 0; i < active.length; i++) {
    const a = Number(active[i]!);
    const c = Number(candidate[i]!);
    // An infinite active value would make the tolerance infinite too: only the same infinity agrees.
    if (!Number.isFinite(a)) {
      if (c !== a) return false;
    } else if (!(absDiff(c, a) <= SHADOW_TOLERANCE * (1 + Math.abs(a)))) return false;
  }
  return true;
}

/**
 * One request. When the first output holds class scores (floating point, rank ≥ 2, last dimension
 * over 1) agreement is top-1 — argmax over the last dimension, every row — so a classifier that
 * picks the same class agrees whatever its scores. Otherwise every output agrees element by
 * element: integer and boolean outputs (by the active version's datatype) exactly, floating-point
 * ones within SHADOW_TOLERANCE. maxAbsDiff spans all outputs. Outputs the candidate lacks, or of
 * another shape, disagree.
 */
export function compareSample(active: readonly Tensor[], candidate: readonly Tensor[]): SampleComparison {
  const found = active.map((a) => ({ a, c: candidate.find((c) => c.name === a.name) }));
  if (found.length === 0 || found.some(({ a, c }) => !c || !sameShape(c.shape, a.shape) || c.data.length !== a.data.length)) {
    return { agrees: false, maxAbsDiff: MAX_REPORTED_DIFF };
  }
  const pairs = found.map(({ a, c }) => ({ active: a, a: valuesOf(a), c: valuesOf(c!) }));
  let maxAbsDiff = 0;
  for (const { a, c } of pairs) maxAbsDiff = Math.max(maxAbsDiff, maxAbsDiffOf(c, a));
  const first = pairs[0]!;
  let agrees: boolean;
  if (isClassScores(first.active)) {
    const lastDim = first.active.shape.at(-1)!;
    const activeTop1 = argmaxRows(first.a, lastDim);
    // A NaN row (-1) agrees with nothing, not even another NaN row: NaN is as far apart as it gets.
    agrees = argmaxRows(first.c, lastDim).every((cls, row) => cls >= 0 && cls === activeTop1[row]);
  } else {
    agrees = pairs.every(({ active: t, a, c }) => (FLOAT_TYPES.has(t.datatype) ? withinTolerance(c, a) : equalElements(c, a)));
  }
  return { agrees, maxAbsDiff: Math.min(maxAbsDiff, MAX_REPORTED_DIFF) };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** What a shadow session saw so far. A candidate run that failed is a sample that disagrees. */
export interface ShadowTally {
  samples: number;
  agreeing: number;
  maxAbsDiff: number;
  activeMs: number[];
  candidateMs: number[];
}

export function emptyTally(): ShadowTally {
  return { samples: 0, agreeing: 0, maxAbsDiff: 0, activeMs: [], candidateMs: [] };
}

/** Adds one sample: a comparison with both latencies, or a candidate failure (no outputs, no latency of its own). */
export function addSample(tally: ShadowTally, sample: { comparison: SampleComparison; activeMs: number; candidateMs: number } | { failed: true; activeMs: number }): void {
  tally.samples++;
  tally.activeMs.push(sample.activeMs);
  if ('failed' in sample) return;
  if (sample.comparison.agrees) tally.agreeing++;
  tally.maxAbsDiff = Math.max(tally.maxAbsDiff, sample.comparison.maxAbsDiff);
  tally.candidateMs.push(sample.candidateMs);
}

/**
 * The reported result. With no samples nothing was compared and agreement is 0, so a minAgreement
 * check never passes a version that was not compared; callers that accept "no local traffic" look at
 * `samples`.
 */
export function summarize(tally: ShadowTally): ShadowResult {
  const clampMs = (ms: number) => Math.min(Math.max(ms, 0), 1e9);
  return {
    samples: tally.samples,
    agreement: tally.samples === 0 ? 0 : tally.agreeing / tally.samples,
    maxAbsDiff: tally.maxAbsDiff,
    activeP50Ms: clampMs(median(tally.activeMs)),
    candidateP50Ms: clampMs(median(tally.candidateMs)),
  };
}
