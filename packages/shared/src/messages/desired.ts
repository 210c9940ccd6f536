import { Type, type Static } from 'typebox';
import { SignedManifest } from '../manifest.js';

export const ModelAssignment = Type.Object({
  /** The rollout that put this assignment in place, so progress events can name it. */
  rolloutId: Type.Optional(Type.String()),
  manifest: SignedManifest,
});
export type ModelAssignment = Static<typeof ModelAssignment>;

/** Retained desired state written by the hub; the agent converges on it. At most one assignment per model name. */
export const DesiredMessage = Type.Object({
  version: Type.Integer({ minimum: 0 }),
  models: Type.Array(ModelAssignment),
});
export type DesiredMessage = Static<typeof DesiredMessage>;
