import { Type, type Static } from 'typebox';

/** Retained presence; the `offline` form is the MQTT Last Will, fixed at connect time. */
export const StatusMessage = Type.Object({
  state: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
  ts: Type.Optional(Type.Number()),
});
export type StatusMessage = Static<typeof StatusMessage>;
