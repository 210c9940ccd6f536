import { Type, type Static } from 'typebox';
import { MAX_DRIFT_CATEGORIES, MAX_DRIFT_EDGES, MAX_DRIFT_FEATURES, MAX_DRIFT_OUTPUTS } from './limits.js';

export * from './limits.js';

/**
 * Wire shapes of drift tracking: the baseline (computed on the hub from reference data, travels with
 * the model) and the windowed summary (built on the device, merged on the hub).
 *
 * A summary carries no names and no bin edges, only a fingerprint of the baseline's layout: edges
 * live in the baseline, which both sides hold, so a window of 50 features stays under 4 KB. Rules
 * JSON Schema cannot say (array lengths and sums against the baseline) are checked by
 * `summaryMismatch` in summary.ts.
 */

/** Most bins of one summary: every feature and output at its largest. */
const MAX_DRIFT_BINS = MAX_DRIFT_FEATURES * (MAX_DRIFT_EDGES + 1) + MAX_DRIFT_OUTPUTS * (MAX_DRIFT_CATEGORIES + 1);

const Finite = Type.Number({ minimum: -1e300, maximum: 1e300 });
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const FeatureName = Type.String({ minLength: 1, maxLength: 128 });
/** 32-bit FNV-1a of the baseline's layout (names, kinds, edges, categories): refuses merging across baselines. */
const Fingerprint = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const CLOSED = { additionalProperties: false } as const;

/** Epoch milliseconds. */
const Instant = Type.Integer({ minimum: 0, maximum: 8.64e15 });

/**
 * The windowed summary, flat: no names, no per-feature objects. The baseline's features then its
 * outputs, in order, lay out the arrays (its fingerprint in `baseline` says which layout):
 * - `counts`: every bin of every feature and output, concatenated (numeric: edges + 1 bins;
 *   categorical: one per category, then "other");
 * - `sums`: one per bin of the numeric ones only, concatenated: the sum over the bin's values of
 *   their offset in fixed steps (1/16 of an inner bin, from its middle in half-steps; open bins from
 *   their edge: SUM_STEPS and `stepsOf` in summary.ts), so merging is integer addition and the bin
 *   mean comes back from the baseline's edges;
 * - `missing`: NaN values per feature and output.
 * n per feature is Σ of its counts; min/max are not sent (the open bins' sums give their means,
 * which is all KS and Wasserstein need from them). Lengths against the baseline are checked by
 * `summaryMismatch`.
 */
export const DriftSummary = Type.Object(
  {
    window: Type.Object({ start: Instant, end: Instant }, CLOSED),
    baseline: Fingerprint,
    counts: Type.Array(Count, { maxItems: MAX_DRIFT_BINS }),
    sums: Type.Array(Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }), { maxItems: MAX_DRIFT_FEATURES * (MAX_DRIFT_EDGES + 1) + MAX_DRIFT_OUTPUTS * (MAX_DRIFT_EDGES + 1) }),
    missing: Type.Array(Count, { maxItems: MAX_DRIFT_FEATURES + MAX_DRIFT_OUTPUTS }),
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


/**
 * How one model tensor becomes drift features, per sample (one row along dimension 0). The features
 * of a baseline are those of its extraction's inputs, in order (and its outputs those of the output
 * extractions), with these names — see extract.ts, which both the hub (baseline) and the agent (hot
 * path) use, so both sides compute the same numbers:
 * - `elements`: every value of the sample is a feature, `<tensor>[i]` (at most MAX_ELEMENT_FEATURES);
 * - `image`: an image per sample, channels first (`nchw`) or last (`nhwc`): per channel its mean and
 *   standard deviation, then the brightness (`<tensor>.c0.mean`, `<tensor>.c0.std`, …, `<tensor>.brightness`);
 * - `stats`: any other large tensor (sequences, embeddings): `<tensor>.mean`, `.std`, `.min`, `.max`,
 *   `.zeros` (share of exact zeros: padding);
 * - `class` (outputs only): the index of the largest value along the last dimension, `<tensor>.class`,
 *   a categorical feature whose categories are 0 … classes − 1.
 */
export const TensorExtraction = Type.Object(
  {
    tensor: Type.String({ minLength: 1, maxLength: 256 }),
    mode: Type.Union([Type.Literal('elements'), Type.Literal('image'), Type.Literal('stats'), Type.Literal('class')]),
    /** `image` only. */
    layout: Type.Optional(Type.Union([Type.Literal('nchw'), Type.Literal('nhwc')])),
    /** Values per sample (`elements`), channels (`image`) or classes (`class`); absent for `stats`. */
    size: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_DRIFT_CATEGORIES })),
  },
  CLOSED,
);
export type TensorExtraction = Static<typeof TensorExtraction>;

export const DriftExtraction = Type.Object(
  {
    inputs: Type.Array(TensorExtraction, { maxItems: MAX_DRIFT_FEATURES }),
    outputs: Type.Array(TensorExtraction, { maxItems: MAX_DRIFT_OUTPUTS }),
  },
  CLOSED,
);
export type DriftExtraction = Static<typeof DriftExtraction>;

export const DriftBaseline = Type.Object(
  {
    features: Type.Array(BaselineFeature, { maxItems: MAX_DRIFT_FEATURES }),
    outputs: Type.Array(BaselineFeature, { maxItems: MAX_DRIFT_OUTPUTS }),
    /** The reference data summarised on these edges: what windows are compared against. */
    reference: DriftSummary,
    /** How the model's tensors become `features` and `outputs` (absent: the caller supplies feature rows itself). */
    extraction: Type.Optional(DriftExtraction),
  },
  CLOSED,
);
export type DriftBaseline = Static<typeof DriftBaseline>;

/** Baseline JSON of at most this many bytes travels inside the manifest; larger ones only by reference. */
export const INLINE_BASELINE_BYTES = 32 * 1024;

/**
 * The drift baseline of a manifest: the artifact (`GET /api/v1/artifacts/{sha256}`, JSON of a
 * DriftBaseline) and, when small, the same baseline inline. Both are covered by the signature: the
 * inline copy directly, the artifact through its digest.
 */
export const DriftManifestEntry = Type.Object(
  {
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 1 }),
    baseline: Type.Optional(DriftBaseline),
  },
  CLOSED,
);
export type DriftManifestEntry = Static<typeof DriftManifestEntry>;
