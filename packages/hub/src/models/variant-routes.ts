import {
  ApiError,
  BINARY_HEADER,
  BuildVariantsRequest,
  CalibrationSummary,
  VariantBuild,
  VariantDetail,
  VariantList,
  type OperatorRole,
} from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import { acceptRawBodies, declaredLengthCheck, rawUploadBody } from '../http/raw-body-upload.js';
import { MAX_CALIBRATION_JSON_BYTES } from './calibration-data.js';
import type { VariantService } from './variant-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError, 409: ApiError, 413: ApiError };
const VersionParams = Type.Object({ name: Type.String(), version: Type.String() });
const PATH = '/api/v1/models/:name/versions/:version';

export interface VariantRouteOptions {
  service: VariantService;
  requireRole: (role: OperatorRole) => RequireOperator;
  /** Largest calibration body in the binary tensor form, bytes. */
  maxCalibrationBytes: number;
}

/** Variants of a model version (list, one, start a build) and its calibration data. Viewer reads, operator writes. */
export const variantRoutes: FastifyPluginAsyncTypebox<VariantRouteOptions> = async (app, opts) => {
  const { service } = opts;
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');

  app.get(
    `${PATH}/variants`,
    { onRequest: viewer, schema: { params: VersionParams, response: { 200: VariantList, ...errors } } },
    async (req) => service.list(req.params.name, req.params.version),
  );

  app.get(
    `${PATH}/variants/:profile`,
    { onRequest: viewer, schema: { params: Type.Object({ name: Type.String(), version: Type.String(), profile: Type.String() }), response: { 200: VariantDetail, ...errors } } },
    async (req) => service.get(req.params.name, req.params.version, req.params.profile),
  );

  app.post(
    `${PATH}/variants`,
    { onRequest: operator, schema: { params: VersionParams, body: Type.Optional(BuildVariantsRequest), response: { 202: VariantBuild, ...errors } } },
    async (req, reply) => reply.code(202).send(service.startBuild(req.params.name, req.params.version, req.body ?? {})),
  );

  app.get(
    `${PATH}/calibration`,
    { onRequest: viewer, schema: { params: VersionParams, response: { 200: CalibrationSummary, ...errors } } },
    async (req) => service.calibration(req.params.name, req.params.version),
  );

  await app.register(calibrationUpload, opts);
};

/**
 * The calibration upload, in its own plugin: its body parsers (raw buffers, JSON with a lower limit
 * than binary) must not change how the other routes read JSON.
 */
const calibrationUpload: FastifyPluginAsyncTypebox<VariantRouteOptions> = async (app, opts) => {
  const operator = opts.requireRole('operator');
  const limits = { json: MAX_CALIBRATION_JSON_BYTES, binary: opts.maxCalibrationBytes };
  acceptRawBodies(app, limits);
  const sizeCheck = declaredLengthCheck(limits, (length, limit, binary) => {
    const hint = binary ? '' : `; send larger sets in the binary tensor form (application/octet-stream with ${BINARY_HEADER}, up to ${limits.binary} bytes)`;
    return `calibration body of ${length} bytes is over the ${binary ? 'binary' : 'JSON'} limit of ${limit} bytes${hint}`;
  });

  app.put(
    `${PATH}/calibration`,
    {
      onRequest: [operator, sizeCheck],
      schema: {
        params: VersionParams,
        headers: Type.Object({ [BINARY_HEADER]: Type.Optional(Type.String()) }),
        consumes: ['application/json', 'application/octet-stream'],
        response: { 200: CalibrationSummary, ...errors },
      },
    },
    async (req) => {
      const { body, headerLength } = rawUploadBody(req, 'a calibration body');
      return opts.service.uploadCalibration(req.params.name, req.params.version, body, headerLength);
    },
  );
};
