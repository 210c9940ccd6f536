/**
 * Pure helpers for the models page: how ratios, shares and sizes read, and the row each variant of a
 * VariantList (packages/shared/src/api/variants.ts) shows. No DOM here.
 */

/** The profiles in the order the hub lists them (PROFILES in packages/shared/src/api/variants.ts). */
export const PROFILES = ['fp32', 'fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned'];
const DASH = '—';

const missing = (x) => x === null || x === undefined || !Number.isFinite(x);

/** 0.2612 → "0.26x": sizes and latencies against fp32. */
export function ratioText(x) {
  if (missing(x)) return DASH;
  return `${x.toFixed(x >= 10 ? 1 : 2)}x`;
}

/**
 * 0.9934 → "99.3 %". One decimal, more only where one would round a share that is not whole onto
 * 0 % or 100 % (99.97 % agreement must not read as 100 %).
 */
export function percentText(x) {
  if (missing(x)) return DASH;
  const p = x * 100;
  if (Number.isInteger(p)) return `${p} %`;
  for (let digits = 1; digits < 4; digits += 1) {
    const text = p.toFixed(digits);
    if (Number(text) !== 100 && Number(text) !== 0) return `${text} %`;
  }
  return `${p.toFixed(4)} %`;
}

export function msText(x) {
  if (missing(x)) return DASH;
  return `${x.toFixed(x < 10 ? 2 : 1)} ms`;
}

export function bytesText(n) {
  if (missing(n)) return DASH;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** A small number as plain text: 0.0123 → "0.0123", 3 → "3". */
export function plainText(x) {
  if (missing(x)) return DASH;
  return Number.isInteger(x) ? String(x) : x.toPrecision(3).replace(/0+$/, '').replace(/\.$/, '');
}

/** Where a profile goes in the table and the chart: the hub's order, unknown ones last. */
export function profileOrder(a, b) {
  const ia = PROFILES.indexOf(a);
  const ib = PROFILES.indexOf(b);
  return (ia < 0 ? PROFILES.length : ia) - (ib < 0 ? PROFILES.length : ib) || a.localeCompare(b);
}

/** fp32's top-1 accuracy, as measured beside any variant (fp32 has no evaluation of its own). */
function fp32AccuracyOf(variants) {
  return variants.find((v) => v.evaluation?.fp32Accuracy !== null && v.evaluation?.fp32Accuracy !== undefined)?.evaluation.fp32Accuracy ?? null;
}

/**
 * The numbers one table row (and one chart category) shows. fp32 is the reference: its ratios are 1
 * by definition, its transfer ratio is its own transfer copy's, its accuracy fp32's as measured beside
 * the others; a variant not evaluated yet has none.
 */
export function variantRows(variants) {
  const fp32Accuracy = fp32AccuracyOf(variants);
  return [...variants].sort((a, b) => profileOrder(a.profile, b.profile)).map((v) => {
    const e = v.evaluation;
    if (v.profile === 'fp32') {
      return {
        profile: v.profile, state: v.state, reason: v.reason, reference: true,
        sizeRatio: 1,
        transferRatio: v.transfer && v.size ? v.transfer.size / v.size : 1,
        agreement: null, accuracy: fp32Accuracy, latencyRatio: 1, quantizedWeightShare: null,
        size: v.size, transferSize: v.transfer?.size ?? v.size, latencyMs: variants.find((x) => x.evaluation)?.evaluation.fp32LatencyMs ?? null,
        evaluation: null,
      };
    }
    return {
      profile: v.profile, state: v.state, reason: v.reason, reference: false,
      sizeRatio: e?.sizeRatio ?? null,
      transferRatio: e?.transferRatio ?? null,
      agreement: e?.agreement ?? null,
      accuracy: e?.accuracy ?? null,
      latencyRatio: e?.latencyRatio ?? null,
      quantizedWeightShare: e?.quantizedWeightShare ?? null,
      size: v.size, transferSize: v.transfer?.size ?? v.size, latencyMs: e?.latencyMs ?? null,
      evaluation: e,
    };
  });
}

/** "3 of 5 profiles · int8-static: evaluate" for a VariantBuild's progress. */
export function buildProgressText(build) {
  const { done, total, profile, step } = build.progress;
  const now = build.state === 'running' && profile ? ` · ${profile}${step ? `: ${step}` : ''}` : '';
  return `${done} of ${total} profile${total === 1 ? '' : 's'}${now}`;
}

/** A build's share done, 0..1 (a build of nothing is done). */
export function buildShare(build) {
  const { done, total } = build.progress;
  if (total <= 0) return build.state === 'done' ? 1 : 0;
  return Math.min(1, Math.max(0, done / total));
}

/** States a build does not leave by itself. */
export const SETTLED_BUILD_STATES = new Set(['done', 'failed']);

/** An AccuracyBudget as one line: "agreement ≥ 99 % · relative error ≤ 5 %". */
export function budgetText(budget) {
  if (!budget) return '';
  const parts = [];
  if (budget.minAgreement !== undefined) parts.push(`top-1 agreement ≥ ${percentText(budget.minAgreement)}`);
  if (budget.maxAccuracyDrop !== undefined) parts.push(`accuracy drop ≤ ${percentText(budget.maxAccuracyDrop)}`);
  if (budget.maxRelativeError !== undefined) parts.push(`relative error ≤ ${percentText(budget.maxRelativeError)}`);
  return parts.join(' · ');
}

/** What decided a plan, in words for the table's tooltip. */
export const DECISION_TITLES = {
  measurement: 'latency this device (or its class) measured',
  rule: 'the planner’s rule for this device class',
  pinned: 'pinned by an operator',
  default: 'nothing better known: fp32',
};
