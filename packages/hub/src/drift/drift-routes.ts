import { AlertsQuery, ApiError, DriftAlert, DriftModelView, DriftOverview, EdgefleetError, EvaluationRun, ModelName, VersionName, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { DriftService } from './drift-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError };
const VersionParams = Type.Object({ name: ModelName, version: VersionName });
/** Fleet evaluations shown per version (newest); the store keeps 2,000 per scope. */
const ViewQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 2000, default: 200 })) }, { additionalProperties: false });

/** Thin HTTP over drift evaluation: reads need the viewer role, evaluating now the operator role. */
export const driftRoutes: FastifyPluginAsyncTypebox<{ drift: DriftService; requireRole: (role: OperatorRole) => RequireOperator }> = async (app, opts) => {
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');

  app.get(
    '/api/v1/drift',
    { onRequest: viewer, schema: { summary: 'Every version with a drift baseline: latest fleet score, active alerts, devices over', response: { 200: Type.Array(DriftOverview), ...errors } } },
    async () => opts.drift.overview(),
  );
  app.get(
    '/api/v1/drift/:name/:version',
    {
      onRequest: viewer,
      schema: { summary: 'One version’s drift: baseline, fleet evaluations (oldest first), devices’ latest, alerts', params: VersionParams, querystring: ViewQuery, response: { 200: DriftModelView, ...errors } },
    },
    async (req) => {
      const view = opts.drift.modelView(req.params.name, req.params.version, req.query.limit ?? 200);
      if (!view) throw new EdgefleetError('NOT_FOUND', `model ${req.params.name}@${req.params.version} has no drift baseline and no drift evaluations`);
      return view;
    },
  );
  app.post(
    '/api/v1/drift/evaluations',
    { onRequest: operator, schema: { summary: 'Evaluate drift now instead of waiting for the scheduled job (joins a pass already running)', response: { 200: EvaluationRun, ...errors } } },
    async () => opts.drift.evaluate(),
  );
  app.get(
    '/api/v1/alerts',
    { onRequest: viewer, schema: { summary: 'Drift alerts: active (default), cleared or all; active first, newest first', querystring: AlertsQuery, response: { 200: Type.Array(DriftAlert), ...errors } } },
    async (req) => opts.drift.alerts(req.query.state ?? 'active'),
  );
};
