import { ApiError } from '@edgefleet/shared';
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { HubMetrics } from './hub-metrics.js';

/**
 * `GET /metrics` in the Prometheus text format (0.0.4) for any operator token, the viewer role
 * included: Prometheus sends it with `authorization: { credentials_file: … }`. The counts are fleet
 * aggregates, but still not for anyone who can reach the port.
 */
export const metricsRoutes: FastifyPluginAsyncTypebox<{ metrics: HubMetrics; requireOperator: RequireOperator }> = async (app, opts) => {
  app.get(
    '/metrics',
    { onRequest: opts.requireOperator, schema: { response: { 200: Type.String({ description: 'Prometheus text exposition format 0.0.4' }), 401: ApiError, 403: ApiError } } },
    async (_req, reply) => reply.type(opts.metrics.contentType).send(await opts.metrics.render()),
  );
};
