import { decodeMessage, type DeploymentEvent, type MessageOf, type TopicKind } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { secretMatches } from '../auth/secret-digest.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { DeviceRecord, RecordRepo } from '../records/record-repo.js';
import type { BrokerPolicy, InboundVerdict } from './broker.js';
import { canPublish, canSubscribe } from './device-acl.js';
import { createIngestQueue, type IngestQueue } from './ingest-queue.js';

/** What ingest tells the rollout runner about. */
export interface DeploymentObserver {
  onDeploymentEvent(deviceId: string, event: DeploymentEvent): void;
  onReported(deviceId: string, reported: MessageOf<'reported'>): void;
}

export interface IngestCounters {
  received: number;
  stored: number;
  duplicates: number;
  dropped: number;
  droppedByKind: Partial<Record<TopicKind, number>>;
  refused: number;
  storageErrors: number;
  /** Records whose acknowledgement waited for the full write queue to drain (push-back). */
  held: number;
  /** The most records the write queue has held at once (never above its bound). */
  queuePeak: number;
}

export interface IngestService extends BrokerPolicy {
  readonly counters: IngestCounters;
  readonly queue: IngestQueue<DeviceRecord>;
  setObserver(observer: DeploymentObserver): void;
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
    refused: 0,
    storageErrors: 0,
    held: 0,
    queuePeak: 0,
  };
  /** Records waiting for room in the write queue; their publishes stay unacknowledged meanwhile. */
  const waiting: Array<() => void> = [];
  const presence = new Map<string, number>();
  let observer: DeploymentObserver | null = null;

  const queue = createIngestQueue<DeviceRecord>({
    commit: (items) => records.insertBatch(items),
    afterCommit(items, fresh) {
      items.forEach((r, i) => {
        if (!fresh[i]) {
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
          observer?.onDeploymentEvent(r.deviceId, r.message);
        }
      });
    },
    onError(err, count) {
      counters.storageErrors += count;
      log.error({ err, count }, 'ingest batch failed');
    },
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

  function handleState(deviceId: string, kind: TopicKind, payload: Buffer): InboundVerdict {
    const now = new Date().toISOString();
    if (kind === 'reported') {
      const decoded = decodeMessage('reported', payload);
      if (!decoded.ok) return drop(deviceId, kind, decoded.error);
      devices.setReported(deviceId, decoded.value, now);
      bus.emit('device', { deviceId, change: 'reported' });
      observer?.onReported(deviceId, decoded.value);
      return {};
    }
    const decoded = decodeMessage('status', payload);
    if (!decoded.ok) return drop(deviceId, kind, decoded.error);
    devices.touch(deviceId, now);
    return {};
  }

  return {
    counters,
    queue,
    setObserver(o) {
      observer = o;
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
      if (!RECORD_KINDS.has(kind)) return done(handleState(deviceId, kind, payload));
      const decoded = decodeMessage(kind, payload);
      if (!decoded.ok) return done(drop(deviceId, kind, decoded.error));
      enqueue({ deviceId, kind, message: decoded.value } as DeviceRecord, done);
    },
    connected(deviceId) {
      const n = (presence.get(deviceId) ?? 0) + 1;
      presence.set(deviceId, n);
      if (n === 1) {
        devices.setOnline(deviceId, true, new Date().toISOString());
        bus.emit('device', { deviceId, change: 'online' });
        log.info({ deviceId }, 'device online');
      }
    },
    disconnected(deviceId) {
      const n = (presence.get(deviceId) ?? 1) - 1;
      if (n > 0) {
        presence.set(deviceId, n);
        return;
      }
      presence.delete(deviceId);
      devices.setOnline(deviceId, false, new Date().toISOString());
      bus.emit('device', { deviceId, change: 'offline' });
      log.info({ deviceId }, 'device offline');
    },
    stop() {
      queue.stop();
      // The queue refuses pushes once stopped: held publishes are answered (refused), not left hanging.
      for (const push of waiting.splice(0)) push();
    },
  };
}
