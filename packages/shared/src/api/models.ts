import { Type, type Static } from 'typebox';
import { TensorSpec } from '../inference.js';
import { SignedManifest } from '../manifest.js';

export const ModelVersion = Type.Object({
  name: Type.String(),
  version: Type.String(),
  sha256: Type.String(),
  size: Type.Integer(),
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
  createdAt: Type.String(),
  manifest: SignedManifest,
});
export type ModelVersion = Static<typeof ModelVersion>;

export const ModelSummary = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  latest: Type.String(),
});
export const ModelList = Type.Object({ models: Type.Array(ModelSummary) });
