import { Type, type Static } from 'typebox';
import { TimestampMs } from '../envelope.js';
import { CLOSED } from './bounds.js';

/** Retained presence; the `offline` form is the MQTT Last Will, fixed at connect time. */
export const StatusMessage = Type.Object(
  {
    state: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    ts: Type.Optional(TimestampMs),
  },
  CLOSED,
);
export type StatusMessage = Static<typeof StatusMessage>;
