import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { CLOSED, Counter, LatencyMs, LongText, Name, ShortText } from './bounds.js';

/**
 * The agent's steps through one assignment. `shadow`: the candidate runs beside the active version;
 * `ready`: verified and loaded, waiting for the hub's go (maintenance window); `deferred`: a local
 * update lock holds the switch; `rolled-back`: the agent's health window switched back to the
 * previous version on its own.
 */
export const DEPLOYMENT_PHASES = [
  'downloading',
  'verifying',
  'loading',
  'health-check',
  'shadow',
  'ready',
  'deferred',
  'active',
  'failed',
  'rolled-back',
  'removed',
] as const;
export type DeploymentPhase = (typeof DEPLOYMENT_PHASES)[number];

/** The candidate against the active version over the shadow phase. */
export const ShadowResult = Type.Object(
  {
    samples: Counter,
    agreement: Type.Number({ minimum: 0, maximum: 1 }),
    maxAbsDiff: Type.Number({ minimum: 0, maximum: 1e300 }),
    activeP50Ms: LatencyMs,
    candidateP50Ms: LatencyMs,
  },
  CLOSED,
);
export type ShadowResult = Static<typeof ShadowResult>;

/** One step of a deployment on the device; `failed` carries the reason and the model kept instead. */
export const DeploymentEvent = Type.Object(
  {
    ...EnvelopeFields,
    type: Type.Literal('deployment'),
    rolloutId: Type.Optional(Name),
    model: Name,
    version: Name,
    sha256: Name,
    phase: Type.Enum(DEPLOYMENT_PHASES),
    /** Fraction done within the phase (downloads, shadow samples), 0..1. */
    progress: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    code: Type.Optional(Name),
    message: Type.Optional(LongText),
    /** The version still serving after a failure (or restored by a local rollback), if any. */
    keptVersion: Type.Optional(Name),
    /** On `failed`: the agent tries again by itself (network, hub down, disk full): not a final verdict. */
    retryable: Type.Optional(Type.Boolean()),
    /** On `shadow` (when done) and on a `failed` for disagreement. */
    shadow: Type.Optional(ShadowResult),
    /** On `deferred`: what the holder of the update lock said, and when the agent switches regardless (ms since epoch). */
    lockReason: Type.Optional(ShortText),
    deferUntil: Type.Optional(Type.Integer({ minimum: 0, maximum: 253402300799999 })),
  },
  CLOSED,
);
export type DeploymentEvent = Static<typeof DeploymentEvent>;

export const ErrorEvent = Type.Object(
  {
    ...EnvelopeFields,
    type: Type.Literal('error'),
    code: Name,
    message: LongText,
  },
  CLOSED,
);
export type ErrorEvent = Static<typeof ErrorEvent>;

export const EventMessage = Type.Union([DeploymentEvent, ErrorEvent]);
export type EventMessage = Static<typeof EventMessage>;
