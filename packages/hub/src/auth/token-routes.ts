import { ApiError, ApiTokenList, CreateApiTokenRequest, CreatedApiToken, EdgefleetError, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { RequireOperator } from './operator-auth.js';
import type { Principal } from './roles.js';
import type { TokenService } from './token-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError };

function principalOf(req: FastifyRequest): Principal {
  if (!req.operator) throw new EdgefleetError('INTERNAL', 'token route reached without an authenticated operator');
  return req.operator;
}

/** Token management is for admins only; a new token's secret is answered once and never again. */
export const tokenRoutes: FastifyPluginAsyncTypebox<{ tokens: TokenService; requireRole: (role: OperatorRole) => RequireOperator }> = async (app, opts) => {
  const admin = opts.requireRole('admin');
  app.post(
    '/api/v1/tokens',
    { onRequest: admin, schema: { body: CreateApiTokenRequest, response: { 201: CreatedApiToken, ...errors } } },
    async (req, reply) => reply.code(201).send(opts.tokens.create(req.body, principalOf(req))),
  );
  app.get('/api/v1/tokens', { onRequest: admin, schema: { response: { 200: ApiTokenList, ...errors } } }, async () => ({ tokens: opts.tokens.list() }));
  app.delete(
    '/api/v1/tokens/:id',
    { onRequest: admin, schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => {
      opts.tokens.revoke(req.params.id, principalOf(req));
      return reply.code(204).send(null);
    },
  );
};
