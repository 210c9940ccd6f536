import { ApiError, EdgefleetError, OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AttemptLimit } from '../auth/attempt-limit.js';
import { checkCookieWrite, SESSION_COOKIE } from '../auth/operator-auth.js';
import { SESSION_TTL_MS, type SessionRepo } from '../auth/session-repo.js';
import type { TokenService } from '../auth/token-service.js';

export interface SessionRoutesOptions {
  tokens: TokenService;
  sessions: SessionRepo;
  /** Failed logins per source address. */
  limit: AttemptLimit;
}

/**
 * The dashboard trades a token for an HttpOnly cookie, since a browser's EventSource cannot send
 * headers. The session has the role of that token and ends when the token is revoked or replaced.
 */
export const sessionRoutes: FastifyPluginAsyncTypebox<SessionRoutesOptions> = async (app, opts) => {
  app.post(
    '/api/v1/session',
    {
      onRequest: opts.limit.check,
      onSend: opts.limit.count,
      schema: {
        body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 256 }) }),
        response: { 200: Type.Object({ ok: Type.Boolean(), role: OperatorRole }), 401: ApiError, 429: ApiError },
      },
    },
    async (req, reply) => {
      const principal = opts.tokens.resolve(req.body.token);
      if (!principal) throw new EdgefleetError('UNAUTHORIZED', 'the token is not valid (unknown, expired or revoked)');
      const id = opts.sessions.create(principal.tokenSha256);
      reply.setCookie(SESSION_COOKIE, id, {
        httpOnly: true,
        sameSite: 'strict',
        path: '/',
        secure: req.protocol === 'https',
        maxAge: Math.floor(SESSION_TTL_MS / 1000),
      });
      return { ok: true, role: principal.role };
    },
  );
  app.delete('/api/v1/session', { schema: { response: { 200: Type.Object({ ok: Type.Boolean() }), 403: ApiError } } }, async (req, reply) => {
    // Logging out ends the session itself, not just this browser's copy of the cookie.
    const id = req.cookies[SESSION_COOKIE];
    if (id) {
      checkCookieWrite(req);
      opts.sessions.delete(id);
    }
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { ok: true };
  });
};
