import { statfs } from 'node:fs/promises';
import { EdgefleetError } from '@edgefleet/shared';

/**
 * Free bytes kept beyond a model's own needs by default: agent.db, its outbox and logs share the
 * disk, and a model that would leave nothing for them would only move the failure elsewhere.
 */
export const DEFAULT_DISK_RESERVE_BYTES = 16 * 1024 * 1024;

/** Bytes an unprivileged process may still write on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** True for the errors a full disk (or quota) gives: from the file system, or from SQLite. */
export function isNoSpaceError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}

export interface SpaceNeed {
  /** What the bytes are for, e.g. "clf@1.0.0". */
  what: string;
  dir: string;
  /** Bytes about to be written. */
  bytes: number;
  /** How `bytes` is made up, for the message. */
  detail: string;
  reserve: number;
}

/** Throws DISK_FULL, naming the bytes needed and free, unless `need.bytes` plus the reserve fit now. */
export async function ensureFreeSpace(need: SpaceNeed): Promise<void> {
  const free = await freeBytes(need.dir);
  const wanted = need.bytes + need.reserve;
  if (free >= wanted) return;
  throw new EdgefleetError(
    'DISK_FULL',
    `${need.what} needs ${wanted} bytes free in ${need.dir} (${need.detail}, plus ${need.reserve} kept free) but only ${free} bytes are free; will retry`,
  );
}
