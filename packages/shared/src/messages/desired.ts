import { Type, type Static } from 'typebox';
import { HealthWindowSpec, ShadowSpec } from '../api/rollouts.js';
import { SignedManifest } from '../manifest.js';

export const ModelAssignment = Type.Object({
  /** The rollout that put this assignment in place, so progress events can name it. */
  rolloutId: Type.Optional(Type.String()),
  manifest: SignedManifest,
  /**
   * false: prepare only (download, verify, load, golden check, shadow), report `ready` and keep
   * serving the current version until a later document says true. Absent means true.
   */
  activate: Type.Optional(Type.Boolean()),
  shadow: Type.Optional(ShadowSpec),
  healthWindow: Type.Optional(HealthWindowSpec),
  /** Longest the switch waits for a local update lock, in seconds (absent: the agent's default). */
  maxDeferSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 })),
});
export type ModelAssignment = Static<typeof ModelAssignment>;

/** Retained desired state written by the hub; the agent converges on it. At most one assignment per model name. */
export const DesiredMessage = Type.Object({
  version: Type.Integer({ minimum: 0 }),
  models: Type.Array(ModelAssignment),
});
export type DesiredMessage = Static<typeof DesiredMessage>;
