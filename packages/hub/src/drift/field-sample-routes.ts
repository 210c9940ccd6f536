import { createReadStream } from 'node:fs';
import { ApiError, BINARY_HEADER, EdgefleetError, FieldSampleInfo, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireDevice } from '../auth/device-basic-auth.js';
import type { RequireOperator } from '../auth/operator-auth.js';
import { acceptRawBodies, declaredLengthCheck, rawUploadBody } from '../http/raw-body-upload.js';
import type { FieldSampleService } from './field-sample-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError, 413: ApiError, 429: ApiError };
const Reason = Type.Union([Type.Literal('random'), Type.Literal('hard')]);

export interface FieldSampleRouteOptions {
  service: FieldSampleService;
  requireRole: (role: OperatorRole) => RequireOperator;
  /** True for an enrolled, not revoked device with this secret. */
  verifyDevice: (id: string, secret: string) => boolean;
  /** Largest field-sample body, bytes (either form). */
  maxFieldSampleBytes: number;
}

/** Field samples: devices upload (Basic auth), operators list and download them (viewer role). */
export const fieldSampleRoutes: FastifyPluginAsyncTypebox<FieldSampleRouteOptions> = async (app, opts) => {
  const { service } = opts;
  const viewer = opts.requireRole('viewer');

  app.get(
    '/api/v1/models/:name/versions/:version/field-samples',
    {
      onRequest: viewer,
      schema: {
        params: Type.Object({ name: Type.String(), version: Type.String() }),
        querystring: Type.Object({ reason: Type.Optional(Reason), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) }, { additionalProperties: false }),
        response: { 200: Type.Array(FieldSampleInfo), ...errors },
      },
    },
    async (req) => service.list(req.params.name, req.params.version, req.query.reason, req.query.limit ?? 100),
  );

  app.get(
    '/api/v1/field-samples/:id',
    { onRequest: viewer, schema: { params: Type.Object({ id: Type.Integer({ minimum: 1 }) }) } },
    async (req, reply) => {
      const s = service.get(req.params.id);
      reply.header('content-type', s.contentType).header('content-length', s.info.size).header('etag', `"${s.info.sha256}"`);
      if (s.headerLength !== null) reply.header(BINARY_HEADER, String(s.headerLength));
      return reply.send(createReadStream(s.path));
    },
  );

  await app.register(uploadRoute, opts);
};

/** The upload, in its own plugin: its raw-body parsers must not change how other routes read JSON. */
const uploadRoute: FastifyPluginAsyncTypebox<FieldSampleRouteOptions> = async (app, opts) => {
  const limit = opts.maxFieldSampleBytes;
  /** The device each upload authenticated as, from its onRequest hook. */
  const uploader = new WeakMap<FastifyRequest, string>();
  const limits = { json: limit, binary: limit };
  acceptRawBodies(app, limits);
  const sizeCheck = declaredLengthCheck(limits, (length) => `field sample of ${length} bytes is over the limit of ${limit} bytes (maxFieldSampleBytes)`);
  app.post(
    '/api/v1/field-samples',
    {
      // Before the body is read: credentials, a declared length over the limit (named; the parser's own 413 names none), then the device's rate, so an over-limit device costs no read or parse.
      onRequest: async (req, reply) => {
        const deviceId = requireDevice(req, opts.verifyDevice, 'upload field samples');
        uploader.set(req, deviceId);
        await sizeCheck(req);
        try {
          opts.service.admit(deviceId);
        } catch (err) {
          const retry = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
          if (retry !== undefined) reply.header('retry-after', String(retry));
          throw err;
        }
      },
      schema: {
        querystring: Type.Object({
          model: Type.String({ minLength: 1 }),
          version: Type.String({ minLength: 1 }),
          reason: Type.String(),
          margin: Type.Optional(Type.String()),
          entropy: Type.Optional(Type.String()),
          takenAt: Type.Optional(Type.String()),
        }),
        headers: Type.Object({ [BINARY_HEADER]: Type.Optional(Type.String()) }),
        consumes: ['application/json', 'application/octet-stream'],
        response: { 201: FieldSampleInfo, ...errors },
      },
    },
    async (req, reply) => {
      const { body, binary, headerLength } = rawUploadBody(req, 'a field sample');
      if (!binary && headerLength !== undefined) {
        throw new EdgefleetError('BAD_REQUEST', `${BINARY_HEADER} goes with the binary form (application/octet-stream), not application/json`);
      }
      const info = await opts.service.upload({
        ...req.query,
        deviceId: uploader.get(req)!,
        body,
        contentType: binary ? 'application/octet-stream' : 'application/json',
        headerLength,
      });
      return reply.code(201).send(info);
    },
  );
};
