import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EdgefleetError, type ApiToken, type CreateApiTokenRequest, type CreatedApiToken } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { AdminTokens } from './admin-token.js';
import type { Principal } from './roles.js';
import { newSecret, secretMatches, sha256Hex } from './secret-digest.js';
import type { SessionRepo } from './session-repo.js';
import type { ApiTokenRow, TokenRepo } from './token-repo.js';

const ADMIN_TOKEN_ID = 'admin';

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

const toApiToken = (t: ApiTokenRow): ApiToken => ({
  id: t.id,
  name: t.name,
  role: t.role,
  createdAt: t.createdAt,
  expiresAt: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(),
});

/**
 * Operator tokens: the first admin token plus API tokens with roles. Both resolve to a principal;
 * a session stores its token's digest and resolves through `byDigest`, so it lives only as long as
 * that token does.
 *
 * API tokens are found by their digest (an index lookup): the digest of a 256-bit secret gives an
 * attacker no prefix to steer, and the row's digest is still compared in constant time.
 */
export function createTokenService(deps: { admin: AdminTokens; repo: TokenRepo; sessions: SessionRepo; log: Logger; now?: () => number }) {
  const { admin, repo, sessions, log } = deps;
  const now = deps.now ?? Date.now;
  const adminPrincipal: Principal = { tokenId: ADMIN_TOKEN_ID, role: 'admin', tokenSha256: admin.sha256 };

  function live(row: ApiTokenRow | undefined): Principal | undefined {
    if (!row || (row.expiresAt !== null && row.expiresAt <= now())) return undefined;
    return { tokenId: row.id, role: row.role, tokenSha256: row.tokenSha256 };
  }

  return {
    /** The principal a bearer token stands for, or undefined when it is unknown, expired or revoked. */
    resolve(token: string): Principal | undefined {
      if (admin.verify(token)) return adminPrincipal;
      const row = repo.byDigest(sha256Hex(token));
      return row && secretMatches(token, row.tokenSha256) ? live(row) : undefined;
    },
    /** The principal of a token known only by its digest (a session's), while that token is valid. */
    byDigest(tokenSha256: string): Principal | undefined {
      if (sameDigest(tokenSha256, admin.sha256)) return adminPrincipal;
      const row = repo.byDigest(tokenSha256);
      return row && sameDigest(tokenSha256, row.tokenSha256) ? live(row) : undefined;
    },
    create(req: CreateApiTokenRequest, by: Principal): CreatedApiToken {
      const token = newSecret('api');
      const created = now();
      const row: ApiTokenRow = {
        id: `tok-${randomBytes(6).toString('hex')}`,
        name: req.name,
        role: req.role,
        tokenSha256: sha256Hex(token),
        createdAt: new Date(created).toISOString(),
        expiresAt: req.ttlSeconds === undefined ? null : created + req.ttlSeconds * 1000,
      };
      repo.insert(row);
      log.info({ tokenId: row.id, name: row.name, role: row.role, by: by.tokenId }, 'api token created');
      return { ...toApiToken(row), token };
    },
    list(): ApiToken[] {
      return repo.list().map(toApiToken);
    },
    /** Deletes the token and ends every session made from it. */
    revoke(id: string, by: Principal): void {
      const row = repo.byId(id);
      if (!row) {
        const hint = id === ADMIN_TOKEN_ID ? ': the first admin token is replaced by configuring a new one (EDGEFLEET_ADMIN_TOKEN)' : '';
        throw new EdgefleetError('NOT_FOUND', `api token ${id} does not exist${hint}`);
      }
      repo.remove(id);
      const ended = sessions.deleteForToken(row.tokenSha256);
      log.warn({ tokenId: id, sessionsEnded: ended, by: by.tokenId }, 'api token revoked');
    },
  };
}
export type TokenService = ReturnType<typeof createTokenService>;
