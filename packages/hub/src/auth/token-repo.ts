import type { OperatorRole } from '@edgefleet/shared';
import type { Db } from '../store/database.js';

export interface ApiTokenRow {
  id: string;
  name: string;
  role: OperatorRole;
  tokenSha256: string;
  createdAt: string;
  /** Epoch ms, or null for a token that lasts until revoked. */
  expiresAt: number | null;
}

interface Row {
  id: string;
  name: string;
  role: OperatorRole;
  token_sha256: string;
  created_at: string;
  expires_at: number | null;
}

const toToken = (r: Row): ApiTokenRow => ({
  id: r.id,
  name: r.name,
  role: r.role,
  tokenSha256: r.token_sha256,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

/** SQL for operator API tokens (stored as SHA-256 digests). */
export function createTokenRepo(db: Db) {
  const insert = db.prepare('INSERT INTO api_tokens (id, name, role, token_sha256, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)');
  const list = db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id');
  const byDigest = db.prepare('SELECT * FROM api_tokens WHERE token_sha256 = ?');
  const byId = db.prepare('SELECT * FROM api_tokens WHERE id = ?');
  const remove = db.prepare('DELETE FROM api_tokens WHERE id = ?');
  return {
    insert(t: ApiTokenRow): void {
      insert.run(t.id, t.name, t.role, t.tokenSha256, t.createdAt, t.expiresAt);
    },
    list(): ApiTokenRow[] {
      return (list.all() as Row[]).map(toToken);
    },
    byDigest(sha256: string): ApiTokenRow | undefined {
      const row = byDigest.get(sha256) as Row | undefined;
      return row && toToken(row);
    },
    byId(id: string): ApiTokenRow | undefined {
      const row = byId.get(id) as Row | undefined;
      return row && toToken(row);
    },
    remove(id: string): boolean {
      return remove.run(id).changes === 1;
    },
  };
}
export type TokenRepo = ReturnType<typeof createTokenRepo>;
