import { Type, type Static } from 'typebox';

/** Largest `ts` accepted: 9999-12-31T23:59:59.999Z, so every record time renders as a four-digit-year ISO date. */
export const MAX_TIMESTAMP_MS = 253_402_300_799_999;

/** Record times, ms since the Unix epoch, bounded so that `new Date(ts).toISOString()` never throws. */
export const TimestampMs = Type.Number({ minimum: 0, maximum: MAX_TIMESTAMP_MS });

/** Sequence numbers stay exact doubles: at most 2^53 − 1. */
export const SeqNumber = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** An agent database's random identity, made when the database is created. */
export const EpochId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' });

/**
 * Every agent→hub record carries this: `epoch` is the random id of the agent database that issued
 * the record, `seq` a counter that database persists and never hands out twice (a new epoch may
 * start it again), `ts` the time the record was made (ms since epoch). The hub keys records on
 * (device, epoch, seq), which makes store-and-forward replays exactly-once and lets a lost agent
 * database start over without its records being taken for duplicates. `epoch` is optional so that
 * records of agents from before it was added stay valid (the hub files them under the empty epoch).
 */
export const EnvelopeFields = {
  v: Type.Literal(1),
  epoch: Type.Optional(EpochId),
  seq: SeqNumber,
  ts: TimestampMs,
};
export const Envelope = Type.Object(EnvelopeFields);
export type Envelope = Static<typeof Envelope>;
