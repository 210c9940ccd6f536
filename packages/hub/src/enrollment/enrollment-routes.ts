import { ApiError, CreateEnrollmentTokenRequest, EnrollRequest, EnrollResponse, EnrollmentToken, type OperatorRole } from '@edgefleet/shared';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AttemptLimit } from '../auth/attempt-limit.js';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { EnrollmentEndpoints, EnrollmentService } from './enrollment-service.js';

export interface EnrollmentRoutesOptions {
  service: EnrollmentService;
  requireRole: (role: OperatorRole) => RequireOperator;
  /** Failed enrollments (bad tokens) per source address. */
  limit: AttemptLimit;
  /** API and broker URLs given to a device, from configuration or the request's Host header. */
  endpointsFor: (host: string | undefined, protocol: string) => EnrollmentEndpoints;
}

export const enrollmentRoutes: FastifyPluginAsyncTypebox<EnrollmentRoutesOptions> = async (app, opts) => {
  app.post(
    '/api/v1/enrollment-tokens',
    {
      onRequest: opts.requireRole('operator'),
      schema: { body: CreateEnrollmentTokenRequest, response: { 201: EnrollmentToken, 401: ApiError, 403: ApiError } },
    },
    async (req, reply) => reply.code(201).send(opts.service.createToken(req.body?.ttlSeconds, req.body?.labels)),
  );

  app.post(
    '/api/v1/enroll',
    {
      onRequest: opts.limit.check,
      onSend: opts.limit.count,
      schema: { body: EnrollRequest, response: { 201: EnrollResponse, 400: ApiError, 401: ApiError, 429: ApiError } },
    },
    async (req, reply) => reply.code(201).send(opts.service.enroll(req.body, opts.endpointsFor(req.headers.host, req.protocol))),
  );
};
