import { decodeMessage, MESSAGE_SIZE_LIMITS, type DeploymentEvent, type MessageOf, type TopicKind } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { secretMatches } from '../auth/secret-digest.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { BatchResult, DeviceRecord, RecordRepo } from '../records/record-repo.js';
import type { BrokerPolicy, InboundVerdict } from './broker.js';
import { canPublish, canSubscribe } from './device-acl.js';
import { createIngestQueue, type IngestQueue } from './ingest-queue.js';
import { createStateWriter } from './state-writer.js';

/**
 * What ingest tells its consumers about (the rollout runner, the planner, benchmarks), each after
 * the write it follows has committed. A consumer implements the calls it needs.
 */
export interface IngestObserver {
  onDeploymentEvent?(deviceId: string, event: DeploymentEvent): void;
  onReported?(deviceId: string, reported: MessageOf<'reported'>): void;
  onCmdResult?(deviceId: string, result: MessageOf<'cmd/result'>): void;
}

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
}

export interface IngestService extends BrokerPolicy {
  readonly counters: IngestCounters;
  readonly queue: IngestQueue<DeviceRecord>;
  /** Adds a consumer of committed records and reports; returns its removal. */
  addObserver(observer: IngestObserver): () => void;
  stop(): void;
}

const RECORD_KINDS = new Set<TopicKind>(['telemetry', 'events', 'drift', 'cmd/result']);

/** Broker policy and ingest: credentials, ACL, payload validation, batched durable record writes, presence. */
export function createIngestService(deps: {
  devices: DeviceRepo;
  records: RecordRepo;
  bus: HubEventBus;
  log: Logger;
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
  };
  /** Records waiting for room in the write queue; their publishes stay unacknowledged meanwhile. */
  const waiting: Array<() => void> = [];
  const presence = new Map<string, number>();
  const observers = new Set<IngestObserver>();
  /** One consumer's failure costs only its own delivery: the batch is committed and the others still hear of it. */
  const tell = (call: (o: IngestObserver) => void, deviceId: string) => {
    for (const o of [...observers]) {
      try {
        call(o);
      } catch (err) {
        log.error({ err, deviceId }, 'ingest observer failed; the record stays stored');
      }
    }
  };
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
      if (r.kind === 'telemetry') {
        bus.emit('telemetry', {
          deviceId: r.deviceId,
          seq: r.message.seq,
          ts: new Date(r.message.ts).toISOString(),
          system: r.message.system,
          models: r.message.models,
        });
      } else if (r.kind === 'events' && r.message.type === 'deployment') {
        const event = r.message;
        tell((o) => o.onDeploymentEvent?.(r.deviceId, event), r.deviceId);
      } else if (r.kind === 'cmd/result') {
        const result = r.message;
        tell((o) => o.onCmdResult?.(r.deviceId, result), r.deviceId);
      }
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
    log.warn({ deviceId, kind, error, dropped: counters.dropped }, 'invalid message dropped');
    return { drop: true };
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
        tell((o) => o.onReported?.(deviceId, reported), deviceId);
      });
    }
    const decoded = decodeMessage('status', payload);
    if (!decoded.ok) return done(drop(deviceId, kind, decoded.error));
    state.seen(deviceId, answer);
  }

  return {
    counters,
    queue,
    addObserver(o) {
      observers.add(o);
      return () => {
        observers.delete(o);
      };
    },
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
        return done(drop(deviceId, kind, `${kind} payload is ${payload.length} bytes: at most ${limit} expected`));
      }
      if (!RECORD_KINDS.has(kind)) return handleState(deviceId, kind, payload, done);
      const record = toRecord(deviceId, kind, payload);
      if (typeof record === 'string') return done(drop(deviceId, kind, record));
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
