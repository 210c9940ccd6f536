import { DEVICE_PUBLISH_KINDS, type MessageOf, type TOPIC_TABLE, type TopicKind } from '@edgefleet/shared';
import type { Logger } from 'pino';

/** The kinds a device publishes (TOPIC_TABLE direction agent-to-hub): one stream each. */
export type StreamKind = { [K in TopicKind]: (typeof TOPIC_TABLE)[K]['direction'] extends 'agent-to-hub' ? K : never }[TopicKind];

/** Hears one committed message of its kind from one device. */
export type StreamListener<K extends StreamKind> = (deviceId: string, message: MessageOf<K>) => void;

export interface RecordStream<K extends StreamKind> {
  /** Adds a listener; returns its removal. */
  subscribe(listener: StreamListener<K>): () => void;
}

/**
 * What ingest tells its consumers (rollouts, planner, benchmarks, the dashboard's bus; drift
 * evaluation reads the committed records from their table on its schedule instead), one typed stream
 * per kind a device publishes. Records are delivered after the batch holding them has
 * committed, `reported` after its state write, `status` after its last-seen write: a listener never
 * hears of something a restart could lose.
 */
export type RecordStreams = { readonly [K in StreamKind]: RecordStream<K> };

export interface RecordStreamHub {
  readonly streams: RecordStreams;
  /** Delivers to every listener of `kind`; one failing listener costs only its own delivery. */
  publish<K extends StreamKind>(kind: K, deviceId: string, message: MessageOf<K>): void;
}

export function createRecordStreams(log: Logger): RecordStreamHub {
  const listeners = new Map<StreamKind, Set<StreamListener<StreamKind>>>();
  const streams = {} as Record<StreamKind, RecordStream<StreamKind>>;
  for (const kind of DEVICE_PUBLISH_KINDS as StreamKind[]) {
    const set = new Set<StreamListener<StreamKind>>();
    listeners.set(kind, set);
    streams[kind] = {
      subscribe(listener) {
        // Wrapped, so that subscribing the same function twice gives two deliveries and two removals.
        const entry: StreamListener<StreamKind> = (deviceId, message) => listener(deviceId, message);
        set.add(entry);
        return () => {
          set.delete(entry);
        };
      },
    };
  }
  return {
    streams: streams as unknown as RecordStreams,
    publish(kind, deviceId, message) {
      const set = listeners.get(kind);
      if (!set) return;
      // A copy: a listener may unsubscribe (itself or another) while we deliver.
      for (const listener of [...set]) {
        try {
          listener(deviceId, message as MessageOf<StreamKind>);
        } catch (err) {
          log.error({ err, deviceId, kind }, 'record stream listener failed; the record stays stored and the other listeners still hear of it');
        }
      }
    },
  };
}
