import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

/**
 * agent.db.seq: the last reserved seq and its epoch, kept outside the database. The database is the
 * truth and is committed first, so the mark is never ahead of it, except when agent.db itself went
 * back (restored from an older copy): then its seqs would repeat under the same epoch and the hub
 * would drop the new records as duplicates. Noticing that, the store starts a new epoch instead.
 */
export interface SeqMark {
  epoch: string;
  reserved: number;
}

/**
 * A damaged mark must not push the reservation near 2^53, where every later seq fails the envelope
 * schema and no record could be sent again: past this (a million records a second for eight years)
 * the mark is not believed.
 */
const MAX_PLAUSIBLE_SEQ = 2 ** 48;

function seqMarkPath(dbPath: string): string {
  return `${dbPath}.seq`;
}

function readSeqMark(dbPath: string): SeqMark | undefined {
  try {
    const parsed = JSON.parse(readFileSync(seqMarkPath(dbPath), 'utf8')) as Partial<SeqMark>;
    const reserved = parsed.reserved;
    if (typeof parsed.epoch === 'string' && Number.isSafeInteger(reserved) && reserved! >= 0 && reserved! <= MAX_PLAUSIBLE_SEQ) return { epoch: parsed.epoch, reserved: reserved! };
  } catch {
    // Missing or unreadable: nothing to compare with, which is also the state after a first start.
  }
  return undefined;
}

/** Best effort (the database stays the truth): a mark that cannot be written only weakens the check above. */
export function writeSeqMark(dbPath: string, mark: SeqMark, log: Logger): void {
  const path = seqMarkPath(dbPath);
  try {
    writeFileSync(`${path}.tmp`, JSON.stringify(mark));
    renameSync(`${path}.tmp`, path);
  } catch (err) {
    log.warn({ path, err: (err as Error).message }, 'could not write the seq mark');
  }
}

/**
 * At start: when the mark names this database's epoch with a higher reservation than the database
 * holds, the database went back. It gets a new epoch, and its reservation moves past the mark so
 * seqs keep rising for the device. Returns the epoch to use.
 */
export function checkSeqMark(db: Database.Database, dbPath: string, log: Logger): string {
  const epoch = db.prepare("SELECT value FROM identity WHERE key = 'epoch'").pluck().get() as string;
  const reserved = db.prepare("SELECT value FROM meta WHERE key = 'seq_reserved'").pluck().get() as number;
  const mark = readSeqMark(dbPath);
  if (!mark || mark.epoch !== epoch || mark.reserved <= reserved) return epoch;
  const next = db.transaction(() => {
    db.prepare("UPDATE identity SET value = lower(hex(randomblob(16))) WHERE key = 'epoch'").run();
    db.prepare("UPDATE meta SET value = ? WHERE key = 'seq_reserved'").run(mark.reserved);
    return db.prepare("SELECT value FROM identity WHERE key = 'epoch'").pluck().get() as string;
  })();
  log.warn(
    { path: dbPath, epoch, newEpoch: next, databaseReserved: reserved, markReserved: mark.reserved },
    `${dbPath} went back (restored from an older copy?): its seq reservation ${reserved} is below the ${mark.reserved} already used; starting a new epoch`,
  );
  return next;
}
