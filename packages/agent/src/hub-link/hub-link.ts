import { connect, type MqttClient } from 'mqtt';
import {
  decodeMessage,
  isEdgefleetError,
  deviceTopic,
  encodeMessage,
  type CmdMessage,
  type DesiredMessage,
  type MessageOf,
  type ReportedMessage,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { RecordOutbox } from '../store/outbox-store.js';
import { createRecordDrain, DRAIN_LIMITS, type DrainLimits } from './record-drain.js';

/** Record kinds: each carries the envelope {v, epoch, seq, ts} the link adds. */
export type RecordKind = 'telemetry' | 'events' | 'drift' | 'cmd/result';
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type RecordBody<K extends RecordKind> = DistributiveOmit<MessageOf<K>, 'v' | 'epoch' | 'seq' | 'ts'>;

export interface HubLinkOptions {
  brokerUrl: string;
  deviceId: string;
  secret: string;
  /** The hub's pinned CA (PEM) for mqtts://: the broker's certificate must chain to it, no other root counts. */
  ca?: string | undefined;
  logger: Logger;
  /** Where records wait, on disk, until the hub acknowledges them; it issues their epoch and seq. */
  outbox: RecordOutbox;
  /** The current `reported` document, published (retained) on every connect and on demand. */
  reported: () => ReportedMessage;
  onDesired: (desired: DesiredMessage) => void;
  onCmd?: (cmd: CmdMessage) => void;
  /** Reconnect back-off: starts at minMs, doubles per failed attempt, capped at maxMs. */
  reconnect?: { minMs: number; maxMs: number };
  /** How fast stored records go out after a reconnect, so a long outage's backlog does not flood the hub. */
  drain?: Partial<DrainLimits>;
  now?: () => number;
}

export interface HubLinkStats {
  connected: boolean;
  /** Records stored on disk and not yet acknowledged by the hub, and their bytes. */
  queued: number;
  queuedBytes: number;
  inFlight: number;
  /** Records dropped by the outbox's byte or age bound since agent.db was made. */
  dropped: number;
  /** Records refused since start because they could not be stored or were invalid. */
  refused: number;
  invalidMessages: number;
}

export interface HubLink {
  start(): void;
  /** Publishes `status` offline (when connected) and disconnects; stored records stay for the next start. */
  stop(): Promise<void>;
  /** Stores the record (committed) and sends it when the hub is reachable; a record that cannot be stored is logged and counted, not sent. */
  publishRecord<K extends RecordKind>(kind: K, body: RecordBody<K>): void;
  publishReported(): void;
  stats(): HubLinkStats;
  /** Resolves on the next successful connect (or now, when connected). */
  connected(): Promise<void>;
}

const STOP_PUBLISH_TIMEOUT_MS = 2000;

/** Resolves with the promise's value, or undefined once STOP_PUBLISH_TIMEOUT_MS has passed. */
async function withTimeout<T>(promise: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), STOP_PUBLISH_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The MQTT session to the hub: the only module that imports mqtt. */
export function createHubLink(opts: HubLinkOptions): HubLink {
  const log = opts.logger.child({ module: 'hub-link' });
  const now = opts.now ?? Date.now;
  const backoff = opts.reconnect ?? { minMs: 1000, maxMs: 30_000 };
  const store = opts.outbox;
  const topic = (kind: Parameters<typeof deviceTopic>[1]) => deviceTopic(opts.deviceId, kind);
  const desiredTopic = topic('desired');
  const cmdTopic = topic('cmd');
  let client: MqttClient | undefined;
  let started = false;
  let failures = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let invalidMessages = 0;
  let refused = 0;
  let connectWaiters: Array<() => void> = [];
  const drain = createRecordDrain({ outbox: store, limits: { ...DRAIN_LIMITS, ...opts.drain }, now, client: () => client, log });

  function publishState(kind: 'status' | 'reported', payload: Buffer): void {
    if (!client?.connected) return;
    client.publish(topic(kind), payload, { qos: 1, retain: true }, (err) => {
      if (err) log.debug({ kind, err: err.message }, 'state publish not acknowledged');
    });
  }

  function publishReported(): void {
    try {
      publishState('reported', encodeMessage('reported', opts.reported()));
    } catch (err) {
      log.error({ err: (err as Error).message }, 'building the reported document failed');
    }
  }

  function onMessage(t: string, payload: Buffer): void {
    if (t === desiredTopic) {
      const decoded = decodeMessage('desired', payload);
      if (!decoded.ok) {
        invalidMessages++;
        log.warn({ topic: t, err: decoded.error, invalidMessages }, 'invalid desired message ignored');
        return;
      }
      log.info({ desiredVersion: decoded.value.version, models: decoded.value.models.length }, 'desired state received');
      opts.onDesired(decoded.value);
    } else if (t === cmdTopic) {
      const decoded = decodeMessage('cmd', payload);
      if (!decoded.ok) {
        invalidMessages++;
        log.warn({ topic: t, err: decoded.error, invalidMessages }, 'invalid cmd message ignored');
        return;
      }
      opts.onCmd?.(decoded.value);
    } else {
      log.warn({ topic: t }, 'message on an unexpected topic ignored');
    }
  }

  function onConnect(): void {
    failures = 0;
    log.info({ brokerUrl: opts.brokerUrl, epoch: store.epoch, ...store.stats() }, 'connected to hub');
    publishState('status', encodeMessage('status', { state: 'online', ts: now() }));
    publishReported();
    client?.subscribe([desiredTopic, cmdTopic], { qos: 1 }, (err, granted) => {
      if (err) {
        log.error({ err: err.message }, 'subscribe failed');
        return;
      }
      for (const g of granted ?? []) {
        if (g.qos === 128) log.error({ topic: g.topic }, 'hub refused the subscription');
      }
    });
    drain.send();
    connectWaiters.splice(0).forEach((resolve) => resolve());
  }

  function onClose(): void {
    drain.connectionLost();
    if (!started || reconnectTimer) return;
    const wait = Math.min(backoff.maxMs, backoff.minMs * 2 ** failures) * (0.8 + Math.random() * 0.4);
    failures++;
    log.info({ retryInMs: Math.round(wait), attempt: failures }, 'hub connection closed; reconnecting');
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (started) client?.reconnect();
    }, wait);
  }

  return {
    start() {
      if (started) return;
      started = true;
      client = connect(opts.brokerUrl, {
        protocolVersion: 4, // aedes speaks MQTT 3.1.1 only
        clientId: opts.deviceId,
        username: opts.deviceId,
        password: opts.secret,
        clean: true,
        keepalive: 30,
        connectTimeout: 10_000,
        reconnectPeriod: 0, // reconnects are ours, with growing back-off
        will: { topic: topic('status'), payload: encodeMessage('status', { state: 'offline' }), qos: 1, retain: true },
        ...(opts.ca ? { ca: opts.ca, rejectUnauthorized: true } : {}),
      });
      client.on('connect', onConnect);
      client.on('close', onClose);
      client.on('message', onMessage);
      client.on('error', (err) => log.warn({ err: err.message }, 'hub connection error'));
    },

    async stop() {
      if (!started) return;
      started = false;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      reconnectTimer = undefined;
      drain.halt();
      const c = client;
      client = undefined;
      if (!c) return;
      if (c.connected) {
        const offline = c.publishAsync(topic('status'), encodeMessage('status', { state: 'offline', ts: now() }), { qos: 1, retain: true });
        await withTimeout(offline.catch((err: Error) => log.warn({ err: err.message }, 'offline status not acknowledged')));
        // A graceful end waits for in-flight acknowledgements, which never come if the hub is going
        // down at the same moment; then close the socket (the broker publishes the Last Will instead).
        if (!(await withTimeout(c.endAsync().then(() => true)))) await c.endAsync(true);
      } else {
        await c.endAsync(true);
      }
      drain.flush();
      log.info(store.stats(), 'hub link stopped');
    },

    publishRecord(kind, body) {
      let stored;
      try {
        stored = store.append(topic(kind), (seq) =>
          encodeMessage(kind, { v: 1, epoch: store.epoch, seq, ts: now(), ...body } as MessageOf<typeof kind>),
        );
      } catch (err) {
        refused++;
        const what = isEdgefleetError(err) && (err.code === 'DISK_FULL' || err.code === 'STORAGE_ERROR') ? 'record could not be stored; it is lost' : 'refusing to publish an invalid record';
        log.error({ kind, refused, code: isEdgefleetError(err) ? err.code : undefined, err: (err as Error).message }, what);
        return;
      }
      drain.appended(stored);
    },

    publishReported,

    stats() {
      const s = store.stats();
      return {
        connected: client?.connected ?? false,
        queued: s.pending,
        queuedBytes: s.bytes,
        inFlight: drain.inFlight,
        dropped: s.evicted,
        refused,
        invalidMessages,
      };
    },

    connected() {
      if (client?.connected) return Promise.resolve();
      return new Promise((resolve) => connectWaiters.push(resolve));
    },
  };
}
