import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { MIGRATIONS } from './migrations.js';

export interface OpenedDatabase {
  db: Database.Database;
  /** The file was made at this start (it was missing, empty or corrupt): nothing in it survived. */
  fresh: boolean;
  /** Where a corrupt file was moved, when one was. */
  corruptMovedTo?: string;
}

/** SQLite's answer when a file is not (or no longer) a database it can read. */
const CORRUPTION_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_SEQUENCE', 'SQLITE_CORRUPT_VTAB']);

class CorruptDatabase extends Error {}

function isCorruption(err: unknown): boolean {
  if (err instanceof CorruptDatabase) return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && CORRUPTION_CODES.has(code);
}

function migrate(d: Database.Database, log: Logger, now: () => number): boolean {
  d.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const applied = new Set(d.prepare('SELECT id FROM schema_migrations').pluck().all() as number[]);
  for (const m of MIGRATIONS) {
    if (applied.has(m.id)) continue;
    d.transaction(() => {
      d.exec(m.sql);
      d.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)').run(m.id, m.name, now());
    })();
    log.info({ migration: m.id, name: m.name }, 'migration applied');
  }
  return applied.size === 0;
}

function openOnce(path: string, log: Logger, now: () => number): { db: Database.Database; fresh: boolean } {
  const d = new Database(path);
  try {
    d.pragma('journal_mode = WAL');
    // FULL: a reserved sequence block and a stored record must survive power loss.
    d.pragma('synchronous = FULL');
    d.pragma('foreign_keys = ON');
    // quick_check reads every page (without cross-checking indexes): cheap at the size of agent.db,
    // and it finds the damage that would otherwise surface later as failing writes.
    const problems = (d.pragma('quick_check') as Array<{ quick_check: string }>).map((r) => r.quick_check);
    if (problems.length !== 1 || problems[0] !== 'ok') throw new CorruptDatabase(problems.slice(0, 3).join('; '));
    return { db: d, fresh: migrate(d, log, now) };
  } catch (err) {
    d.close();
    throw err;
  }
}

/** Moves the file and its WAL/SHM aside, so a fresh database never replays a stale log. */
function moveAside(path: string, stamp: number): string {
  const target = `${path}.corrupt-${stamp}`;
  renameSync(path, target);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
  }
  return target;
}

/**
 * Opens agent.db, checking its integrity. A corrupt file is moved aside (agent.db.corrupt-<ms>) and
 * replaced by a fresh one, with an error naming both files: the agent then rebuilds its state from
 * its verified model files and the hub. Any other failure to open is thrown, naming the file.
 */
export function openAgentDatabase(path: string, log: Logger, now: () => number): OpenedDatabase {
  mkdirSync(dirname(path), { recursive: true });
  try {
    return openOnce(path, log, now);
  } catch (err) {
    if (!isCorruption(err)) {
      throw new EdgefleetError('STORAGE_ERROR', `cannot open the agent database ${path}: ${(err as Error).message}`, { cause: err });
    }
    const reason = (err as Error).message;
    const movedTo = moveAside(path, now());
    log.error(
      { file: path, movedTo, reason },
      `agent database ${path} is corrupt (${reason}); moved it to ${movedTo} and starting a fresh database with a new epoch`,
    );
    try {
      return { ...openOnce(path, log, now), fresh: true, corruptMovedTo: movedTo };
    } catch (again) {
      throw new EdgefleetError('STORAGE_ERROR', `cannot create a fresh agent database ${path}: ${(again as Error).message}`, { cause: again });
    }
  }
}
