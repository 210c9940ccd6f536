import { Compile } from 'typebox/compile';
import {
  DriftSummary,
  type BaselineFeature,
  type CategoricalFeatureSummary,
  type DriftBaseline,
  type FeatureSummary,
  type NumericFeatureSummary,
} from './schema.js';

/**
 * Windowed drift summaries: fixed bins from the baseline, per bin a count and a sum of values.
 * Counts merge exactly across devices and windows; float sums merge exactly whenever the additions
 * are exact (values on a binary grid, as the merge test uses) and otherwise within one rounding per
 * addition, which no score can see.
 */

/** 32-bit FNV-1a over the float64 bytes of `values`: the identity of a feature's edges or categories. */
export function edgesFingerprint(values: readonly number[]): number {
  const bytes = new Uint8Array(Float64Array.from(values).buffer);
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

function emptyFeature(feature: BaselineFeature): FeatureSummary {
  if (feature.kind === 'categorical') {
    const counts = new Array<number>(feature.categories.length + 1).fill(0);
    return { name: feature.name, categories: edgesFingerprint(feature.categories), counts, n: 0, missing: 0 };
  }
  const bins = feature.edges.length + 1;
  return {
    name: feature.name,
    edges: edgesFingerprint(feature.edges),
    counts: new Array<number>(bins).fill(0),
    sums: new Array<number>(bins).fill(0),
    n: 0,
    missing: 0,
    min: 0,
    max: 0,
  };
}

/** A summary with every count zero, shaped by `baseline`; the window is [start, start]. */
export function emptySummary(baseline: Pick<DriftBaseline, 'features' | 'outputs'>, start = 0): DriftSummary {
  return {
    window: { start, end: start },
    features: baseline.features.map(emptyFeature),
    outputs: baseline.outputs.map(emptyFeature),
  };
}

/**
 * The bin of `value`: bin 0 is below the first edge, bin i (1 ≤ i < edges) is [e(i−1), e(i)), the
 * last edge is inclusive (the reference maximum stays in range), bin `edges` is above it. Binary
 * search: constant work per value for a fixed number of edges.
 */
export function binOf(edges: readonly number[], value: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((edges[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo === edges.length && value === edges[lo - 1] ? lo - 1 : lo;
}

/** Index of `value` among ascending `categories`, or categories.length ("other"). */
export function categoryOf(categories: readonly number[], value: number): number {
  let lo = 0;
  let hi = categories.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = categories[mid] as number;
    if (c === value) return mid;
    if (c < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return categories.length;
}

function addValue(feature: BaselineFeature, summary: FeatureSummary, value: number): void {
  if (Number.isNaN(value)) {
    summary.missing++;
    return;
  }
  if (feature.kind === 'categorical') {
    const counts = (summary as CategoricalFeatureSummary).counts;
    const index = categoryOf(feature.categories, value);
    counts[index] = (counts[index] as number) + 1;
    summary.n++;
    return;
  }
  const numeric = summary as NumericFeatureSummary;
  const bin = binOf(feature.edges, value);
  numeric.counts[bin] = (numeric.counts[bin] as number) + 1;
  numeric.sums[bin] = (numeric.sums[bin] as number) + value;
  if (numeric.n === 0) {
    numeric.min = value;
    numeric.max = value;
  } else if (value < numeric.min) numeric.min = value;
  else if (value > numeric.max) numeric.max = value;
  numeric.n++;
}

/**
 * Adds one sample in place (the hot path: no allocation, binary search per value). `inputs` holds
 * one value per baseline feature in its order, `outputs` one per baseline output (a classifier's
 * class index, or a regressed value); NaN counts as missing. The summary carries only fingerprints
 * of the edges, so the baseline comes along.
 */
export function addSample(
  baseline: Pick<DriftBaseline, 'features' | 'outputs'>,
  summary: DriftSummary,
  inputs: ArrayLike<number>,
  outputs?: ArrayLike<number>,
): void {
  const features = baseline.features;
  for (let i = 0; i < features.length; i++) {
    addValue(features[i] as BaselineFeature, summary.features[i] as FeatureSummary, inputs[i] ?? Number.NaN);
  }
  if (outputs === undefined) return;
  const outs = baseline.outputs;
  for (let i = 0; i < outs.length; i++) {
    addValue(outs[i] as BaselineFeature, summary.outputs[i] as FeatureSummary, outputs[i] ?? Number.NaN);
  }
}

const addArrays = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x + (b[i] as number));

function mergeFeature(a: FeatureSummary, b: FeatureSummary, where: string): FeatureSummary {
  if (a.name !== b.name) throw new Error(`cannot merge ${where}: feature "${a.name}" meets "${b.name}"`);
  if ('categories' in a) {
    if (!('categories' in b) || a.categories !== b.categories || a.counts.length !== b.counts.length) {
      throw new Error(`cannot merge feature "${a.name}": its categories differ between the summaries (different baselines)`);
    }
    return { name: a.name, categories: a.categories, counts: addArrays(a.counts, b.counts), n: a.n + b.n, missing: a.missing + b.missing };
  }
  if (!('edges' in b) || a.edges !== b.edges || a.counts.length !== b.counts.length) {
    throw new Error(`cannot merge feature "${a.name}": its bin edges differ between the summaries (different baselines)`);
  }
  const min = a.n === 0 ? b.min : b.n === 0 ? a.min : Math.min(a.min, b.min);
  const max = a.n === 0 ? b.max : b.n === 0 ? a.max : Math.max(a.max, b.max);
  return {
    name: a.name,
    edges: a.edges,
    counts: addArrays(a.counts, b.counts),
    sums: addArrays(a.sums, b.sums),
    n: a.n + b.n,
    missing: a.missing + b.missing,
    min,
    max,
  };
}

function mergeList(a: readonly FeatureSummary[], b: readonly FeatureSummary[], where: string): FeatureSummary[] {
  if (a.length !== b.length) throw new Error(`cannot merge ${where}: ${a.length} against ${b.length} (different baselines)`);
  return a.map((f, i) => mergeFeature(f, b[i] as FeatureSummary, where));
}

/** The summary of both windows' data together (new object); throws naming the feature whose edges differ. */
export function mergeSummaries(a: DriftSummary, b: DriftSummary): DriftSummary {
  return {
    window: { start: Math.min(a.window.start, b.window.start), end: Math.max(a.window.end, b.window.end) },
    features: mergeList(a.features, b.features, 'features'),
    outputs: mergeList(a.outputs, b.outputs, 'outputs'),
  };
}

/** Bytes of the summary as sent (JSON, UTF-8; names are ASCII in practice). */
export function summaryBytes(summary: DriftSummary): number {
  return Buffer.byteLength(JSON.stringify(summary));
}

const summaryValidator = Compile(DriftSummary);

function featureInvalidity(f: FeatureSummary, where: string): string | null {
  const total = f.counts.reduce((s, c) => s + c, 0);
  if (total !== f.n) return `${where} "${f.name}": n is ${f.n} but its counts add up to ${total}`;
  if ('sums' in f) {
    if (f.sums.length !== f.counts.length) return `${where} "${f.name}": ${f.sums.length} sums for ${f.counts.length} bins (one per bin expected)`;
    if (f.n > 0 && f.min > f.max) return `${where} "${f.name}": min ${f.min} is above max ${f.max}`;
  }
  return null;
}

/**
 * Why `value` is not a valid drift summary, or null when it is: the schema first (bounds, integer
 * non-negative counts), then the rules across fields. Never throws.
 */
export function summaryInvalidity(value: unknown): string | null {
  try {
    if (!summaryValidator.Check(value)) {
      const first = summaryValidator.Errors(value)[0];
      return `drift summary does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
    }
    const summary = value as DriftSummary;
    if (summary.window.start > summary.window.end) return `drift summary window starts (${summary.window.start}) after it ends (${summary.window.end})`;
    for (const [list, where] of [[summary.features, 'feature'], [summary.outputs, 'output']] as const) {
      for (const f of list) {
        const problem = featureInvalidity(f, where);
        if (problem !== null) return `drift summary ${problem}`;
      }
    }
    return null;
  } catch (err) {
    return `drift summary could not be checked: ${(err as Error).message}`;
  }
}

function featureMismatch(base: BaselineFeature, f: FeatureSummary | undefined, where: string): string | null {
  if (f === undefined) return `${where} "${base.name}" is missing from the summary`;
  if (f.name !== base.name) return `${where} "${f.name}" found where the baseline has "${base.name}"`;
  if (base.kind === 'categorical') {
    if (!('categories' in f)) return `${where} "${base.name}" is categorical in the baseline, numeric in the summary`;
    const expected = base.categories.length + 1;
    if (f.counts.length !== expected) return `${where} "${base.name}" has ${f.counts.length} counts: ${expected} expected (${base.categories.length} categories + other)`;
    if (f.categories !== edgesFingerprint(base.categories)) return `${where} "${base.name}" was counted on other categories than the baseline's`;
    return null;
  }
  if (!('edges' in f)) return `${where} "${base.name}" is numeric in the baseline, categorical in the summary`;
  const expected = base.edges.length + 1;
  if (f.counts.length !== expected) return `${where} "${base.name}" has ${f.counts.length} bins: ${expected} expected (${base.edges.length} edges + 1)`;
  if (f.edges !== edgesFingerprint(base.edges)) return `${where} "${base.name}" was binned on other edges than the baseline's`;
  return null;
}

/** Why a schema-valid summary does not fit `baseline` (count, names, bins = edges + 1), or null. */
export function summaryMismatch(baseline: Pick<DriftBaseline, 'features' | 'outputs'>, summary: DriftSummary): string | null {
  for (const [base, got, where] of [[baseline.features, summary.features, 'feature'], [baseline.outputs, summary.outputs, 'output']] as const) {
    if (got.length !== base.length) return `summary has ${got.length} ${where}s: ${base.length} expected by the baseline`;
    for (let i = 0; i < base.length; i++) {
      const problem = featureMismatch(base[i] as BaselineFeature, got[i], where);
      if (problem !== null) return problem;
    }
  }
  return null;
}
