import { ApiError, CreateRolloutRequest, Rollout } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { RolloutService } from './rollout-service.js';

const errors = { 400: ApiError, 401: ApiError, 404: ApiError };

export const rolloutRoutes: FastifyPluginAsyncTypebox<{ service: RolloutService; requireOperator: RequireOperator }> = async (app, opts) => {
  const { service } = opts;
  app.addHook('onRequest', opts.requireOperator);

  app.post('/api/v1/rollouts', { schema: { body: CreateRolloutRequest, response: { 201: Rollout, ...errors } } }, async (req, reply) =>
    reply.code(201).send(await service.create(req.body)),
  );
  app.get('/api/v1/rollouts', { schema: { response: { 200: Type.Object({ rollouts: Type.Array(Rollout) }), ...errors } } }, async () => ({
    rollouts: service.list(),
  }));
  app.get('/api/v1/rollouts/:id', { schema: { params: Type.Object({ id: Type.String() }), response: { 200: Rollout, ...errors } } }, async (req) =>
    service.get(req.params.id),
  );
};
