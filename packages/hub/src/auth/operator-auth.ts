import { EdgefleetError, type OperatorRole } from '@edgefleet/shared';
import type { FastifyRequest } from 'fastify';
import type {} from '@fastify/cookie';
import { csrfProblem } from './csrf-check.js';
import { roleAllows, type Principal } from './roles.js';
import type { SessionRepo } from './session-repo.js';
import type { TokenService } from './token-service.js';

export const SESSION_COOKIE = 'edgefleet_session';

export type RequireOperator = (req: FastifyRequest) => Promise<void>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the operator auth hooks once a request is authenticated. */
    operator?: Principal;
  }
}

/** The origin facts of a request, for the CSRF check of cookie-authenticated writes. */
function originFacts(req: FastifyRequest) {
  const h = req.headers;
  const length = Number(h['content-length'] ?? 0);
  return {
    method: req.method,
    protocol: req.protocol,
    host: h.host,
    origin: h.origin,
    referer: h.referer,
    contentType: h['content-type'],
    hasBody: length > 0 || h['transfer-encoding'] !== undefined,
  };
}

/** Refuses a cookie-authenticated write from another origin or with a form body (403). */
export function checkCookieWrite(req: FastifyRequest): void {
  const problem = csrfProblem(originFacts(req));
  if (problem) throw new EdgefleetError('FORBIDDEN', problem);
}

/**
 * Operators: `Authorization: Bearer <token>` (the admin token or an API token), or the dashboard's
 * session cookie, which carries the role of the token it was made from for as long as that token is
 * valid. Every route states the role it needs.
 */
export function createOperatorAuth(tokens: TokenService, sessions: SessionRepo) {
  function authenticate(req: FastifyRequest): Principal {
    const header = req.headers.authorization;
    if (header !== undefined && header !== '') {
      const principal = header.startsWith('Bearer ') ? tokens.resolve(header.slice(7).trim()) : undefined;
      if (!principal) throw new EdgefleetError('UNAUTHORIZED', 'the bearer token is not valid (unknown, expired or revoked): expected "Authorization: Bearer <token>"');
      return principal;
    }
    const cookie = req.cookies?.[SESSION_COOKIE];
    const digest = cookie ? sessions.tokenOf(cookie) : undefined;
    const principal = digest ? tokens.byDigest(digest) : undefined;
    if (!principal) {
      throw new EdgefleetError('UNAUTHORIZED', 'operator authentication required: expected "Authorization: Bearer <token>" or a session cookie (a session ends with its token)');
    }
    checkCookieWrite(req);
    return principal;
  }

  function requireRole(role: OperatorRole): RequireOperator {
    return async function requireOperatorRole(req) {
      const principal = authenticate(req);
      if (!roleAllows(principal.role, role)) {
        throw new EdgefleetError('FORBIDDEN', `${req.method} ${req.routeOptions.url ?? req.url} needs the ${role} role; this token has the ${principal.role} role`);
      }
      req.operator = principal;
    };
  }

  return {
    requireRole,
    /** Any operator (viewer or above): for reads. */
    requireOperator: requireRole('viewer'),
  };
}
export type OperatorAuth = ReturnType<typeof createOperatorAuth>;
