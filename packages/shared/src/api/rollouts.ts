import { Type, type Static } from 'typebox';
import { ShadowResult } from '../messages/events.js';
import { ProfileName } from './variants.js';

/**
 * Who a rollout targets. An empty selector is refused (it would otherwise match every device);
 * `{all: true}` says "everything" on purpose.
 */
export const RolloutTarget = Type.Union([
  Type.Object({ all: Type.Literal(true) }, { additionalProperties: false }),
  Type.Object({ labels: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$' }), Type.String({ maxLength: 255 }), { additionalProperties: false, minProperties: 1 }) }, { additionalProperties: false }),
  Type.Object({ deviceIds: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 100_000 }) }, { additionalProperties: false }),
]);
export type RolloutTarget = Static<typeof RolloutTarget>;

/** Cumulative size of the target switched by the end of a wave: a device count or a percentage ("10%"). */
export const WaveSize = Type.Union([
  Type.Integer({ minimum: 1, maximum: 100_000 }),
  Type.String({ pattern: '^(100|[1-9]?[0-9](\\.[0-9]{1,2})?)%$', description: 'percentage of the target, e.g. "10%"' }),
]);
export type WaveSize = Static<typeof WaveSize>;

/** Thresholds judged when a wave's devices are done (shares) and when its bake time ends (metrics). */
export const WaveGates = Type.Object(
  {
    /** Share of the wave's reachable devices (not timed out) that must be active to go on. Default 1. */
    minSuccessShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** Share of the wave's devices failed (or rolled back locally) that halts the rollout, checked as they fail. Default 0. */
    maxFailureShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** How much the new version's inference error rate may exceed the previous version's on the same devices (absolute, e.g. 0.01). */
    maxErrorRateIncrease: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** Ceiling of new p99 / previous p99 on the same devices (e.g. 1.5). */
    maxP99Ratio: Type.Optional(Type.Number({ minimum: 1, maximum: 1000 })),
    /**
     * Lowest shadow agreement of any device of the wave (needs `shadow`), judged with the metric gates
     * when the bake ends. It does not stop a device from switching: `shadow.minAgreement` does that.
     */
    minShadowAgreement: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /**
     * Highest drift score allowed on the new version among the wave's switched devices: each
     * device's latest drift evaluation of that version (score = PSI over its noise-aware threshold,
     * above 1 is drift), judged with the metric gates when the bake ends. Devices without an
     * evaluation yet do not block; with none at all the gate says `no-data`. Needs a bake, and a hub
     * that evaluates drift.
     */
    maxDriftScore: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000 })),
    /** Requests the wave must have served on the new version before the metric gates are judged. Default 20. */
    minRequests: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
  },
  { additionalProperties: false },
);
export type WaveGates = Static<typeof WaveGates>;

export const WaveSpec = Type.Object(
  {
    size: WaveSize,
    /** Seconds to watch the wave after its devices are done, before the metric gates are judged. Default 0. */
    bakeSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 })),
    gates: Type.Optional(WaveGates),
  },
  { additionalProperties: false },
);
export type WaveSpec = Static<typeof WaveSpec>;

/** Devices download and verify during the wave and switch only while the window is open. */
export const MaintenanceWindow = Type.Object(
  {
    /** node-cron expression for when the window opens, e.g. "0 2 * * *". */
    cron: Type.String({ minLength: 1, maxLength: 128 }),
    durationMinutes: Type.Integer({ minimum: 1, maximum: 24 * 60 }),
  },
  { additionalProperties: false },
);
export type MaintenanceWindow = Static<typeof MaintenanceWindow>;

/** The new version runs beside the active one on a sample of real local requests before switching. */
export const ShadowSpec = Type.Object(
  {
    /** Share of local requests also run on the candidate. */
    sampleRate: Type.Number({ exclusiveMinimum: 0, maximum: 1 }),
    /** Compared requests before the device reports and switches. Default 50. */
    minSamples: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    /** Longest shadow phase; fewer samples by then are reported as they are. Default 300. */
    maxDurationSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 })),
    /** Below this agreement the device refuses to switch (SHADOW_DISAGREEMENT). */
    minAgreement: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);
export type ShadowSpec = Static<typeof ShadowSpec>;

/** After the switch the agent watches the new version and switches back on its own when it misbehaves. */
export const HealthWindowSpec = Type.Object(
  {
    durationSec: Type.Integer({ minimum: 1, maximum: 24 * 3600 }),
    /** Error rate of the new version that makes the agent switch back. Default 0.5. */
    maxErrorRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** New p99 / previous p99 that makes the agent switch back. */
    maxP99Ratio: Type.Optional(Type.Number({ minimum: 1, maximum: 1000 })),
    /** Requests before the window judges anything. Default 20. */
    minRequests: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);
export type HealthWindowSpec = Static<typeof HealthWindowSpec>;

export const CreateRolloutRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 128 }),
    version: Type.String({ minLength: 1, maxLength: 128 }),
    target: RolloutTarget,
    /** Cumulative wave sizes; the last must reach the whole target. Default one wave of 100%. */
    waves: Type.Optional(Type.Array(WaveSpec, { minItems: 1, maxItems: 20 })),
    /** Devices downloading at once, across the rollout. Default 100. */
    maxConcurrentDownloads: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    /** A device not done this long after its assignment times out of its wave (and converges later). Default 900. */
    deviceTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 24 * 3600 })),
    /** On a failed gate, return every device of the rollout to its previous version. Default false (halt). */
    autoRollback: Type.Optional(Type.Boolean()),
    maintenanceWindow: Type.Optional(MaintenanceWindow),
    shadow: Type.Optional(ShadowSpec),
    healthWindow: Type.Optional(HealthWindowSpec),
    /** How long an agent may defer the switch while a local application holds the update lock. Default 600. */
    maxDeferSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 })),
    /** One accepted variant for every target device instead of each device's planned one (400 naming the accepted profiles otherwise). */
    profile: Type.Optional(ProfileName),
  },
  { additionalProperties: false },
);
export type CreateRolloutRequest = Static<typeof CreateRolloutRequest>;

/** One deployable variant as a rollout device row names it. */
export const VersionRef = Type.Object({
  model: Type.String(),
  version: Type.String(),
  profile: Type.String(),
  sha256: Type.String(),
});
export type VersionRef = Static<typeof VersionRef>;

/**
 * A device's state within a rollout. `pending`: its wave has not reached it; `waiting`: its wave runs
 * but the download slots are taken; `assigned`: desired written, no word yet; the agent's phases;
 * `retrying`: a transient failure the agent retries; `ready`: verified and loaded, waiting for the
 * maintenance window; `deferred`: a local update lock holds the switch; `timed-out`: not done by its
 * deadline (it still converges when it returns); `rolling-back`/`rolled-back`: returned to `from`
 * (by the hub, or by the agent's own health window); `cancelled`: out of the rollout before it
 * switched (aborted, rolled back before its turn, or revoked); `superseded`: a newer rollout of the
 * model took the device; `removed`: only on rows from before staged rollouts.
 */
export const ROLLOUT_DEVICE_STATES = [
  'pending',
  'waiting',
  'assigned',
  'downloading',
  'verifying',
  'loading',
  'health-check',
  'shadow',
  'ready',
  'deferred',
  'retrying',
  'active',
  'failed',
  'timed-out',
  'rolling-back',
  'rolled-back',
  'cancelled',
  'superseded',
  'removed',
] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

/** A device's shadow phase as the rollout shows it: what the agent reported (agreement is top-1 for class scores, else within tolerance). */
export const ShadowReport = ShadowResult;
export type ShadowReport = Static<typeof ShadowReport>;

export const RolloutDevice = Type.Object({
  deviceId: Type.String(),
  wave: Type.Integer({ minimum: 0 }),
  state: Type.Enum(ROLLOUT_DEVICE_STATES),
  progress: Type.Union([Type.Number(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  from: Type.Union([VersionRef, Type.Null()]),
  to: VersionRef,
  shadow: Type.Union([ShadowReport, Type.Null()]),
  assignedAt: Type.Union([Type.String(), Type.Null()]),
  updatedAt: Type.String(),
});
export type RolloutDevice = Static<typeof RolloutDevice>;

export const GATE_NAMES = ['failure-share', 'success-share', 'error-rate', 'p99-latency', 'shadow-agreement', 'drift'] as const;
export type GateName = (typeof GATE_NAMES)[number];

/** A gate's verdict with its numbers: `no-data` when too few requests were served to judge (it does not halt). */
export const GateResult = Type.Object({
  gate: Type.Enum(GATE_NAMES),
  status: Type.Enum(['passed', 'failed', 'no-data'] as const),
  observed: Type.Union([Type.Number(), Type.Null()]),
  /** The previous version's value on the same devices, for comparative gates. */
  baseline: Type.Union([Type.Number(), Type.Null()]),
  threshold: Type.Number(),
  message: Type.String(),
  at: Type.String(),
});
export type GateResult = Static<typeof GateResult>;

export const WAVE_STATES = ['pending', 'running', 'baking', 'passed', 'halted', 'cancelled'] as const;
export type WaveState = (typeof WAVE_STATES)[number];

export const RolloutWave = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  state: Type.Enum(WAVE_STATES),
  spec: WaveSpec,
  startedAt: Type.Union([Type.String(), Type.Null()]),
  bakeUntil: Type.Union([Type.String(), Type.Null()]),
  endedAt: Type.Union([Type.String(), Type.Null()]),
  gates: Type.Array(GateResult),
  counts: Type.Record(Type.String(), Type.Integer()),
  devices: Type.Array(RolloutDevice),
});
export type RolloutWave = Static<typeof RolloutWave>;

/**
 * `running` → `succeeded` when every wave passed; `paused` by an operator; `halted` by a failed gate
 * (resume overrides it); `rolling-back` → `rolled-back`; `aborted`: no device is assigned any more and
 * devices that had not switched keep their previous version.
 */
export const ROLLOUT_STATES = ['running', 'paused', 'halted', 'rolling-back', 'rolled-back', 'aborted', 'succeeded'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export const RolloutSettings = Type.Object({
  maxConcurrentDownloads: Type.Integer(),
  deviceTimeoutSec: Type.Integer(),
  autoRollback: Type.Boolean(),
  maxDeferSec: Type.Integer(),
  maintenanceWindow: Type.Union([MaintenanceWindow, Type.Null()]),
  shadow: Type.Union([ShadowSpec, Type.Null()]),
  healthWindow: Type.Union([HealthWindowSpec, Type.Null()]),
});
export type RolloutSettings = Static<typeof RolloutSettings>;

export const HaltReason = Type.Object({
  wave: Type.Integer(),
  gate: Type.Union([Type.Enum(GATE_NAMES), Type.Null()]),
  message: Type.String(),
  at: Type.String(),
});
export type HaltReason = Static<typeof HaltReason>;

export const Rollout = Type.Object({
  id: Type.String(),
  model: Type.String(),
  version: Type.String(),
  target: RolloutTarget,
  state: Type.Enum(ROLLOUT_STATES),
  settings: RolloutSettings,
  /** Why the rollout stopped (gate, operator action), with the numbers; null while it runs. */
  reason: Type.Union([HaltReason, Type.Null()]),
  /** When the maintenance window is open until (null: closed, or no window). */
  windowOpenUntil: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  waves: Type.Array(RolloutWave),
  counts: Type.Record(Type.String(), Type.Integer()),
});
export type Rollout = Static<typeof Rollout>;

/** The rollout list: summaries without per-device rows. */
export const RolloutSummary = Type.Omit(Rollout, ['waves']);
export type RolloutSummary = Static<typeof RolloutSummary>;

export const ROLLOUT_ACTIONS = ['pause', 'resume', 'abort', 'rollback'] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];
