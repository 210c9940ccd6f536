import { DEFAULT_BUDGET, type AccuracyBudget, type TypedTensor } from '@edgefleet/shared';
import { float16BitsToFloat32 } from '@edgefleet/shared/onnx';

/**
 * How a variant compares with fp32: pure maths over outputs both produced on the same samples, and
 * the budget rules that accept or reject it. The worker runs the models; nothing here does I/O.
 */

/** Where the compared samples came from, for the reason text and the evaluation record. */
export type EvaluationData = 'calibration' | 'generated';

/** Fidelity of a variant over the compared samples (the `VariantEvaluation` fields it fills). */
export interface Fidelity {
  samples: number;
  /** Share of rows whose top-1 equals fp32's; null when the first output has no class axis. */
  agreement: number | null;
  accuracy: number | null;
  fp32Accuracy: number | null;
  maxAbsError: number;
  meanAbsError: number;
  relativeError: number;
}

/** Float values of a tensor as float32 (FP16 decoded from its bits); null for integer and bool tensors. */
export function floatValues(t: TypedTensor): Float32Array | Float64Array | null {
  if (t.datatype === 'FP32' || t.datatype === 'FP64') return t.data as Float32Array | Float64Array;
  if (t.datatype === 'FP16') return float16BitsToFloat32(t.data as Uint16Array);
  return null;
}

/** Index of the largest value in each row of `classes` values (first on ties). */
export function top1Rows(values: ArrayLike<number>, classes: number): number[] {
  const rows: number[] = [];
  for (let start = 0; start + classes <= values.length; start += classes) {
    let best = start;
    for (let i = start + 1; i < start + classes; i++) if (values[i]! > values[best]!) best = i;
    rows.push(best - start);
  }
  return rows;
}

/** The class axis of a float output: its last dimension when that is > 1. */
export function classAxisSize(t: TypedTensor): number | null {
  const last = t.shape.at(-1);
  return floatValues(t) !== null && last !== undefined && last > 1 ? last : null;
}

export interface FidelityTally {
  /** Adds one sample: both models' outputs in the same order, and the sample's label when known. */
  add(fp32: readonly TypedTensor[], variant: readonly TypedTensor[], label?: number): void;
  result(): Fidelity;
}

/**
 * Accumulates fidelity sample by sample, so no sample's outputs outlive its comparison. Top-1 uses
 * the first output (every row of its class axis); errors cover every float output; accuracy needs a
 * label per sample and exactly one row per sample.
 */
export function fidelityTally(): FidelityTally {
  let samples = 0;
  let rows = 0;
  let agreeing = 0;
  let classified = true;
  let labelled = 0;
  let correct = 0;
  let fp32Correct = 0;
  let labelsUsable = true;
  let maxAbs = 0;
  let sumAbs = 0;
  let sumRef = 0;
  let elements = 0;

  const add: FidelityTally['add'] = (fp32, variant, label) => {
    if (fp32.length !== variant.length) throw new Error(`the variant produced ${variant.length} outputs, fp32 ${fp32.length}`);
    samples++;
    fp32.forEach((ref, i) => {
      const got = variant[i]!;
      const a = floatValues(ref);
      const b = floatValues(got);
      if (!a || !b) return;
      if (a.length !== b.length) throw new Error(`output ${ref.name}: the variant produced ${b.length} values, fp32 ${a.length}`);
      for (let k = 0; k < a.length; k++) {
        const diff = Math.abs(b[k]! - a[k]!);
        if (diff > maxAbs || Number.isNaN(diff)) maxAbs = Number.isNaN(diff) ? Infinity : diff;
        sumAbs += diff;
        sumRef += Math.abs(a[k]!);
      }
      elements += a.length;
    });
    const classes = classAxisSize(fp32[0]!);
    if (classes === null) {
      classified = false;
      return;
    }
    const expected = top1Rows(floatValues(fp32[0]!)!, classes);
    const actual = top1Rows(floatValues(variant[0]!)!, classes);
    rows += expected.length;
    expected.forEach((c, r) => {
      if (actual[r] === c) agreeing++;
    });
    if (label === undefined) return;
    if (expected.length !== 1) labelsUsable = false;
    labelled++;
    if (expected[0] === label) fp32Correct++;
    if (actual[0] === label) correct++;
  };

  const result = (): Fidelity => {
    const withLabels = labelsUsable && classified && labelled > 0 && labelled === samples;
    return {
      samples,
      agreement: classified && rows > 0 ? agreeing / rows : null,
      accuracy: withLabels ? correct / labelled : null,
      fp32Accuracy: withLabels ? fp32Correct / labelled : null,
      maxAbsError: maxAbs,
      meanAbsError: elements > 0 ? sumAbs / elements : 0,
      // An all-zero fp32 output makes any difference infinitely relative; 0 only when both are 0.
      relativeError: sumRef > 0 ? sumAbs / sumRef : sumAbs > 0 ? Infinity : 0,
    };
  };
  return { add, result };
}

/** The p-th percentile (0–100) by linear interpolation between the sorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('cannot take a percentile of no values');
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile must be in [0, 100], got ${p}`);
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p / 100) * (sorted.length - 1);
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (at - low);
}

/**
 * The golden tolerance a variant's manifest carries: its largest deviation from fp32 on the golden
 * inputs in the agent's comparison form |a−b| ≤ atol·(1+|b|), never below the fp32 default 1e-4.
 */
export function goldenTolerance(fp32: readonly TypedTensor[], variant: readonly TypedTensor[]): { atol: number } {
  let atol = 1e-4;
  fp32.forEach((ref, i) => {
    const a = floatValues(ref);
    const b = variant[i] ? floatValues(variant[i]) : null;
    if (!a || !b) return;
    for (let k = 0; k < a.length; k++) atol = Math.max(atol, Math.abs(b[k]! - a[k]!) / (1 + Math.abs(a[k]!)));
  });
  return { atol };
}

export type MergedBudget = AccuracyBudget & { minAgreement: number; maxRelativeError: number };

/** The version's budget over the defaults. */
export function mergeBudget(budget: AccuracyBudget): MergedBudget {
  return { ...DEFAULT_BUDGET, ...budget };
}

export interface Judgement {
  state: 'accepted' | 'rejected';
  /** Every broken rule with its numbers, joined; null when accepted. */
  reason: string | null;
}

const fmt = (x: number): string => (Number.isFinite(x) ? String(Number(x.toPrecision(3))) : String(x));

function sampleNote(f: Fidelity, data: EvaluationData): string {
  return data === 'calibration' ? `${f.samples} held-out samples` : `${f.samples} generated samples`;
}

/**
 * Accepts or rejects against the budget (merged with DEFAULT_BUDGET). Top-1 agreement rules a
 * classifier; the relative error rules an output with no class axis — and a classifier too when the
 * budget sets `maxRelativeError` itself, since then the owner asked for it. With labels, the
 * accuracy drop from fp32 is checked against `maxAccuracyDrop` when set.
 */
export function judgeVariant(f: Fidelity, data: EvaluationData, budget: AccuracyBudget): Judgement {
  const rules = mergeBudget(budget);
  const on = sampleNote(f, data);
  const broken: string[] = [];
  if (f.agreement !== null && f.agreement < rules.minAgreement) {
    broken.push(`top-1 agreement ${fmt(f.agreement)} < ${fmt(rules.minAgreement)} required (${on})`);
  }
  const relativeApplies = f.agreement === null || budget.maxRelativeError !== undefined;
  if (relativeApplies && !(f.relativeError <= rules.maxRelativeError)) {
    broken.push(`relative error ${fmt(f.relativeError)} > ${fmt(rules.maxRelativeError)} allowed (mean |variant − fp32| / mean |fp32|, ${on})`);
  }
  if (rules.maxAccuracyDrop !== undefined && f.accuracy !== null && f.fp32Accuracy !== null) {
    const drop = f.fp32Accuracy - f.accuracy;
    if (drop > rules.maxAccuracyDrop) {
      broken.push(`top-1 accuracy ${fmt(f.accuracy)} vs fp32 ${fmt(f.fp32Accuracy)}: drop ${fmt(drop)} > ${fmt(rules.maxAccuracyDrop)} allowed (${on})`);
    }
  }
  return broken.length === 0 ? { state: 'accepted', reason: null } : { state: 'rejected', reason: broken.join('; ') };
}
