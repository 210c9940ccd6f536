import { Type, type Static } from 'typebox';

const Count = Type.Integer({ minimum: 0 });

/** GET /api/v1/health: liveness, broker connections, ingest counters and event-loop lag (ms). */
export const HubHealth = Type.Object({
  status: Type.Literal('ok'),
  connections: Count,
  ingest: Type.Object({
    received: Count,
    stored: Count,
    duplicates: Count,
    dropped: Count,
    droppedByKind: Type.Record(Type.String(), Count),
    refused: Count,
    storageErrors: Count,
    held: Count,
    queuePeak: Count,
  }),
  eventLoopDelayMs: Type.Object({ p50: Type.Number(), p99: Type.Number(), max: Type.Number() }),
});
export type HubHealth = Static<typeof HubHealth>;

export const HealthQuery = Type.Object({
  /** `1` starts a new event-loop measurement window after answering. */
  reset: Type.Optional(Type.Literal('1')),
});
