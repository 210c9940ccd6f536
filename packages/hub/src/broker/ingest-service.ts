import { decodeMessage, DEVICE_PUBLISH_KINDS, MESSAGE_SIZE_LIMITS, TOPIC_TABLE, type TopicKind } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { secretMatches } from '../auth/secret-digest.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { DriftBaselines } from '../drift/drift-baselines.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { BatchResult, DeviceRecord, RecordRepo } from '../records/record-repo.js';
import type { BrokerPolicy, InboundVerdict } from './broker.js';
import { canPublish, canSubscribe } from './device-acl.js';
import { createLogThrottle, driftRejection, emptyDriftRejections, type DriftRejection, type DriftRejections } from './drift-admission.js';
import { createIngestQueue, type IngestQueue } from './ingest-queue.js';
import { createRecordStreams, type RecordStreams } from './record-streams.js';
import { createStateWriter } from './state-writer.js';

/** A device's dropped drift records are logged at most once per this interval (the rest are counted). */
const DRIFT_LOG_INTERVAL_MS = 60_000;

export interface IngestCounters {
  received: number;
  stored: number;
  duplicates: number;
  dropped: number;
  droppedByKind: Partial<Record<TopicKind, number>>;
  /** Of `dropped`: payloads over their kind's size limit. */
  tooLarge: number;
  refused: number;
  storageErrors: number;
  /** Records whose acknowledgement waited for the full write queue to drain (push-back). */
  held: number;
  /** The most records the write queue has held at once (never above its bound). */
  queuePeak: number;
  /** Times a device's records moved to a new epoch (its agent database was lost or replaced). */
  newEpochs: number;
  /** Records that reused a stored (device, epoch, seq) with a different time: the device's seq went back. */
  seqRegressions: number;
  /** Of `droppedByKind.drift`, by reason. */
  driftRejected: DriftRejections;
}

export interface IngestService extends BrokerPolicy {
  readonly counters: IngestCounters;
  readonly queue: IngestQueue<DeviceRecord>;
  /** Committed records and state, one typed stream per kind a device publishes. */
  readonly streams: RecordStreams;
  stop(): void;
}

/** Kinds stored as records (written in batches); the others are device state. */
const RECORD_KINDS = new Set<TopicKind>(DEVICE_PUBLISH_KINDS.filter((k) => TOPIC_TABLE[k].record));

/** Broker policy and ingest: credentials, ACL, payload validation, batched durable record writes, presence. */
export function createIngestService(deps: {
  devices: DeviceRepo;
  records: RecordRepo;
  bus: HubEventBus;
  log: Logger;
  /** Each drift record is checked against its version's baseline; without it every drift record is dropped as unknown. */
  driftBaselines?: DriftBaselines;
  /** Records queued for writing at most; past it, acknowledgements wait for the queue to drain. */
  queueBound?: number;
}): IngestService {
  const { devices, records, bus, log } = deps;
  const counters: IngestCounters = {
    received: 0,
    stored: 0,
    duplicates: 0,
    dropped: 0,
    droppedByKind: {},
    tooLarge: 0,
    refused: 0,
    storageErrors: 0,
    held: 0,
    queuePeak: 0,
    newEpochs: 0,
    seqRegressions: 0,
    driftRejected: emptyDriftRejections(),
  };
  /** Records waiting for room in the write queue; their publishes stay unacknowledged meanwhile. */
  const waiting: Array<() => void> = [];
  const presence = new Map<string, number>();
  const { streams, publish } = createRecordStreams(log);
  const driftLogs = createLogThrottle(DRIFT_LOG_INTERVAL_MS);
  // The dashboard hears of telemetry through the bus: one subscriber among others.
  streams.telemetry.subscribe((deviceId, t) => {
    bus.emit('telemetry', { deviceId, seq: t.seq, ts: new Date(t.ts).toISOString(), system: t.system, models: t.models });
  });
  const onError = (err: unknown, count: number) => {
    counters.storageErrors += count;
    log.error({ err, count }, 'ingest batch failed');
  };
  const state = createStateWriter({ devices, bus, log, onError });

  function afterCommit(items: readonly DeviceRecord[], { outcomes, epochChanges }: BatchResult): void {
    for (const c of epochChanges) {
      counters.newEpochs++;
      log.warn({ deviceId: c.deviceId, oldEpoch: c.from, newEpoch: c.to, newEpochs: counters.newEpochs }, 'device records start a new epoch: its agent database was replaced');
    }
    items.forEach((r, i) => {
      if (outcomes[i] === 'conflict') {
        counters.seqRegressions++;
        log.warn(
          { deviceId: r.deviceId, kind: r.kind, epoch: r.message.epoch ?? '', seq: r.message.seq, seqRegressions: counters.seqRegressions },
          'record reuses a stored seq with a different time: the device seq went back within its epoch; record not stored',
        );
      }
      if (outcomes[i] !== 'stored') {
        counters.duplicates++;
        return;
      }
      counters.stored++;
      publish(r.kind, r.deviceId, r.message);
    });
  }

  const queue = createIngestQueue<DeviceRecord, BatchResult>({
    commit: (items) => records.insertBatch(items),
    afterCommit,
    onError,
    ...(deps.queueBound === undefined ? {} : { highWater: deps.queueBound }),
  });
  queue.onDrain(() => {
    while (waiting.length > 0 && !queue.full) waiting.shift()!();
  });

  /** Enqueues now, or (queue full) once it drains: the broker's callback, hence the PUBACK, waits with it. */
  function enqueue(record: DeviceRecord, done: (verdict: InboundVerdict) => void): void {
    const push = () => {
      queue.push(record, (err) => done(err ? { refuse: `record not stored: ${err.message}` } : {}));
      counters.queuePeak = Math.max(counters.queuePeak, queue.length);
    };
    if (!queue.full && waiting.length === 0) return push();
    counters.held++;
    waiting.push(push);
  }

  function drop(deviceId: string, kind: TopicKind, error: string): InboundVerdict {
    counters.dropped++;
    counters.droppedByKind[kind] = (counters.droppedByKind[kind] ?? 0) + 1;
    if (kind !== 'drift') log.warn({ deviceId, kind, error, dropped: counters.dropped }, 'invalid message dropped');
    return { drop: true };
  }

  /** Drift drops are counted by reason and logged at most once a minute per device: agents publish them on a timer. */
  function dropDrift(deviceId: string, reason: DriftRejection, error: string, about: { model?: string; version?: string } = {}): InboundVerdict {
    counters.driftRejected[reason]++;
    const suppressed = driftLogs.take(deviceId);
    if (suppressed !== null) log.warn({ deviceId, ...about, reason, error, suppressed, driftRejected: counters.driftRejected }, 'drift record dropped');
    return drop(deviceId, 'drift', error);
  }

  /**
   * Decodes and serialises one record on its own, before it can join a batch: a record that passes
   * the schema but cannot be written (too deep to stringify) is dropped here, costing only its sender.
   */
  function toRecord(deviceId: string, kind: TopicKind, payload: Buffer): DeviceRecord | string {
    const decoded = decodeMessage(kind, payload);
    if (!decoded.ok) return decoded.error;
    try {
      return { deviceId, kind, message: decoded.value, payload: JSON.stringify(decoded.value) } as DeviceRecord;
    } catch (err) {
      return `${kind} record cannot be serialised for storage: ${(err as Error).message}`;
    }
  }

  function handleState(deviceId: string, kind: TopicKind, payload: Buffer, done: (verdict: InboundVerdict) => void): void {
    const answer = (err: Error | null) => done(err ? { refuse: `${kind} not stored: ${err.message}` } : {});
    if (kind === 'reported') {
      const decoded = decodeMessage('reported', payload);
      if (!decoded.ok) return done(drop(deviceId, kind, decoded.error));
      const reported = decoded.value;
      return state.reported(deviceId, reported, answer, () => {
        bus.emit('device', { deviceId, change: 'reported' });
        publish('reported', deviceId, reported);
      });
    }
    const decoded = decodeMessage('status', payload);
    if (!decoded.ok) return done(drop(deviceId, kind, decoded.error));
    const status = decoded.value;
    state.seen(deviceId, (err) => {
      answer(err);
      if (!err) publish('status', deviceId, status);
    });
  }

  return {
    counters,
    queue,
    streams,
    authenticate(username, password) {
      const creds = devices.credentials(username);
      return creds !== undefined && !creds.revoked && secretMatches(password, creds.secretSha256);
    },
    isDeviceId(id) {
      return devices.credentials(id) !== undefined;
    },
    canSubscribe,
    inbound(deviceId, topic, payload, done) {
      counters.received++;
      const acl = canPublish(deviceId, topic);
      if (!acl.ok) {
        counters.refused++;
        log.warn({ deviceId, topic, reason: acl.reason }, 'mqtt publish refused');
        return done({ refuse: acl.reason });
      }
      const kind = acl.kind;
      const limit = MESSAGE_SIZE_LIMITS[kind];
      if (payload.length > limit) {
        counters.tooLarge++;
        const error = `${kind} payload is ${payload.length} bytes: at most ${limit} expected`;
        return done(kind === 'drift' ? dropDrift(deviceId, 'tooLarge', error) : drop(deviceId, kind, error));
      }
      if (!RECORD_KINDS.has(kind)) return handleState(deviceId, kind, payload, done);
      const record = toRecord(deviceId, kind, payload);
      if (typeof record === 'string') return done(kind === 'drift' ? dropDrift(deviceId, 'invalid', record) : drop(deviceId, kind, record));
      if (record.kind === 'drift') {
        // Before it joins a batch: a summary that cannot be scored against its baseline is never stored.
        const { model, version } = record.message;
        const rejected = driftRejection(deps.driftBaselines, record.message);
        if (rejected) return done(dropDrift(deviceId, rejected.reason, rejected.error, { model, version }));
      }
      enqueue(record, done);
    },
    connected(deviceId) {
      const n = (presence.get(deviceId) ?? 0) + 1;
      presence.set(deviceId, n);
      if (n === 1) state.presence(deviceId, true);
    },
    disconnected(deviceId) {
      const n = (presence.get(deviceId) ?? 1) - 1;
      if (n > 0) {
        presence.set(deviceId, n);
        return;
      }
      presence.delete(deviceId);
      state.presence(deviceId, false);
    },
    stop() {
      queue.stop();
      state.stop();
      // The queue refuses pushes once stopped: held publishes are answered (refused), not left hanging.
      for (const push of waiting.splice(0)) push();
    },
  };
}
