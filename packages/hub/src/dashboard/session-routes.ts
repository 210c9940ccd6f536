import { ApiError, EdgefleetError } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AdminTokens } from '../auth/admin-token.js';
import { SESSION_COOKIE } from '../auth/operator-auth.js';
import { SESSION_TTL_MS, type SessionRepo } from '../auth/session-repo.js';

/** The dashboard trades the admin token for an HttpOnly cookie, since a browser's EventSource cannot send headers. */
export const sessionRoutes: FastifyPluginAsyncTypebox<{ tokens: AdminTokens; sessions: SessionRepo }> = async (app, opts) => {
  app.post(
    '/api/v1/session',
    { schema: { body: Type.Object({ token: Type.String({ minLength: 1 }) }), response: { 200: Type.Object({ ok: Type.Boolean() }), 401: ApiError } } },
    async (req, reply) => {
      if (!opts.tokens.verify(req.body.token)) throw new EdgefleetError('UNAUTHORIZED', 'the admin token is not valid');
      const id = opts.sessions.create();
      reply.setCookie(SESSION_COOKIE, id, {
        httpOnly: true,
        sameSite: 'strict',
        path: '/',
        secure: req.protocol === 'https',
        maxAge: Math.floor(SESSION_TTL_MS / 1000),
      });
      return { ok: true };
    },
  );
  app.delete('/api/v1/session', { schema: { response: { 200: Type.Object({ ok: Type.Boolean() }) } } }, async (req, reply) => {
    // Logging out ends the session itself, not just this browser's copy of the cookie.
    const id = req.cookies[SESSION_COOKIE];
    if (id) opts.sessions.delete(id);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { ok: true };
  });
};
