import type { Db } from '../store/database.js';
import { newSecret, sha256Hex } from './secret-digest.js';

export const SESSION_TTL_MS = 12 * 3600 * 1000;

/**
 * Dashboard sessions: the cookie holds a random id, the database only its digest and the digest of
 * the token the session was made from, so the session can end with that token.
 */
export function createSessionRepo(db: Db) {
  const insert = db.prepare('INSERT INTO sessions (id_sha256, expires_at, token_sha256) VALUES (?, ?, ?)');
  const find = db.prepare('SELECT expires_at, token_sha256 FROM sessions WHERE id_sha256 = ?');
  const purge = db.prepare('DELETE FROM sessions WHERE expires_at < ?');
  const remove = db.prepare('DELETE FROM sessions WHERE id_sha256 = ?');
  const removeForToken = db.prepare('DELETE FROM sessions WHERE token_sha256 = ?');
  return {
    create(tokenSha256: string, now = Date.now()): string {
      const id = newSecret('session');
      insert.run(sha256Hex(id), now + SESSION_TTL_MS, tokenSha256);
      return id;
    },
    /** The digest of the token an unexpired session was made from, or undefined. */
    tokenOf(id: string, now = Date.now()): string | undefined {
      const row = find.get(sha256Hex(id)) as { expires_at: number; token_sha256: string } | undefined;
      return row && row.expires_at > now && row.token_sha256 !== '' ? row.token_sha256 : undefined;
    },
    delete(id: string): void {
      remove.run(sha256Hex(id));
    },
    /** Ends every session made from a token (revoked or replaced). */
    deleteForToken(tokenSha256: string): number {
      return removeForToken.run(tokenSha256).changes;
    },
    purgeExpired(now = Date.now()): number {
      return purge.run(now).changes;
    },
  };
}
export type SessionRepo = ReturnType<typeof createSessionRepo>;
