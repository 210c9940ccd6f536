import { ApiError, CreateRolloutRequest, Rollout } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { OperatorRole } from '@edgefleet/shared';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { RolloutService } from './rollout-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError };

export const rolloutRoutes: FastifyPluginAsyncTypebox<{ service: RolloutService; requireRole: (role: OperatorRole) => RequireOperator }> = async (app, opts) => {
  const { service } = opts;
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');

  app.post('/api/v1/rollouts', { onRequest: operator, schema: { body: CreateRolloutRequest, response: { 201: Rollout, ...errors } } }, async (req, reply) =>
    reply.code(201).send(await service.create(req.body)),
  );
  app.get('/api/v1/rollouts', { onRequest: viewer, schema: { response: { 200: Type.Object({ rollouts: Type.Array(Rollout) }), ...errors } } }, async () => ({
    rollouts: service.list(),
  }));
  app.get('/api/v1/rollouts/:id', { onRequest: viewer, schema: { params: Type.Object({ id: Type.String() }), response: { 200: Rollout, ...errors } } }, async (req) =>
    service.get(req.params.id),
  );
};
