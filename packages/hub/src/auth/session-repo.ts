import type { Db } from '../store/database.js';
import { newSecret, sha256Hex } from './secret-digest.js';

export const SESSION_TTL_MS = 12 * 3600 * 1000;

/** Dashboard sessions: the cookie holds a random id, the database only its digest. */
export function createSessionRepo(db: Db) {
  const insert = db.prepare('INSERT INTO sessions (id_sha256, expires_at) VALUES (?, ?)');
  const find = db.prepare('SELECT expires_at FROM sessions WHERE id_sha256 = ?').pluck();
  const purge = db.prepare('DELETE FROM sessions WHERE expires_at < ?');
  const remove = db.prepare('DELETE FROM sessions WHERE id_sha256 = ?');
  return {
    create(now = Date.now()): string {
      const id = newSecret('session');
      insert.run(sha256Hex(id), now + SESSION_TTL_MS);
      return id;
    },
    isValid(id: string, now = Date.now()): boolean {
      const expires = find.get(sha256Hex(id)) as number | undefined;
      return expires !== undefined && expires > now;
    },
    delete(id: string): void {
      remove.run(sha256Hex(id));
    },
    purgeExpired(now = Date.now()): number {
      return purge.run(now).changes;
    },
  };
}
export type SessionRepo = ReturnType<typeof createSessionRepo>;
