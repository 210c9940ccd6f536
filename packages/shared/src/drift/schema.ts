import { Type, type Static } from 'typebox';

/**
 * Wire shapes of drift tracking: the baseline (computed on the hub from reference data, travels with
 * the model) and the windowed summary (built on the device, merged on the hub).
 *
 * A summary carries no bin edges, only a fingerprint of them: edges live in the baseline, which both
 * sides hold, so a window of 50 features stays small. Cross-field rules JSON Schema cannot say
 * (counts and sums of equal length, n = Σ counts, bins = edges + 1 against the baseline) are checked
 * by `summaryInvalidity` and `summaryMismatch` in summary.ts.
 */

/** Most input features tracked per model (image-style inputs use summary features instead). */
export const MAX_DRIFT_FEATURES = 256;
/** Most output summaries per model (a classifier has one: the class; regressors one per value). */
export const MAX_DRIFT_OUTPUTS = 64;
/** Most bin edges of a numeric feature; bins = edges + 1 (one open bin below, one above). */
export const MAX_DRIFT_EDGES = 64;
/** Most known categories of a categorical feature (1000 ImageNet classes fit); plus one "other". */
export const MAX_DRIFT_CATEGORIES = 1024;

const Finite = Type.Number({ minimum: -1e300, maximum: 1e300 });
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const FeatureName = Type.String({ minLength: 1, maxLength: 128 });
/** 32-bit FNV-1a of the edges' (or categories') float64 bytes: refuses merging across baselines. */
const Fingerprint = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const CLOSED = { additionalProperties: false } as const;

export const NumericFeatureSummary = Type.Object(
  {
    name: FeatureName,
    edges: Fingerprint,
    counts: Type.Array(Count, { minItems: 2, maxItems: MAX_DRIFT_EDGES + 1 }),
    sums: Type.Array(Finite, { minItems: 2, maxItems: MAX_DRIFT_EDGES + 1 }),
    /** Non-missing values: Σ counts. */
    n: Count,
    /** NaN values (not binned). */
    missing: Count,
    /** Smallest and largest value seen; both 0 while n = 0. */
    min: Finite,
    max: Finite,
  },
  CLOSED,
);
export type NumericFeatureSummary = Static<typeof NumericFeatureSummary>;

export const CategoricalFeatureSummary = Type.Object(
  {
    name: FeatureName,
    categories: Fingerprint,
    /** One count per known category of the baseline, in its order, then "other". */
    counts: Type.Array(Count, { minItems: 2, maxItems: MAX_DRIFT_CATEGORIES + 1 }),
    n: Count,
    missing: Count,
  },
  CLOSED,
);
export type CategoricalFeatureSummary = Static<typeof CategoricalFeatureSummary>;

export const FeatureSummary = Type.Union([NumericFeatureSummary, CategoricalFeatureSummary]);
export type FeatureSummary = NumericFeatureSummary | CategoricalFeatureSummary;

/** Epoch milliseconds. */
const Instant = Type.Integer({ minimum: 0, maximum: 8.64e15 });

export const DriftSummary = Type.Object(
  {
    window: Type.Object({ start: Instant, end: Instant }, CLOSED),
    features: Type.Array(FeatureSummary, { maxItems: MAX_DRIFT_FEATURES }),
    outputs: Type.Array(FeatureSummary, { maxItems: MAX_DRIFT_OUTPUTS }),
  },
  CLOSED,
);
export type DriftSummary = Static<typeof DriftSummary>;

export const NumericBaselineFeature = Type.Object(
  {
    name: FeatureName,
    kind: Type.Literal('numeric'),
    /** Ascending, distinct: reference minimum, quantiles, reference maximum. */
    edges: Type.Array(Finite, { minItems: 1, maxItems: MAX_DRIFT_EDGES }),
  },
  CLOSED,
);
export const CategoricalBaselineFeature = Type.Object(
  {
    name: FeatureName,
    kind: Type.Literal('categorical'),
    /** Ascending, distinct category values (codes) seen in the reference. */
    categories: Type.Array(Finite, { minItems: 1, maxItems: MAX_DRIFT_CATEGORIES }),
  },
  CLOSED,
);
export const BaselineFeature = Type.Union([NumericBaselineFeature, CategoricalBaselineFeature]);
export type NumericBaselineFeature = Static<typeof NumericBaselineFeature>;
export type CategoricalBaselineFeature = Static<typeof CategoricalBaselineFeature>;
export type BaselineFeature = NumericBaselineFeature | CategoricalBaselineFeature;

export const DriftBaseline = Type.Object(
  {
    features: Type.Array(BaselineFeature, { maxItems: MAX_DRIFT_FEATURES }),
    outputs: Type.Array(BaselineFeature, { maxItems: MAX_DRIFT_OUTPUTS }),
    /** The reference data summarised on these edges: what windows are compared against. */
    reference: DriftSummary,
  },
  CLOSED,
);
export type DriftBaseline = Static<typeof DriftBaseline>;
