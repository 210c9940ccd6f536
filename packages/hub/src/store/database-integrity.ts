import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { EdgefleetError } from '@edgefleet/shared';
import type Database from 'better-sqlite3';
import { ALLOW_EMPTY_DB_ENV } from '../config.js';

/** Files in the data directory that only a hub with a database writes: their presence means one existed. */
function earlierHubState(dataDir: string): string[] {
  const found: string[] = [];
  if (existsSync(join(dataDir, 'signing-key.pem'))) found.push('signing-key.pem');
  const artifactsDir = join(dataDir, 'artifacts');
  const artifacts = existsSync(artifactsDir) ? readdirSync(artifactsDir).filter((name) => !name.startsWith('.')) : [];
  if (artifacts.length > 0) found.push(`${artifacts.length} artifact file(s) in artifacts/`);
  return found;
}

function isMissingOrEmpty(file: string): string | null {
  if (!existsSync(file)) return 'is missing';
  return statSync(file).size === 0 ? 'is empty (0 bytes)' : null;
}

/**
 * A lost or truncated database beside an earlier hub's signing key and artifacts would start an
 * empty hub that refuses every enrolled device, forever and silently: refuse instead, unless the
 * operator says a fresh database is intended. `hasSchema` is false for a file that SQLite opens
 * but that holds no hub tables.
 */
export function assertDatabaseMatchesDataDir(file: string, opts: { allowEmpty: boolean; hasSchema?: boolean }): void {
  if (opts.allowEmpty) return;
  const state = opts.hasSchema === false ? 'holds no hub tables' : isMissingOrEmpty(file);
  if (state === null) return;
  const leftovers = earlierHubState(dirname(file));
  if (leftovers.length === 0) return;
  throw new EdgefleetError(
    'STORAGE_ERROR',
    `hub database ${file} ${state}, but its data directory ${dirname(file)} holds an earlier hub's ${leftovers.join(' and ')}: ` +
      `starting would give an empty hub that refuses every enrolled device. Restore ${basename(file)} from a backup; ` +
      `or, to start over with no devices on purpose, set ${ALLOW_EMPTY_DB_ENV}=1 (keeps the signing key and artifacts) ` +
      'or move signing-key.pem and artifacts/ away',
  );
}

/** How many problems `quick_check` lists in the error; the log of a badly damaged file can have thousands. */
const SHOWN_PROBLEMS = 5;

/**
 * `PRAGMA quick_check` (page and b-tree structure, O(size) but without the index-vs-table
 * comparison of integrity_check): a damaged file is refused at start, naming it, instead of
 * starting a hub whose writes fail.
 */
export function assertDatabaseIntact(db: Database.Database, file: string): void {
  const problems = db.pragma('quick_check') as Array<{ quick_check: string }>;
  const messages = problems.map((row) => row.quick_check).filter((m) => m !== 'ok');
  if (messages.length === 0) return;
  const shown = messages.slice(0, SHOWN_PROBLEMS).join('; ');
  const more = messages.length > SHOWN_PROBLEMS ? ` (and ${messages.length - SHOWN_PROBLEMS} more)` : '';
  throw new EdgefleetError(
    'STORAGE_ERROR',
    `hub database ${file} is damaged: quick_check found ${shown}${more}. Stop the hub and restore the file from a backup (or recover it with the sqlite3 ".recover" command)`,
  );
}
