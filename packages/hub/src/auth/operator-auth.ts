import { EdgefleetError, type OperatorRole } from '@edgefleet/shared';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type {} from '@fastify/cookie';
import type { AttemptLimit } from './attempt-limit.js';
import { csrfProblem } from './csrf-check.js';
import { roleAllows, type Principal } from './roles.js';
import type { SessionRepo } from './session-repo.js';
import type { TokenService } from './token-service.js';

export const SESSION_COOKIE = 'edgefleet_session';

export type RequireOperator = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** `Bearer <token>`, the scheme in any case (RFC 9110 §11.1). */
const BEARER = /^bearer +(.+)$/i;

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
 *
 * Bad bearer tokens count against `bearerLimit` per address, like bad logins: a configured admin
 * token may be weak, and the login limit means nothing if any route takes guesses at full speed.
 * Bad session cookies do not count: a dashboard's event stream reconnecting with an expired cookie
 * would otherwise lock its operator out of logging in again.
 */
export function createOperatorAuth(tokens: TokenService, sessions: SessionRepo, bearerLimit: AttemptLimit) {
  async function authenticate(req: FastifyRequest, reply: FastifyReply): Promise<Principal> {
    const header = req.headers.authorization;
    if (header !== undefined && header !== '') {
      await bearerLimit.check(req, reply);
      const token = BEARER.exec(header)?.[1]?.trim();
      const principal = token === undefined ? undefined : tokens.resolve(token);
      await bearerLimit.settle(req, !principal);
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
    return async function requireOperatorRole(req, reply) {
      const principal = await authenticate(req, reply);
      if (!roleAllows(principal.role, role)) {
        throw new EdgefleetError('FORBIDDEN', `${req.method} ${req.routeOptions.url ?? req.url} needs the ${role} role; this token has the ${principal.role} role`);
      }
      req.operator = principal;
    };
  }

  /**
   * Whether a request authenticated earlier still would be: its token not revoked or expired, and,
   * for a session cookie, the session not logged out. For streams that outlive their request.
   */
  function stillAuthenticated(req: FastifyRequest): boolean {
    const principal = req.operator;
    if (!principal || !tokens.byDigest(principal.tokenSha256)) return false;
    const header = req.headers.authorization;
    if (header !== undefined && header !== '') return true;
    const cookie = req.cookies?.[SESSION_COOKIE];
    return cookie !== undefined && sessions.tokenOf(cookie) === principal.tokenSha256;
  }

  return {
    requireRole,
    stillAuthenticated,
    /** Any operator (viewer or above): for reads. */
    requireOperator: requireRole('viewer'),
  };
}
