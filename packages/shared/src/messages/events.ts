import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { CLOSED, LongText, Name } from './bounds.js';

export const DEPLOYMENT_PHASES = [
  'downloading',
  'verifying',
  'loading',
  'health-check',
  'active',
  'failed',
  'removed',
] as const;
export type DeploymentPhase = (typeof DEPLOYMENT_PHASES)[number];

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
    /** Fraction done within the phase (downloads), 0..1. */
    progress: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    code: Type.Optional(Name),
    message: Type.Optional(LongText),
    /** The version still serving after a failure, if any. */
    keptVersion: Type.Optional(Name),
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
