import { ApiError, BenchmarkRequestBody, DeviceBenchmark, ModelName, PlanList, ProfileName, VersionName, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { BenchmarkService } from './benchmark-service.js';
import type { PlanService } from './plan-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError };
const DeviceParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
const PlanQuery = Type.Object({
  model: Type.Optional(ModelName),
  version: Type.Optional(VersionName),
  deviceId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
});
const ReplanRequest = Type.Union([
  Type.Object({ model: Type.Optional(ModelName), version: Type.Optional(VersionName) }, { additionalProperties: false }),
  Type.Null(),
]);
/** The answer to a benchmark request: its id (the cmd's) and the candidates sent. */
const BenchmarkAccepted = Type.Object({
  id: Type.String(),
  candidates: Type.Array(Type.Object({ profile: ProfileName, sha256: Type.String() })),
});

/** Thin HTTP over plans and device benchmarks: reads need the viewer role, re-plans and benchmark requests the operator role. */
export const planRoutes: FastifyPluginAsyncTypebox<{ plans: PlanService; benchmarks: BenchmarkService; requireRole: (role: OperatorRole) => RequireOperator }> = async (app, opts) => {
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');

  app.get(
    '/api/v1/plans',
    { onRequest: viewer, schema: { summary: 'Stored device plans (which variant each device gets and why), filtered by model, version and device', querystring: PlanQuery, response: { 200: PlanList, ...errors } } },
    async (req) => ({ plans: opts.plans.list(req.query) }),
  );
  app.post(
    '/api/v1/plans/replan',
    {
      onRequest: operator,
      schema: { summary: 'Re-plan now (one version, a model’s latest, or every model’s latest) and answer the plans that changed', body: ReplanRequest, response: { 200: PlanList, ...errors } },
    },
    async (req) => ({ plans: await opts.plans.replan(req.body ?? {}) }),
  );
  app.post(
    '/api/v1/devices/:id/benchmarks',
    {
      onRequest: operator,
      schema: {
        summary: 'Ask an online device to benchmark a version’s accepted variants (409 when it is offline)',
        params: DeviceParams,
        body: BenchmarkRequestBody,
        response: { 202: BenchmarkAccepted, 409: ApiError, 413: ApiError, ...errors },
      },
    },
    async (req, reply) => reply.code(202).send(await opts.benchmarks.request(req.params.id, req.body)),
  );
  app.get(
    '/api/v1/devices/:id/benchmarks',
    { onRequest: viewer, schema: { summary: 'What a device measured', params: DeviceParams, response: { 200: Type.Object({ benchmarks: Type.Array(DeviceBenchmark) }), ...errors } } },
    async (req) => ({ benchmarks: opts.benchmarks.list(req.params.id) }),
  );
};
