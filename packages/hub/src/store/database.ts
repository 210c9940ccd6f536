import Database from 'better-sqlite3';
import { EdgefleetError, isEdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { assertDatabaseIntact, assertDatabaseMatchesDataDir } from './database-integrity.js';
import { sql as m001 } from './migrations/001-init.js';
import { sql as m002 } from './migrations/002-record-epoch.js';
import { sql as m003 } from './migrations/003-operator-auth.js';
import { sql as m004 } from './migrations/004-staged-rollouts.js';
import { sql as m005 } from './migrations/005-compression-variants.js';
import { sql as m006 } from './migrations/006-drift.js';

export type Db = Database.Database;

/** Numbered migrations, applied forward only; embedded as strings because tsc does not copy .sql files. */
const MIGRATIONS: ReadonlyArray<{ id: number; name: string; sql: string }> = [
  { id: 1, name: '001-init', sql: m001 },
  { id: 2, name: '002-record-epoch', sql: m002 },
  { id: 3, name: '003-operator-auth', sql: m003 },
  { id: 4, name: '004-staged-rollouts', sql: m004 },
  { id: 5, name: '005-compression-variants', sql: m005 },
  { id: 6, name: '006-drift', sql: m006 },
];

export interface OpenDatabaseOptions {
  /** Start on a missing or empty database even beside an earlier hub's signing key and artifacts. */
  allowEmpty?: boolean;
}

/**
 * Opens the hub database (WAL, foreign keys on), checks that it is intact and belongs to its data
 * directory, and applies pending migrations. Any failure names the file and closes it again.
 */
export function openDatabase(file: string, log: Logger, opts: OpenDatabaseOptions = {}): Db {
  const allowEmpty = opts.allowEmpty ?? false;
  assertDatabaseMatchesDataDir(file, { allowEmpty });
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 5000');
    const checkStarted = performance.now();
    assertDatabaseIntact(db, file);
    log.info({ file, ms: Math.round(performance.now() - checkStarted) }, 'database quick_check ok');
    const hasSchema = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'").get() !== undefined;
    assertDatabaseMatchesDataDir(file, { allowEmpty, hasSchema });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db, log);
  } catch (err) {
    db.close();
    if (isEdgefleetError(err)) throw err;
    throw new EdgefleetError('STORAGE_ERROR', `hub database ${file} cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function migrate(db: Db, log: Logger): void {
  db.exec('CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const applied = new Set(db.prepare('SELECT id FROM migrations').pluck().all() as number[]);
  for (const m of MIGRATIONS) {
    if (applied.has(m.id)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO migrations (id, name, applied_at) VALUES (?, ?, ?)').run(m.id, m.name, new Date().toISOString());
    })();
    log.info({ migration: m.name }, 'migration applied');
  }
}
