import Database from 'better-sqlite3';
import { EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { SeqCounter } from './seq-counter.js';

/**
 * Bounds of the store-and-forward outbox. 64 MB holds weeks of 1 s telemetry (a record is ~0.5 KB)
 * and stays small next to the model files on the same disk; after 7 days a record no longer helps
 * anyone. Past either bound the oldest records are dropped first, and counted.
 */
export interface OutboxLimits {
  maxBytes: number;
  maxAgeMs: number;
}
export const OUTBOX_LIMITS: OutboxLimits = { maxBytes: 64 * 1024 * 1024, maxAgeMs: 7 * 24 * 3600 * 1000 };

/** Checking the age bound is a range delete; once a minute is plenty at record rates of ~1/s. */
const AGE_CHECK_EVERY_MS = 60_000;
const EVICTION_LOG_EVERY_MS = 60_000;

export interface PendingRecord {
  seq: number;
  topic: string;
  payload: Buffer;
}

export interface OutboxStats {
  /** Records stored and not yet acknowledged by the hub, and their payload bytes. */
  pending: number;
  bytes: number;
  /** Records dropped by the byte or age bound since the database was made. */
  evicted: number;
  /** Records refused since start because they could not be stored (disk full, I/O error). */
  refused: number;
}

export interface RecordOutbox {
  /** The random identity of this database, sent with every seq it issues. */
  readonly epoch: string;
  /**
   * Takes the next seq, builds the record's payload with it and commits the record, all before it
   * may be published. Throws DISK_FULL/STORAGE_ERROR (and uses no seq) when the write fails; an
   * error thrown by `build` passes through unchanged and uses no seq either.
   */
  append(topic: string, build: (seq: number) => Buffer): PendingRecord;
  /** Stored records with a seq above `seq`, oldest first. */
  readAfter(seq: number, limit: number): PendingRecord[];
  /** Deletes acknowledged records; a failure only means they are sent again (the hub ignores duplicates). */
  remove(seqs: readonly number[]): void;
  stats(): OutboxStats;
}

interface Eviction {
  count: number;
  bytes: number;
}

export function createRecordOutbox(opts: {
  db: Database.Database;
  /** The database file, named in errors. */
  path: string;
  epoch: string;
  counter: SeqCounter;
  limits: OutboxLimits;
  logger: Logger;
  now: () => number;
}): RecordOutbox {
  const { db, limits, now } = opts;
  const log = opts.logger.child({ module: 'outbox' });
  const insert = db.prepare('INSERT INTO outbox (seq, epoch, topic, payload, created_at, size) VALUES (?, ?, ?, ?, ?, ?)');
  const older = db.prepare('SELECT count(*) AS count, total(size) AS bytes FROM outbox WHERE created_at < ?');
  const deleteOlder = db.prepare('DELETE FROM outbox WHERE created_at < ?');
  const oldest = db.prepare('SELECT seq, size FROM outbox WHERE seq < ? ORDER BY seq LIMIT 256');
  const deleteUpTo = db.prepare('DELETE FROM outbox WHERE seq <= ?');
  const countEvicted = db.prepare("UPDATE meta SET value = value + ? WHERE key = 'outbox_evicted'");
  const after = db.prepare('SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?');
  const deleteOne = db.prepare('DELETE FROM outbox WHERE seq = ? RETURNING size').pluck();

  const totals = db.prepare('SELECT count(*) AS count, total(size) AS bytes FROM outbox').get() as Eviction;
  let pending = totals.count;
  let bytes = totals.bytes;
  let evicted = db.prepare("SELECT value FROM meta WHERE key = 'outbox_evicted'").pluck().get() as number;
  let refused = 0;
  let ageCheckedAt = -Infinity;
  let evictionLoggedAt = -Infinity;

  /** Inside the append transaction: drops what is past the age bound, then the oldest until the bytes fit. */
  function evict(seq: number, t: number, size: number): Eviction {
    const out: Eviction = { count: 0, bytes: 0 };
    if (t - ageCheckedAt >= AGE_CHECK_EVERY_MS) {
      const cutoff = t - limits.maxAgeMs;
      const old = older.get(cutoff) as Eviction;
      if (old.count > 0) {
        deleteOlder.run(cutoff);
        out.count += old.count;
        out.bytes += old.bytes;
      }
    }
    let over = bytes + size - out.bytes - limits.maxBytes;
    while (over > 0) {
      const rows = oldest.all(seq) as Array<{ seq: number; size: number }>;
      if (rows.length === 0) break;
      let upTo = rows[0]!.seq;
      for (const r of rows) {
        if (over <= 0) break;
        over -= r.size;
        out.count++;
        out.bytes += r.size;
        upTo = r.seq;
      }
      deleteUpTo.run(upTo);
    }
    if (out.count > 0) countEvicted.run(out.count);
    return out;
  }

  function logEviction(t: number, count: number): void {
    if (t - evictionLoggedAt < EVICTION_LOG_EVERY_MS) return;
    evictionLoggedAt = t;
    log.warn({ dropped: count, evictedTotal: evicted, pending, bytes, limits }, 'outbox is past its bound: oldest records dropped');
  }

  return {
    epoch: opts.epoch,

    append(topic, build) {
      try {
        const t = now();
        const { record, eviction } = opts.counter.use((seq) => {
          const payload = build(seq);
          insert.run(seq, opts.epoch, topic, payload, t, payload.length);
          return { record: { seq, topic, payload }, eviction: evict(seq, t, payload.length) };
        });
        if (t - ageCheckedAt >= AGE_CHECK_EVERY_MS) ageCheckedAt = t;
        pending += 1 - eviction.count;
        bytes += record.payload.length - eviction.bytes;
        if (eviction.count > 0) {
          evicted += eviction.count;
          logEviction(t, eviction.count);
        }
        return record;
      } catch (err) {
        if (!(err instanceof Database.SqliteError)) throw err;
        refused++;
        const code = err.code === 'SQLITE_FULL' ? 'DISK_FULL' : 'STORAGE_ERROR';
        throw new EdgefleetError(code, `record not stored in ${opts.path} (${err.message}); no seq was used for it`, { cause: err });
      }
    },

    readAfter(seq, limit) {
      return after.all(seq, limit) as PendingRecord[];
    },

    remove(seqs) {
      if (seqs.length === 0) return;
      try {
        let removed = 0;
        let freed = 0;
        db.transaction(() => {
          for (const seq of seqs) {
            const size = deleteOne.get(seq) as number | undefined;
            if (size === undefined) continue;
            removed++;
            freed += size;
          }
        })();
        pending -= removed;
        bytes -= freed;
      } catch (err) {
        log.warn({ records: seqs.length, err: (err as Error).message }, 'could not delete acknowledged records; they will be sent again');
      }
    },

    stats: () => ({ pending, bytes, evicted, refused }),
  };
}
