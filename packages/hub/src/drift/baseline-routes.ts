import { ApiError, BaselineInfo, BINARY_HEADER, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import { acceptRawBodies, declaredLengthCheck, rawUploadBody } from '../http/raw-body-upload.js';
import { MAX_CALIBRATION_JSON_BYTES } from '../models/calibration-data.js';
import type { BaselineService } from './baseline-service.js';

const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError, 409: ApiError, 413: ApiError, 503: ApiError };
const VersionParams = Type.Object({ name: Type.String(), version: Type.String() });
const PATH = '/api/v1/models/:name/versions/:version';

export interface BaselineRouteOptions {
  service: BaselineService;
  requireRole: (role: OperatorRole) => RequireOperator;
  /** Largest reference body in the binary tensor form, bytes (the calibration upload's limit). */
  maxReferenceBytes: number;
}

/**
 * A version's drift baseline (viewer) and its reference data upload (operator). The upload answers
 * 200 with the BaselineInfo once the baseline is built and every manifest of the version re-signed
 * (a few seconds for thousands of samples): the caller learns at once whether its data fits the model.
 */
export const baselineRoutes: FastifyPluginAsyncTypebox<BaselineRouteOptions> = async (app, opts) => {
  app.get(
    `${PATH}/baseline`,
    { onRequest: opts.requireRole('viewer'), schema: { params: VersionParams, response: { 200: BaselineInfo, ...errors } } },
    async (req) => opts.service.info(req.params.name, req.params.version),
  );
  await app.register(referenceUpload, opts);
};

/** The upload in its own plugin: its body parsers (raw buffers, as the calibration upload) must not change how other routes read JSON. */
const referenceUpload: FastifyPluginAsyncTypebox<BaselineRouteOptions> = async (app, opts) => {
  const limits = { json: MAX_CALIBRATION_JSON_BYTES, binary: opts.maxReferenceBytes };
  acceptRawBodies(app, limits);
  const sizeCheck = declaredLengthCheck(limits, (length, limit, binary) => `reference body of ${length} bytes is over the ${binary ? 'binary' : 'JSON'} limit of ${limit} bytes`);

  app.put(
    `${PATH}/reference`,
    {
      onRequest: [opts.requireRole('operator'), sizeCheck],
      schema: {
        params: VersionParams,
        headers: Type.Object({ [BINARY_HEADER]: Type.Optional(Type.String()) }),
        consumes: ['application/json', 'application/octet-stream'],
        response: { 200: BaselineInfo, ...errors },
      },
    },
    async (req) => {
      const { body, headerLength } = rawUploadBody(req, 'a reference body', ' (as a calibration body)');
      return opts.service.uploadReference(req.params.name, req.params.version, body, headerLength);
    },
  );
};
