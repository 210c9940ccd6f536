import { Readable } from 'node:stream';

interface RetainedPacket {
  topic: string;
  payload: Buffer | Uint8Array | string;
}

/** The slice of aedes' persistence (callback flavour) that retained messages go through. */
export interface RetainedPersistence {
  storeRetained(packet: RetainedPacket, cb?: (err?: Error | null) => void): unknown;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

const isExact = (pattern: string) => !pattern.includes('+') && !pattern.includes('#');

/**
 * Serves exact-topic retained lookups from a map. aedes' memory persistence answers every
 * SUBSCRIBE by testing the pattern against every retained message: with 10,000 devices (their
 * `desired`, `status` and `reported` retained) a reconnect storm does 10,000 × 30,000 matches.
 * Devices may only subscribe to exact topics of their own tree, so those become one map lookup;
 * wildcard patterns still go to the persistence. Wraps the broker's own persistence instance
 * (built by aedes) because the memory persistence keeps its retained map private.
 */
export function indexRetained(persistence: RetainedPersistence): void {
  const byTopic = new Map<string, RetainedPacket>();
  const store = persistence.storeRetained.bind(persistence);
  const stream = persistence.createRetainedStream.bind(persistence);
  const combi = persistence.createRetainedStreamCombi.bind(persistence);
  const lookup = (patterns: string[]) => patterns.flatMap((p) => byTopic.get(p) ?? []);

  persistence.storeRetained = (packet, cb) => {
    // Same rule as the persistence: an empty payload clears the topic's retained message.
    if (packet.payload.length === 0) byTopic.delete(packet.topic);
    else byTopic.set(packet.topic, { ...packet });
    return store(packet, cb);
  };
  persistence.createRetainedStream = (pattern) => (isExact(pattern) ? Readable.from(lookup([pattern])) : stream(pattern));
  persistence.createRetainedStreamCombi = (patterns) => (patterns.every(isExact) ? Readable.from(lookup(patterns)) : combi(patterns));
}
