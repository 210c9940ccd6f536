import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { sql as m001 } from './migrations/001-init.js';

export type Db = Database.Database;

/** Numbered migrations, applied forward only; embedded as strings because tsc does not copy .sql files. */
const MIGRATIONS: ReadonlyArray<{ id: number; name: string; sql: string }> = [{ id: 1, name: '001-init', sql: m001 }];

/** Opens the hub database (WAL, foreign keys on) and applies pending migrations. */
export function openDatabase(file: string, log: Logger): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
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
  return db;
}
