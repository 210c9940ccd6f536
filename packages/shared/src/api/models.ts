import { Type, type Static } from 'typebox';
import { TensorSpec } from '../inference.js';
import { SignedManifest } from '../manifest.js';
import { AccuracyBudget } from './variants.js';

export const ModelVersion = Type.Object({
  name: Type.String(),
  version: Type.String(),
  sha256: Type.String(),
  size: Type.Integer(),
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
  createdAt: Type.String(),
  manifest: SignedManifest,
  /** The accuracy budget given at upload or by the latest build request; absent = DEFAULT_BUDGET. */
  budget: Type.Optional(AccuracyBudget),
});
export type ModelVersion = Static<typeof ModelVersion>;

export const ModelSummary = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  latest: Type.String(),
});
export const ModelList = Type.Object({ models: Type.Array(ModelSummary) });
