import { EdgefleetError } from '@edgefleet/shared';
import type { FastifyRequest } from 'fastify';
import type {} from '@fastify/cookie';
import type { AdminTokens } from './admin-token.js';
import type { SessionRepo } from './session-repo.js';

export const SESSION_COOKIE = 'edgefleet_session';

/** Operators: `Authorization: Bearer <admin token>`, or the dashboard's session cookie. */
export function createOperatorAuth(tokens: AdminTokens, sessions: SessionRepo) {
  return async function requireOperator(req: FastifyRequest): Promise<void> {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ') && tokens.verify(header.slice(7).trim())) return;
    const cookie = req.cookies?.[SESSION_COOKIE];
    if (cookie && sessions.isValid(cookie)) return;
    throw new EdgefleetError('UNAUTHORIZED', 'operator authentication required: expected "Authorization: Bearer <admin token>" or a session cookie');
  };
}
export type RequireOperator = ReturnType<typeof createOperatorAuth>;
