import { Type, type Static } from 'typebox';

const Count = Type.Integer({ minimum: 0 });
const OptionalText = Type.Union([Type.String(), Type.Null()]);

/** `degraded`: the process serves, but writes are failing (see `storage`). */
export const HubStatus = Type.Union([Type.Literal('ok'), Type.Literal('degraded')]);
export type HubStatus = Static<typeof HubStatus>;

export const HubIngestCounters = Type.Object({
  received: Count,
  stored: Count,
  duplicates: Count,
  dropped: Count,
  droppedByKind: Type.Record(Type.String(), Count),
  refused: Count,
  storageErrors: Count,
  held: Count,
  queuePeak: Count,
  /** Of `dropped`: payloads over their kind's size limit. */
  tooLarge: Count,
  /** Times a device's records moved to a new epoch (its agent database was replaced). */
  newEpochs: Count,
  /** Records that reused a stored (device, epoch, seq) with a different time. */
  seqRegressions: Count,
});

/** Whether record writes succeed: failures since the last successful write and the last error. */
export const HubStorageHealth = Type.Object({
  errorsSinceSuccess: Count,
  lastError: OptionalText,
  lastErrorAt: OptionalText,
});
export type HubStorageHealth = Static<typeof HubStorageHealth>;

/**
 * GET /api/v1/health. Without operator credentials: `{status}` only (public liveness). With a
 * token or session: broker connections, ingest counters, storage state and event-loop lag (ms).
 */
export const HubHealth = Type.Object({
  status: HubStatus,
  connections: Type.Optional(Count),
  ingest: Type.Optional(HubIngestCounters),
  storage: Type.Optional(HubStorageHealth),
  eventLoopDelayMs: Type.Optional(Type.Object({ p50: Type.Number(), p99: Type.Number(), max: Type.Number() })),
});
export type HubHealth = Static<typeof HubHealth>;

export const HealthQuery = Type.Object({
  /** `1` starts a new event-loop measurement window after answering; needs operator credentials. */
  reset: Type.Optional(Type.Literal('1')),
});
