import type { Logger } from 'pino';
import type { PendingRecord, RecordOutbox } from '../store/outbox-store.js';
import { TokenBucket } from './drain-rate.js';
import { SendQueue } from './send-queue.js';

export interface DrainLimits {
  /** Records published and not yet acknowledged. */
  maxInFlight: number;
  /** Records published per second, on average; bursts up to maxInFlight. */
  perSecond: number;
}

/** 100/s drains a 2-hour outage at 1 s telemetry (7,200 records) in about 72 s. */
export const DRAIN_LIMITS: DrainLimits = { maxInFlight: 64, perSecond: 100 };

/** The part of the MQTT client the drain uses; hub-link.ts stays the only module that imports mqtt. */
export interface RecordPublisher {
  readonly connected: boolean;
  publish(topic: string, payload: Buffer, opts: { qos: 1 }, callback: (err?: Error) => void): unknown;
}

export interface RecordDrainOptions {
  outbox: RecordOutbox;
  limits: DrainLimits;
  now: () => number;
  /** The current connection, if any: read on every send so a reconnect is picked up. */
  client: () => RecordPublisher | undefined;
  log: Logger;
}

/**
 * Sends stored records to the hub oldest first, within the drain limits, so a long outage's backlog
 * does not flood the hub; a record leaves the outbox only once the hub acknowledged it.
 */
export function createRecordDrain(opts: RecordDrainOptions) {
  const { limits, log } = opts;
  const queue = new SendQueue(opts.outbox);
  const rate = new TokenBucket(limits.maxInFlight, limits.perSecond, opts.now);
  let timer: NodeJS.Timeout | undefined;
  let flushScheduled = false;

  /** Acknowledged records are deleted in batches: one commit per turn of the event loop, not per PUBACK. */
  function scheduleFlush(): void {
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      queue.flush();
    });
  }

  function cancelTimer(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
  }

  function send(): void {
    const c = opts.client();
    if (!c?.connected || timer) return;
    while (queue.inFlightCount < limits.maxInFlight && queue.hasNext()) {
      if (!rate.take()) {
        timer = setTimeout(() => {
          timer = undefined;
          send();
        }, rate.waitMs());
        return;
      }
      const record = queue.take()!;
      c.publish(record.topic, record.payload, { qos: 1 }, (err) => {
        if (err) {
          // Stays in flight; the close that follows sends it again.
          log.debug({ seq: record.seq, err: err.message }, 'record publish not acknowledged');
          return;
        }
        queue.acked(record.seq);
        scheduleFlush();
        send();
      });
    }
  }

  return {
    /** Sends what the limits allow now and schedules the rest. */
    send,
    /** A record was just stored. */
    appended(record: PendingRecord): void {
      queue.appended(record);
      send();
    },
    /** The connection closed: whatever was in flight is read again from disk and sent on the next connect. */
    connectionLost(): void {
      cancelTimer();
      queue.rewind();
    },
    /** No more sends are scheduled (the link is stopping). */
    halt: cancelTimer,
    /** Deletes the records acknowledged so far. */
    flush: () => queue.flush(),
    get inFlight(): number {
      return queue.inFlightCount;
    },
  };
}
