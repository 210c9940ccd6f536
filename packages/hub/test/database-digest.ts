import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

/**
 * A digest of every row of `tables` (default: every table): equal digests mean no stored state
 * changed. Blobs hash as base64 rather than as a JSON array of their bytes.
 */
export function databaseDigest(db: Database.Database, tables?: readonly string[]): string {
  const hash = createHash('sha256');
  const names = tables ?? (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]);
  for (const table of names) {
    hash.update(table);
    for (const row of db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).raw().all()) hash.update(JSON.stringify(row, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v)));
  }
  return hash.digest('hex');
}
