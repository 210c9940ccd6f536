import { Type, type Static } from 'typebox';
import { SignedManifest, Transfer } from '../manifest.js';

/**
 * Compression profiles. `fp32` is the uploaded model itself; the others are built from it on the hub.
 * `int8-weights` and `pruned` shrink the download (int8 weights widened back to float32 at load);
 * `fp16` is for GPUs; `int8-dynamic` and `int8-static` compute in int8.
 */
export const PROFILES = ['fp32', 'fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned'] as const;
export type Profile = (typeof PROFILES)[number];
export const ProfileName = Type.Union([
  Type.Literal('fp32'),
  Type.Literal('fp16'),
  Type.Literal('int8-dynamic'),
  Type.Literal('int8-static'),
  Type.Literal('int8-weights'),
  Type.Literal('pruned'),
]);
/** Profiles a build makes from the fp32 model. */
export const BUILT_PROFILES = PROFILES.filter((p) => p !== 'fp32') as Exclude<Profile, 'fp32'>[];
export const BuiltProfileName = Type.Union([
  Type.Literal('fp16'),
  Type.Literal('int8-dynamic'),
  Type.Literal('int8-static'),
  Type.Literal('int8-weights'),
  Type.Literal('pruned'),
]);

/**
 * What a variant may lose against fp32 and still be deployed. `minAgreement` (top-1 agreement) applies
 * when the first output has a class axis; `maxRelativeError` (mean |a−b| / mean |b| over every float
 * output) when it has none; `maxAccuracyDrop` when labels were uploaded.
 */
export const AccuracyBudget = Type.Object(
  {
    minAgreement: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    maxAccuracyDrop: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    maxRelativeError: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
  },
  { additionalProperties: false },
);
export type AccuracyBudget = Static<typeof AccuracyBudget>;
export const DEFAULT_BUDGET = { minAgreement: 0.99, maxRelativeError: 0.05 } as const;

const Ratio = Type.Number({ minimum: 0 });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** A variant measured against fp32 on the hub, in the same worker and run. */
export const VariantEvaluation = Type.Object({
  /** Samples compared (batch 1 each): the held-out part of the calibration data, or generated inputs. */
  samples: Type.Integer({ minimum: 0 }),
  data: Type.Union([Type.Literal('calibration'), Type.Literal('generated')]),
  /** Share of samples whose top-1 class equals fp32's; null when the first output has no class axis. */
  agreement: Nullable(Ratio),
  /** With labels: the variant's and fp32's top-1 accuracy on the same samples. */
  accuracy: Nullable(Ratio),
  fp32Accuracy: Nullable(Ratio),
  maxAbsError: Ratio,
  meanAbsError: Ratio,
  /** mean |variant − fp32| / mean |fp32| over the float outputs. */
  relativeError: Ratio,
  /** Bytes of the ONNX file / fp32's; the transfer copy (zstd when served compressed) / fp32's file. */
  sizeRatio: Ratio,
  transferRatio: Ratio,
  /** p50 latency at batch 1, variant and fp32 measured alternately in one worker; ratio = variant / fp32. */
  latencyMs: Ratio,
  fp32LatencyMs: Ratio,
  latencyRatio: Ratio,
  /** Share of the fp32 MatMul/Gemm/Conv constant weight bytes stored as int8 in the variant; null for fp16. */
  quantizedWeightShare: Nullable(Ratio),
  /** Transform notes: nodes kept float and why, folded BatchNorms, sparsity reached… */
  notes: Type.Array(Type.String()),
});
export type VariantEvaluation = Static<typeof VariantEvaluation>;

export const VARIANT_STATES = ['building', 'accepted', 'rejected', 'failed'] as const;
export type VariantState = (typeof VARIANT_STATES)[number];

/** One variant of a model version. `reason` says why it was rejected or failed (or notes on acceptance). */
export const Variant = Type.Object({
  model: Type.String(),
  version: Type.String(),
  profile: ProfileName,
  state: Type.Union([Type.Literal('building'), Type.Literal('accepted'), Type.Literal('rejected'), Type.Literal('failed')]),
  reason: Nullable(Type.String()),
  sha256: Nullable(Type.String()),
  size: Nullable(Type.Integer()),
  transfer: Nullable(Transfer),
  evaluation: Nullable(VariantEvaluation),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Variant = Static<typeof Variant>;

/** A variant with its signed manifest (accepted variants only have one worth deploying). */
export const VariantDetail = Type.Object({ ...Variant.properties, manifest: Nullable(SignedManifest) });
export type VariantDetail = Static<typeof VariantDetail>;

export const CalibrationMethod = Type.Union([Type.Literal('minmax'), Type.Literal('percentile'), Type.Literal('auto')]);

/** Starting a build; every field optional. The budget given here replaces the version's. */
export const BuildVariantsRequest = Type.Object(
  {
    profiles: Type.Optional(Type.Array(BuiltProfileName, { minItems: 1, maxItems: BUILT_PROFILES.length, uniqueItems: true })),
    budget: Type.Optional(AccuracyBudget),
    /** Share of each pruned weight tensor set to zero (default 0.5). */
    pruneSparsity: Type.Optional(Type.Number({ minimum: 0.05, maximum: 0.95 })),
    /** int8-static activation ranges; `auto` (default) builds both and keeps the one closer to fp32 on the calibration samples. */
    calibrationMethod: Type.Optional(CalibrationMethod),
  },
  { additionalProperties: false },
);
export type BuildVariantsRequest = Static<typeof BuildVariantsRequest>;

export const BUILD_STATES = ['queued', 'running', 'done', 'failed'] as const;
export type BuildState = (typeof BUILD_STATES)[number];

/** The latest variant build of a model version, with its progress. */
export const VariantBuild = Type.Object({
  model: Type.String(),
  version: Type.String(),
  state: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]),
  profiles: Type.Array(BuiltProfileName),
  budget: AccuracyBudget,
  pruneSparsity: Type.Number(),
  calibrationMethod: CalibrationMethod,
  progress: Type.Object({
    done: Type.Integer({ minimum: 0 }),
    total: Type.Integer({ minimum: 0 }),
    profile: Nullable(Type.String()),
    /** What the worker does now: 'transform', 'evaluate', 'compress', 'store'. */
    step: Nullable(Type.String()),
  }),
  error: Nullable(Type.String()),
  createdAt: Type.String(),
  startedAt: Nullable(Type.String()),
  endedAt: Nullable(Type.String()),
});
export type VariantBuild = Static<typeof VariantBuild>;

export const VariantList = Type.Object({ build: Nullable(VariantBuild), variants: Type.Array(Variant) });
export type VariantList = Static<typeof VariantList>;

/** What an uploaded calibration set holds. */
export const CalibrationSummary = Type.Object({
  sha256: Type.String(),
  samples: Type.Integer({ minimum: 1 }),
  /** Per model input: its name, datatype and the shape of one sample. */
  inputs: Type.Array(Type.Object({ name: Type.String(), datatype: Type.String(), shape: Type.Array(Type.Integer()) })),
  labels: Type.Boolean(),
  uploadedAt: Type.String(),
});
export type CalibrationSummary = Static<typeof CalibrationSummary>;

/** How one accepted variant ranked for a device. */
export const PlanCandidate = Type.Object({
  profile: ProfileName,
  sha256: Type.String(),
  /** The device's own p50 (ms) for this variant, or its device class's, when measured. */
  measuredP50Ms: Nullable(Type.Number()),
  /** Whether the measurement came from this device or another of its class. */
  measuredOn: Nullable(Type.Union([Type.Literal('device'), Type.Literal('class')])),
  /** Latency ratio to fp32 on the hub (evaluation); null for fp32. */
  hubLatencyRatio: Nullable(Type.Number()),
  /** Why the rule ranks it as it does on this device, or why it was left out. */
  note: Type.String(),
  eligible: Type.Boolean(),
});
export type PlanCandidate = Static<typeof PlanCandidate>;

export const PLAN_DECISIONS = ['measurement', 'rule', 'pinned', 'default'] as const;

/** The variant a device gets for a model version, and why. */
export const DevicePlan = Type.Object({
  deviceId: Type.String(),
  model: Type.String(),
  version: Type.String(),
  profile: ProfileName,
  sha256: Type.String(),
  decidedBy: Type.Union([Type.Literal('measurement'), Type.Literal('rule'), Type.Literal('pinned'), Type.Literal('default')]),
  reason: Type.String(),
  /** The planner's device class, e.g. "x86_64 avx512-vnni", "arm64 dotprod", "arm64", "+gpu". */
  deviceClass: Type.String(),
  candidates: Type.Array(PlanCandidate),
  plannedAt: Type.String(),
});
export type DevicePlan = Static<typeof DevicePlan>;
export const PlanList = Type.Object({ plans: Type.Array(DevicePlan) });

/** One benchmark measurement a device reported. */
export const DeviceBenchmark = Type.Object({
  deviceId: Type.String(),
  model: Type.String(),
  version: Type.String(),
  profile: ProfileName,
  sha256: Type.String(),
  p50Ms: Nullable(Type.Number()),
  p90Ms: Nullable(Type.Number()),
  runs: Type.Integer({ minimum: 0 }),
  error: Nullable(Type.String()),
  measuredAt: Type.String(),
});
export type DeviceBenchmark = Static<typeof DeviceBenchmark>;

export const BenchmarkRequestBody = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 128 }),
    version: Type.String({ minLength: 1, maxLength: 128 }),
    /** Default: every accepted variant of the version. */
    profiles: Type.Optional(Type.Array(ProfileName, { minItems: 1, maxItems: PROFILES.length, uniqueItems: true })),
  },
  { additionalProperties: false },
);
export type BenchmarkRequestBody = Static<typeof BenchmarkRequestBody>;
