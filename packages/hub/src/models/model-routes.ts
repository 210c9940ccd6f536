import { AccuracyBudget, ApiError, ModelList, ModelName, ModelVersion, VersionName } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { OperatorRole } from '@edgefleet/shared';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { ModelService } from './model-service.js';
import { createUploadGate } from './upload-gate.js';

/** Model uploads received or checked at once; the rest answer 429 before their bodies are read. */
export const MAX_CONCURRENT_UPLOADS = 2;

const errors = { 400: ApiError, 401: ApiError, 404: ApiError, 409: ApiError, 413: ApiError, 429: ApiError };

export const modelRoutes: FastifyPluginAsyncTypebox<{ service: ModelService; requireRole: (role: OperatorRole) => RequireOperator; maxModelBytes: number }> = async (
  app,
  opts,
) => {
  const { service } = opts;
  // Uploads need the operator role, reads the viewer role.
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');
  const uploads = createUploadGate<object>(MAX_CONCURRENT_UPLOADS);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: opts.maxModelBytes }, (_req, body, done) => done(null, body));

  app.post(
    '/api/v1/models/:name/versions',
    {
      onRequest: [operator, async (req) => uploads.admit(req.raw)],
      onResponse: async (req) => uploads.release(req.raw),
      onRequestAbort: async (req) => uploads.release(req.raw),
      bodyLimit: opts.maxModelBytes,
      schema: {
        params: Type.Object({ name: ModelName }),
        // The accuracy budget's fields ride in the query beside the version (the body is the ONNX file).
        querystring: Type.Object({ version: VersionName, ...AccuracyBudget.properties }),
        consumes: ['application/octet-stream'],
        response: { 201: ModelVersion, ...errors },
      },
    },
    async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { version, ...budget } = req.query;
      return reply.code(201).send(await service.upload(req.params.name, version, body, budget));
    },
  );

  app.get('/api/v1/models', { onRequest: viewer, schema: { response: { 200: ModelList, ...errors } } }, async () => ({ models: service.list() }));

  app.get(
    '/api/v1/models/:name/versions',
    { onRequest: viewer, schema: { params: Type.Object({ name: Type.String() }), response: { 200: Type.Object({ versions: Type.Array(ModelVersion) }), ...errors } } },
    async (req) => ({ versions: service.versions(req.params.name) }),
  );

  app.get(
    '/api/v1/models/:name/versions/:version',
    { onRequest: viewer, schema: { params: Type.Object({ name: Type.String(), version: Type.String() }), response: { 200: ModelVersion, ...errors } } },
    async (req) => service.get(req.params.name, req.params.version),
  );
};
