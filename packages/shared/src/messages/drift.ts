import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { CLOSED, Name } from './bounds.js';

/**
 * Windowed input/output summary per model. The summary format is settled by the drift issue, so
 * `summary` stays an open record; the drift payload size limit (codec) and the JSON depth limit
 * bound it instead.
 */
export const DriftMessage = Type.Object(
  {
    ...EnvelopeFields,
    model: Name,
    version: Name,
    summary: Type.Record(Type.String({ maxLength: 256 }), Type.Unknown()),
  },
  CLOSED,
);
export type DriftMessage = Static<typeof DriftMessage>;
