import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';

/** Windowed input/output summary per model. The summary format is settled by the drift issue. */
export const DriftMessage = Type.Object({
  ...EnvelopeFields,
  model: Type.String(),
  version: Type.String(),
  summary: Type.Record(Type.String(), Type.Unknown()),
});
export type DriftMessage = Static<typeof DriftMessage>;
