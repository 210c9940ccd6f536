/**
 * Records waiting for the broker, bounded in memory: when full, the oldest is dropped and counted.
 * Records stay here until PUBACK, so a connection lost mid-flight resends them (same seq: the hub
 * ignores duplicates). A disk-backed outbox is a later issue.
 */
export interface OutboxRecord {
  seq: number;
  topic: string;
  payload: Buffer;
}

export class Outbox {
  private readonly queued: OutboxRecord[] = [];
  private readonly inFlight = new Map<number, OutboxRecord>();
  dropped = 0;

  constructor(private readonly capacity: number) {}

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  get size(): number {
    return this.queued.length + this.inFlight.size;
  }

  push(record: OutboxRecord): void {
    this.queued.push(record);
    while (this.size > this.capacity && this.queued.length > 0) {
      this.queued.shift();
      this.dropped++;
    }
  }

  /** Takes the next record to send and marks it in flight. */
  take(): OutboxRecord | undefined {
    const record = this.queued.shift();
    if (record) this.inFlight.set(record.seq, record);
    return record;
  }

  acked(seq: number): void {
    this.inFlight.delete(seq);
  }

  /** The connection is gone: everything in flight goes back to the front, in seq order. */
  requeueInFlight(): void {
    const back = [...this.inFlight.values()].sort((a, b) => a.seq - b.seq);
    this.inFlight.clear();
    this.queued.unshift(...back);
  }

  isInFlight(seq: number): boolean {
    return this.inFlight.has(seq);
  }
}
