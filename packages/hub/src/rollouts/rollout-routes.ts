import { ApiError, CreateRolloutRequest, ROLLOUT_ACTIONS, Rollout, RolloutSummary, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { RolloutService } from './rollout-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError };
const byId = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
const DEFAULT_LIST_LIMIT = 50;
const listQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })) });

/** Thin HTTP over the rollout service: create, list (newest first), one with waves and devices, and the operator actions. */
export const rolloutRoutes: FastifyPluginAsyncTypebox<{ service: RolloutService; requireRole: (role: OperatorRole) => RequireOperator }> = async (app, opts) => {
  const { service } = opts;
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');

  app.post(
    '/api/v1/rollouts',
    { onRequest: operator, schema: { summary: 'Start a staged rollout of a model version', body: CreateRolloutRequest, response: { 201: Rollout, ...errors } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get(
    '/api/v1/rollouts',
    {
      onRequest: viewer,
      schema: {
        summary: 'Rollouts, newest first, without device rows (the newest `limit`, 50 unless asked, at most 500)',
        querystring: listQuery,
        response: { 200: Type.Object({ rollouts: Type.Array(RolloutSummary) }), ...errors },
      },
    },
    async (req) => ({ rollouts: service.list(req.query.limit ?? DEFAULT_LIST_LIMIT) }),
  );
  app.get(
    '/api/v1/rollouts/:id',
    { onRequest: viewer, schema: { summary: 'One rollout with its waves, gate results and device rows', params: byId, response: { 200: Rollout, ...errors } } },
    async (req) => service.get(req.params.id),
  );
  for (const action of ROLLOUT_ACTIONS) {
    app.post(
      `/api/v1/rollouts/:id/${action}`,
      {
        onRequest: operator,
        schema: { summary: `${action[0]!.toUpperCase()}${action.slice(1)} a rollout (409 when its state does not allow it)`, params: byId, response: { 200: Rollout, 409: ApiError, ...errors } },
      },
      async (req) => service.act(req.params.id, action),
    );
  }
};
