import { MAX_SUMMARY_SAMPLES } from './limits.js';
import type { BaselineFeature, DriftBaseline, DriftSummary } from './schema.js';

/**
 * Windowed drift summaries: fixed bins from the baseline, per bin a count and a sum of the values'
 * offsets in fixed steps. Both are integers, so merging across devices and windows is exact integer
 * addition in any order, and the wire form is short (see DriftSummary in schema.ts for the layout).
 */

type Layout = Pick<DriftBaseline, 'features' | 'outputs'>;

/**
 * Steps per inner bin. A value in an inner bin falls in step k = floor(SUM_STEPS · (value − lower
 * edge) / width) (clamped to SUM_STEPS − 1) and adds 2k − (SUM_STEPS − 1): its step's middle as an
 * offset from the bin's middle, in half-steps (odd integers −15 … 15). Centring keeps a bin's sum
 * near 0 (±65 for 50 values instead of ~375 from the lower edge): 129 fewer bytes for 50 features,
 * which is what brings them under 4 KB. The mean comes back as lower edge + (Σ/count + SUM_STEPS)/2
 * steps; each value is off by at most half a step (1/32 of the bin), the mean by far less on
 * average, which KS and W1 do not see.
 */
export const SUM_STEPS = 16;
/**
 * Open bins (below the first edge, above the last) count steps away from that edge, in steps of the
 * neighbouring inner bin (its width / SUM_STEPS); with a single edge (constant reference) the step is
 * max(1, |edge|) / 1024. A value farther than OPEN_BIN_MAX_STEPS counts as that far, so sums stay
 * exact integers; its count alone already shows the drift.
 */
export const OPEN_BIN_MAX_STEPS = 1 << 20;

/** 32-bit FNV-1a over bytes. */
function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

/** 32-bit FNV-1a over the float64 bytes of `values`: the identity of a feature's edges or categories. */
export function edgesFingerprint(values: readonly number[]): number {
  return fnv1a(new Uint8Array(Float64Array.from(values).buffer));
}

/**
 * Identity of a baseline's layout: names, kinds and the fingerprint of each feature's edges or
 * categories, features then outputs. Summaries made on different baselines never merge.
 */
export function layoutFingerprint(baseline: Layout): number {
  const describe = (f: BaselineFeature) => `${f.kind}:${f.name}:${edgesFingerprint(f.kind === 'numeric' ? f.edges : f.categories)}`;
  const text = `${baseline.features.map(describe).join('|')}#${baseline.outputs.map(describe).join('|')}`;
  return fnv1a(new TextEncoder().encode(text));
}

/** Bins of a feature or output in `counts`: numeric edges + 1 (two open bins), categorical categories + 1 ("other"). */
export const binsOf = (f: BaselineFeature): number => (f.kind === 'numeric' ? f.edges.length + 1 : f.categories.length + 1);

/** Lengths of the flat arrays for `baseline`. */
export function summaryLengths(baseline: Layout): { counts: number; sums: number; missing: number } {
  let counts = 0;
  let sums = 0;
  for (const f of [...baseline.features, ...baseline.outputs]) {
    counts += binsOf(f);
    if (f.kind === 'numeric') sums += f.edges.length + 1;
  }
  return { counts, sums, missing: baseline.features.length + baseline.outputs.length };
}

/** A summary with every count zero, shaped by `baseline`; the window is [start, start]. */
export function emptySummary(baseline: Layout, start = 0): DriftSummary {
  const lengths = summaryLengths(baseline);
  return {
    window: { start, end: start },
    baseline: layoutFingerprint(baseline),
    counts: new Array<number>(lengths.counts).fill(0),
    sums: new Array<number>(lengths.sums).fill(0),
    missing: new Array<number>(lengths.missing).fill(0),
  };
}

/** Width of one sum step in bin `bin` of a feature with these edges (see SUM_STEPS, OPEN_BIN_MAX_STEPS). */
export function binStep(edges: readonly number[], bin: number): number {
  const last = edges.length;
  if (last === 1) return Math.max(1, Math.abs(edges[0] as number)) / 1024;
  const inner = bin === 0 ? 1 : bin === last ? last - 1 : bin;
  return ((edges[inner] as number) - (edges[inner - 1] as number)) / SUM_STEPS;
}

/** What `value` adds to the step sum of its bin `bin`: half-steps from the middle (inner bins), whole steps from the edge (open bins). */
export function stepsOf(edges: readonly number[], bin: number, value: number): number {
  const step = binStep(edges, bin);
  if (bin === 0) return Math.min(OPEN_BIN_MAX_STEPS, Math.floor(((edges[0] as number) - value) / step));
  if (bin === edges.length) return Math.min(OPEN_BIN_MAX_STEPS, Math.floor((value - (edges[bin - 1] as number)) / step));
  return 2 * Math.min(SUM_STEPS - 1, Math.floor((value - (edges[bin - 1] as number)) / step)) - (SUM_STEPS - 1);
}

/** Mean value of bin `bin` from its count and step sum (each value at its step's middle); NaN when empty. */
export function binMean(edges: readonly number[], bin: number, count: number, steps: number): number {
  if (count === 0) return Number.NaN;
  const inner = bin !== 0 && bin !== edges.length;
  const offset = (inner ? (steps / count + SUM_STEPS) / 2 : steps / count + 0.5) * binStep(edges, bin);
  return bin === 0 ? (edges[0] as number) - offset : (edges[bin - 1] as number) + offset;
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

/**
 * Adds one sample in place (the hot path: no allocation, binary search per value). `inputs` holds
 * one value per baseline feature in its order, `outputs` one per baseline output (a classifier's
 * class index, or a regressed value); NaN counts as missing, and so does every output when
 * `outputs` is absent: each sample adds exactly one to every feature and output, which
 * `summaryMismatch` requires. The summary holds only a fingerprint of the baseline, so the baseline
 * comes along.
 */
export function addSample(baseline: Layout, summary: DriftSummary, inputs: ArrayLike<number>, outputs?: ArrayLike<number>): void {
  let countAt = 0;
  let sumAt = 0;
  const features = baseline.features;
  for (let i = 0; i < features.length; i++) {
    const feature = features[i] as BaselineFeature;
    addValue(feature, summary, countAt, sumAt, i, inputs[i] ?? Number.NaN);
    countAt += binsOf(feature);
    if (feature.kind === 'numeric') sumAt += feature.edges.length + 1;
  }
  const outs = baseline.outputs;
  for (let i = 0; i < outs.length; i++) {
    const feature = outs[i] as BaselineFeature;
    addValue(feature, summary, countAt, sumAt, features.length + i, outputs?.[i] ?? Number.NaN);
    countAt += binsOf(feature);
    if (feature.kind === 'numeric') sumAt += feature.edges.length + 1;
  }
}

/** Adds one value of `feature`, whose bins start at countAt (and its sums at sumAt), missing at slot. */
function addValue(feature: BaselineFeature, summary: DriftSummary, countAt: number, sumAt: number, slot: number, value: number): void {
  const { counts, sums, missing } = summary;
  if (Number.isNaN(value)) {
    missing[slot] = (missing[slot] as number) + 1;
    return;
  }
  if (feature.kind === 'categorical') {
    const at = countAt + categoryOf(feature.categories, value);
    counts[at] = (counts[at] as number) + 1;
    return;
  }
  const bin = binOf(feature.edges, value);
  counts[countAt + bin] = (counts[countAt + bin] as number) + 1;
  sums[sumAt + bin] = (sums[sumAt + bin] as number) + stepsOf(feature.edges, bin, value);
}

const addArrays = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x + (b[i] as number));

/** The summary of both windows' data together (new object): integer additions, so exact. */
export function mergeSummaries(a: DriftSummary, b: DriftSummary): DriftSummary {
  if (a.baseline !== b.baseline) {
    throw new Error(`cannot merge drift summaries made on different baselines (layout fingerprints ${a.baseline} and ${b.baseline})`);
  }
  for (const key of ['counts', 'sums', 'missing'] as const) {
    if (a[key].length !== b[key].length) throw new Error(`cannot merge drift summaries: ${a[key].length} ${key} against ${b[key].length}`);
  }
  return {
    window: { start: Math.min(a.window.start, b.window.start), end: Math.max(a.window.end, b.window.end) },
    baseline: a.baseline,
    counts: addArrays(a.counts, b.counts),
    sums: addArrays(a.sums, b.sums),
    missing: addArrays(a.missing, b.missing),
  };
}

/**
 * Samples in a summary: every sample adds one value (or one missing) to each feature and output, so
 * the first one's counts and missing give the number (`summaryMismatch` refuses a summary whose
 * features disagree). 0 for a baseline with nothing tracked.
 */
export function summarySamples(baseline: Layout, summary: DriftSummary): number {
  const first = baseline.features[0] ?? baseline.outputs[0];
  if (first === undefined) return 0;
  let n = summary.missing[0] ?? 0;
  for (let bin = 0; bin < binsOf(first); bin++) n += summary.counts[bin] ?? 0;
  return n;
}

/** Bytes of the summary as sent (JSON, UTF-8). */
export function summaryBytes(summary: DriftSummary): number {
  return Buffer.byteLength(JSON.stringify(summary));
}

/**
 * Why a schema-valid summary does not fit `baseline`, or null: its layout fingerprint, the lengths
 * of its arrays, the samples each feature and output holds (Σ counts + missing: the same for all,
 * since every sample adds one to each; more than 0, at most MAX_SUMMARY_SAMPLES — a summary's weight
 * in a merged window is its sample count, so inflated or inconsistent counts would let one device
 * outweigh the fleet), and each step sum against what its bin's count allows (an inner bin adds at
 * most ±(SUM_STEPS − 1) per value, an open bin 0 … OPEN_BIN_MAX_STEPS), naming the feature and bin.
 */
export function summaryMismatch(baseline: Layout, summary: DriftSummary): string | null {
  const expected = layoutFingerprint(baseline);
  if (summary.baseline !== expected) return `summary was made on another baseline (layout fingerprint ${summary.baseline}, this baseline's is ${expected})`;
  const lengths = summaryLengths(baseline);
  for (const key of ['counts', 'sums', 'missing'] as const) {
    if (summary[key].length !== lengths[key]) return `summary has ${summary[key].length} ${key}: ${lengths[key]} expected by the baseline`;
  }
  let countAt = 0;
  let sumAt = 0;
  let slot = 0;
  let first: { name: string; samples: number } | undefined;
  for (const [list, where] of [[baseline.features, 'feature'], [baseline.outputs, 'output']] as const) {
    for (const feature of list) {
      const bins = binsOf(feature);
      let samples = summary.missing[slot++] as number;
      for (let bin = 0; bin < bins; bin++) samples += summary.counts[countAt + bin] as number;
      if (first === undefined) first = { name: `${where} "${feature.name}"`, samples };
      else if (samples !== first.samples) {
        return `${where} "${feature.name}" holds ${samples} samples (counts + missing), ${first.name} ${first.samples}: every sample counts once in each feature and output`;
      }
      if (feature.kind === 'numeric') {
        for (let bin = 0; bin < bins; bin++) {
          const count = summary.counts[countAt + bin] as number;
          const steps = summary.sums[sumAt + bin] as number;
          const open = bin === 0 || bin === bins - 1;
          const most = count * (open ? OPEN_BIN_MAX_STEPS : SUM_STEPS - 1);
          if (open && steps < 0) return `${where} "${feature.name}" bin ${bin}: step sum ${steps} is negative (open bins count steps away from the edge)`;
          if (Math.abs(steps) > most) return `${where} "${feature.name}" bin ${bin}: step sum ${steps} is beyond what its ${count} values allow (${open ? `0 … ${most}` : `±${most}`})`;
        }
        sumAt += bins;
      }
      countAt += bins;
    }
  }
  if (first === undefined) return 'summary holds no samples: its baseline tracks no feature or output';
  if (first.samples === 0) return 'summary holds no samples: every count and missing is 0';
  if (first.samples > MAX_SUMMARY_SAMPLES) return `summary holds ${first.samples} samples (${first.name}): at most ${MAX_SUMMARY_SAMPLES} expected in one summary`;
  return null;
}
