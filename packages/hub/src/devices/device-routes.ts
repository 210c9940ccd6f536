import { ApiError, Device, DeviceList, SetLabelsRequest, TelemetryHistory } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RequireOperator } from '../auth/operator-auth.js';
import { parseLabelFilters, type DeviceService } from './device-service.js';

const IdParams = Type.Object({ id: Type.String() });
const ListQuery = Type.Object({
  label: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  online: Type.Optional(Type.Boolean()),
});
const TelemetryQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) });
const errors = { 400: ApiError, 401: ApiError, 404: ApiError };

export const deviceRoutes: FastifyPluginAsyncTypebox<{ service: DeviceService; requireOperator: RequireOperator }> = async (app, opts) => {
  const { service } = opts;
  app.addHook('onRequest', opts.requireOperator);

  app.get('/api/v1/devices', { schema: { querystring: ListQuery, response: { 200: DeviceList, ...errors } } }, async (req) => ({
    devices: service.list({ labels: parseLabelFilters(req.query.label), online: req.query.online }),
  }));

  app.get('/api/v1/devices/:id', { schema: { params: IdParams, response: { 200: Device, ...errors } } }, async (req) => service.get(req.params.id));

  app.put(
    '/api/v1/devices/:id/labels',
    { schema: { params: IdParams, body: SetLabelsRequest, response: { 200: Device, ...errors } } },
    async (req) => service.setLabels(req.params.id, req.body.labels),
  );

  app.post('/api/v1/devices/:id/revoke', { schema: { params: IdParams, response: { 200: Device, ...errors } } }, async (req) =>
    service.revoke(req.params.id),
  );

  app.get(
    '/api/v1/devices/:id/telemetry',
    { schema: { params: IdParams, querystring: TelemetryQuery, response: { 200: TelemetryHistory, ...errors } } },
    async (req) => service.telemetry(req.params.id, req.query.limit ?? 100),
  );
};
