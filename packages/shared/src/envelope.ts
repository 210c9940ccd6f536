import { Type, type Static } from 'typebox';

/**
 * Every agent→hub record carries this: `seq` is a per-device counter persisted by the agent
 * (never goes back), `ts` the time the record was made (ms since epoch). The hub keys records
 * on (device, seq), which makes store-and-forward replays exactly-once.
 */
export const EnvelopeFields = {
  v: Type.Literal(1),
  seq: Type.Integer({ minimum: 0 }),
  ts: Type.Number({ minimum: 0 }),
};
export const Envelope = Type.Object(EnvelopeFields);
export type Envelope = Static<typeof Envelope>;
