import { Type, type Static } from 'typebox';

/**
 * Drift monitoring over the hub API: a version's baseline (from reference data, else calibration
 * data), evaluations per device and for the fleet, and alerts. Routes:
 * - `PUT  /api/v1/models/{name}/versions/{version}/reference` (body as the calibration upload) → BaselineInfo
 * - `GET  /api/v1/models/{name}/versions/{version}/baseline` → BaselineInfo
 * - `GET  /api/v1/drift` → DriftOverview[]
 * - `GET  /api/v1/drift/{name}/{version}?limit=` → DriftModelView
 * - `POST /api/v1/drift/evaluations` → EvaluationRun (evaluate now instead of waiting for the job)
 * - `GET  /api/v1/alerts?state=active|cleared|all` → DriftAlert[]
 * - `GET  /api/v1/models/{name}/versions/{version}/field-samples` → FieldSampleInfo[]
 * - `GET  /api/v1/field-samples/{id}` → the sample's body as uploaded
 * - `POST /api/v1/field-samples?model=&version=&reason=` (device Basic auth, body as the infer request) → FieldSampleInfo
 */

const CLOSED = { additionalProperties: false } as const;
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const BaselineSource = Type.Union([Type.Literal('reference'), Type.Literal('calibration')]);
export type BaselineSource = Static<typeof BaselineSource>;

/** One tracked feature or output of a baseline, as the API shows it. */
export const BaselineFeatureInfo = Type.Object(
  {
    name: Type.String(),
    kind: Type.Union([Type.Literal('numeric'), Type.Literal('categorical')]),
    /** Bins of its histogram (numeric: edges + 1; categorical: categories + 1 for "other"). */
    bins: Type.Integer({ minimum: 1 }),
  },
  CLOSED,
);
export type BaselineFeatureInfo = Static<typeof BaselineFeatureInfo>;

export const BaselineInfo = Type.Object(
  {
    model: Type.String(),
    version: Type.String(),
    source: BaselineSource,
    /** Reference samples the baseline was built from. */
    samples: Type.Integer({ minimum: 0 }),
    features: Type.Array(BaselineFeatureInfo),
    outputs: Type.Array(BaselineFeatureInfo),
    /** The baseline artifact (JSON of a DriftBaseline) named by the manifests' `drift` entry. */
    sha256: Type.String(),
    size: Type.Integer({ minimum: 1 }),
    /** Bytes of one window's summary on the wire with every bin counted (JSON of a 500-sample window of the reference). */
    summaryBytes: Type.Integer({ minimum: 0 }),
    createdAt: Type.String(),
  },
  CLOSED,
);
export type BaselineInfo = Static<typeof BaselineInfo>;

/** One feature's scores in one evaluation window (drift-math.ts FeatureScore, without the counts). */
export const DriftFeatureScore = Type.Object(
  {
    name: Type.String(),
    role: Type.Union([Type.Literal('input'), Type.Literal('output')]),
    kind: Type.Union([Type.Literal('numeric'), Type.Literal('categorical')]),
    psi: Type.Number(),
    js: Type.Number(),
    ks: Nullable(Type.Number()),
    wasserstein: Nullable(Type.Number()),
    chi2: Nullable(Type.Number()),
    /** PSI over the noise-aware threshold; > 1 means drifted. */
    score: Type.Number(),
    drifted: Type.Boolean(),
  },
  CLOSED,
);
export type DriftFeatureScore = Static<typeof DriftFeatureScore>;

/** One evaluation window: consecutive summaries of a device (or of the whole fleet) merged until they held enough samples. */
export const DriftEvaluation = Type.Object(
  {
    id: Type.Integer(),
    model: Type.String(),
    version: Type.String(),
    /** null for the fleet (every device's summaries merged). */
    deviceId: Nullable(Type.String()),
    windowStart: Type.String(),
    windowEnd: Type.String(),
    samples: Type.Integer({ minimum: 0 }),
    /** The highest feature score. */
    score: Type.Number(),
    /** True when any feature drifted (score > 1). */
    over: Type.Boolean(),
    /** Every feature and output, highest score first. */
    features: Type.Array(DriftFeatureScore),
    evaluatedAt: Type.String(),
  },
  CLOSED,
);
export type DriftEvaluation = Static<typeof DriftEvaluation>;

export const AlertState = Type.Union([Type.Literal('active'), Type.Literal('cleared')]);
export type AlertState = Static<typeof AlertState>;

/** Raised after two consecutive evaluation windows over the threshold; cleared after two under it. */
export const DriftAlert = Type.Object(
  {
    id: Type.Integer(),
    model: Type.String(),
    version: Type.String(),
    /** null: a fleet alert. */
    deviceId: Nullable(Type.String()),
    state: AlertState,
    raisedAt: Type.String(),
    clearedAt: Nullable(Type.String()),
    /** The highest feature score when raised (updated while active). */
    score: Type.Number(),
    /** Devices whose latest own evaluation is over (for a device alert: that device). */
    devices: Type.Array(Type.String()),
    /** The features that moved most, highest score first (at most 5). */
    features: Type.Array(Type.Object({ name: Type.String(), score: Type.Number(), psi: Type.Number() }, CLOSED)),
    /** One line for people and webhooks: model, version, devices, features. */
    message: Type.String(),
  },
  CLOSED,
);
export type DriftAlert = Static<typeof DriftAlert>;

/** A device's latest evaluation of one version, for the fleet view. */
export const DeviceDriftRow = Type.Object(
  {
    deviceId: Type.String(),
    score: Type.Number(),
    over: Type.Boolean(),
    samples: Type.Integer({ minimum: 0 }),
    windowEnd: Type.String(),
    /** Drifted features, highest score first (names only). */
    drifted: Type.Array(Type.String()),
  },
  CLOSED,
);
export type DeviceDriftRow = Static<typeof DeviceDriftRow>;

export const DriftModelView = Type.Object(
  {
    model: Type.String(),
    version: Type.String(),
    baseline: Nullable(BaselineInfo),
    /** Fleet evaluations, oldest first (the last `limit`). */
    fleet: Type.Array(DriftEvaluation),
    /** Devices over first, then the highest scores; at most a page of them (the counts below cover all). */
    devices: Type.Array(DeviceDriftRow),
    /** Devices with an evaluation of the version (all of them, not only the rows in `devices`). */
    devicesEvaluated: Type.Integer({ minimum: 0 }),
    /** Of those, devices whose latest evaluation is over. */
    devicesOver: Type.Integer({ minimum: 0 }),
    /** Active alerts first, then the latest cleared ones. */
    alerts: Type.Array(DriftAlert),
    /** Samples received but not yet evaluated (below the minimum), fleet-wide. */
    pendingSamples: Type.Integer({ minimum: 0 }),
  },
  CLOSED,
);
export type DriftModelView = Static<typeof DriftModelView>;

/** One tracked version in the overview: its latest fleet score and alert count. */
export const DriftOverview = Type.Object(
  {
    model: Type.String(),
    version: Type.String(),
    source: BaselineSource,
    fleetScore: Nullable(Type.Number()),
    lastEvaluatedAt: Nullable(Type.String()),
    activeAlerts: Type.Integer({ minimum: 0 }),
    devicesOver: Type.Integer({ minimum: 0 }),
  },
  CLOSED,
);
export type DriftOverview = Static<typeof DriftOverview>;

export const EvaluationRun = Type.Object(
  {
    summaries: Type.Integer({ minimum: 0 }),
    evaluations: Type.Integer({ minimum: 0 }),
    raised: Type.Integer({ minimum: 0 }),
    cleared: Type.Integer({ minimum: 0 }),
  },
  CLOSED,
);
export type EvaluationRun = Static<typeof EvaluationRun>;

export const AlertsQuery = Type.Object({ state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('cleared'), Type.Literal('all')])) }, CLOSED);

/** A raw input a device sent as a field sample (opt-in on the device): random, or a hard example. */
export const FieldSampleInfo = Type.Object(
  {
    id: Type.Integer(),
    deviceId: Type.String(),
    model: Type.String(),
    version: Type.String(),
    /** `random`: rate-limited sample; `hard`: low top-2 margin or high entropy output. */
    reason: Type.Union([Type.Literal('random'), Type.Literal('hard')]),
    /** Top-2 margin of the output's probabilities (hard examples); null otherwise. */
    margin: Nullable(Type.Number()),
    entropy: Nullable(Type.Number()),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String(),
    takenAt: Type.String(),
    receivedAt: Type.String(),
  },
  CLOSED,
);
export type FieldSampleInfo = Static<typeof FieldSampleInfo>;

/** Webhook body for alert changes (POSTed as JSON to the configured URL). */
export interface DriftWebhookBody {
  type: 'drift.alert.raised' | 'drift.alert.cleared';
  alert: DriftAlert;
}
