import { ApiError, Device, DeviceActionRequest, DeviceList, SetLabelsRequest, TelemetryHistory, type OperatorRole } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import { parseLabelFilters, type DeviceService } from './device-service.js';

const IdParams = Type.Object({ id: Type.String() });
const ListQuery = Type.Object({
  label: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  online: Type.Optional(Type.Boolean()),
});
const TelemetryQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) });
const errors = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError };

/** Reads need the viewer role, changes (labels, revoke, restore) the operator role. */
export const deviceRoutes: FastifyPluginAsyncTypebox<{ service: DeviceService; requireRole: (role: OperatorRole) => RequireOperator }> = async (app, opts) => {
  const { service } = opts;
  const viewer = opts.requireRole('viewer');
  const operator = opts.requireRole('operator');

  app.get('/api/v1/devices', { onRequest: viewer, schema: { querystring: ListQuery, response: { 200: DeviceList, ...errors } } }, async (req) => ({
    devices: service.list({ labels: parseLabelFilters(req.query.label), online: req.query.online }),
  }));

  app.get('/api/v1/devices/:id', { onRequest: viewer, schema: { params: IdParams, response: { 200: Device, ...errors } } }, async (req) => service.get(req.params.id));

  app.put(
    '/api/v1/devices/:id/labels',
    { onRequest: operator, schema: { params: IdParams, body: SetLabelsRequest, response: { 200: Device, ...errors } } },
    async (req) => service.setLabels(req.params.id, req.body.labels),
  );

  app.post(
    '/api/v1/devices/:id/revoke',
    { onRequest: operator, schema: { params: IdParams, body: DeviceActionRequest, response: { 200: Device, ...errors } } },
    async (req) => service.revoke(req.params.id),
  );

  app.post(
    '/api/v1/devices/:id/restore',
    { onRequest: operator, schema: { params: IdParams, body: DeviceActionRequest, response: { 200: Device, ...errors } } },
    async (req) => service.restore(req.params.id),
  );

  app.get(
    '/api/v1/devices/:id/telemetry',
    { onRequest: viewer, schema: { params: IdParams, querystring: TelemetryQuery, response: { 200: TelemetryHistory, ...errors } } },
    async (req) => service.telemetry(req.params.id, req.query.limit ?? 100),
  );
};
