import type { PendingRecord, RecordOutbox } from '../store/outbox-store.js';

/** How many stored records one read brings into memory. */
const READ_BATCH = 256;

/**
 * The order in which stored records go out: oldest first, each one until PUBACK. The records
 * themselves live on disk (RecordOutbox); this holds only a window of them and which are in flight.
 * A connection lost mid-flight sends everything unacknowledged again from the oldest (same epoch
 * and seq: the hub ignores what it already has).
 */
export class SendQueue {
  private window: PendingRecord[] = [];
  /** Highest seq read from disk into the window. */
  private cursor = 0;
  /** Every stored record up to the cursor has been read: new ones can join the window directly. */
  private caughtUp = false;
  private readonly inFlight = new Set<number>();
  private toDelete: number[] = [];

  constructor(private readonly store: RecordOutbox) {}

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** A record was just stored; it goes out after everything stored before it. */
  appended(record: PendingRecord): void {
    if (!this.caughtUp) return;
    // Records made faster than they drain stay on disk rather than piling up here.
    if (this.window.length >= READ_BATCH) {
      this.caughtUp = false;
      return;
    }
    this.window.push(record);
    this.cursor = record.seq;
  }

  /** Whether a record is waiting to be sent. */
  hasNext(): boolean {
    if (this.window.length === 0 && !this.caughtUp) this.read();
    return this.window.length > 0;
  }

  /** The next record to send, now marked in flight. */
  take(): PendingRecord | undefined {
    if (!this.hasNext()) return undefined;
    const record = this.window.shift()!;
    this.inFlight.add(record.seq);
    return record;
  }

  acked(seq: number): void {
    if (!this.inFlight.delete(seq)) return;
    this.toDelete.push(seq);
  }

  /** Deletes acknowledged records from disk, in one transaction for all that arrived since the last call. */
  flush(): void {
    if (this.toDelete.length === 0) return;
    const seqs = this.toDelete;
    this.toDelete = [];
    this.store.remove(seqs);
  }

  /** The connection is gone: the window and everything in flight are read again from disk. */
  rewind(): void {
    this.flush();
    this.inFlight.clear();
    this.window = [];
    this.cursor = 0;
    this.caughtUp = false;
  }

  private read(): void {
    this.flush();
    const rows = this.store.readAfter(this.cursor, READ_BATCH);
    this.window = rows;
    if (rows.length > 0) this.cursor = rows[rows.length - 1]!.seq;
    this.caughtUp = rows.length < READ_BATCH;
  }
}
