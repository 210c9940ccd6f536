import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { DriftSummary } from '../drift/schema.js';
import { CLOSED, Name } from './bounds.js';

/**
 * One window's input/output summary of one model version on one device (drift/schema.ts). Lengths
 * against the version's baseline are checked by the hub on receipt (`summaryMismatch`).
 */
export const DriftMessage = Type.Object(
  {
    ...EnvelopeFields,
    model: Name,
    version: Name,
    summary: DriftSummary,
  },
  CLOSED,
);
export type DriftMessage = Static<typeof DriftMessage>;
