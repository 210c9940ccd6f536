import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { EdgefleetError } from '@edgefleet/shared';

/** The lock file (an SQLite file holding an exclusive lock) and the file naming the process that holds it. */
const LOCK_FILE = 'agent.lock';
const PID_FILE = 'agent.pid';

export interface StateLock {
  readonly path: string;
  /** Releases the lock; safe to call twice. */
  release(): void;
}

function holderPid(stateDir: string): string {
  try {
    const text = readFileSync(join(stateDir, PID_FILE), 'utf8').trim();
    return /^\d+$/.test(text) ? text : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Takes the state directory for this process, or throws CONFLICT naming the lock file and the PID
 * that holds it. The lock is SQLite's exclusive file lock (POSIX fcntl), which the kernel drops
 * when its process dies: a kill -9 or a power cut leaves no stale lock behind and a reused PID
 * cannot keep the agent from starting, which a PID-file-only lock could not promise.
 */
export function lockStateDir(stateDir: string, pid: number, now: () => number = Date.now): StateLock {
  const path = join(stateDir, LOCK_FILE);
  // timeout 0: a held lock answers at once instead of after SQLite's busy wait.
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // In exclusive locking mode the first write takes the file lock and keeps it until close.
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, since INTEGER NOT NULL)');
    db.transaction(() => {
      db.exec('DELETE FROM holder');
      db.prepare('INSERT INTO holder (pid, since) VALUES (?, ?)').run(pid, now());
    })();
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') {
      throw new EdgefleetError(
        'CONFLICT',
        `state directory ${stateDir} is in use: its lock ${path} is held by another edgefleet-agent (pid ${holderPid(stateDir)}); stop that agent or use another --state-dir`,
      );
    }
    throw new EdgefleetError('STORAGE_ERROR', `cannot lock the state directory with ${path}: ${(err as Error).message}`, { cause: err });
  }
  // The pid file is only for the message above: the lock itself cannot be read while it is held.
  writeFileSync(join(stateDir, PID_FILE), `${pid}\n`, { mode: 0o644 });
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      if (holderPid(stateDir) === String(pid)) rmSync(join(stateDir, PID_FILE), { force: true });
      // The lock file stays: deleting it could let a waiting process lock the old file while a third
      // one creates a new file and locks that.
      db.close();
    },
  };
}
