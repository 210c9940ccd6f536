import type { ServerResponse } from 'node:http';
import type { Device } from '@edgefleet/shared';
import type { FastifyPluginAsync } from 'fastify';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { HubEventBus } from '../events/hub-event-bus.js';

const HEARTBEAT_MS = 15_000;

/**
 * GET /api/v1/events: server-sent events (`event: device|telemetry|rollout`, JSON `data:`) for the dashboard.
 * A `device` event carries the whole device as it is now, so the page never has to guess what changed.
 * One bus subscription serves every open stream: each event is looked up and serialized once.
 */
export const eventStreamRoutes: FastifyPluginAsync<{ bus: HubEventBus; requireOperator: RequireOperator; deviceById: (id: string) => Device | undefined }> = async (app, opts) => {
  const open = new Set<ServerResponse>();
  const broadcast = (frame: string) => {
    for (const res of open) res.write(frame);
  };
  const unsubscribe = opts.bus.subscribe((name, payload) => {
    if (open.size === 0) return;
    const data = name === 'device' ? opts.deviceById((payload as { deviceId: string }).deviceId) : payload;
    if (data) broadcast(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  });
  const heartbeat = setInterval(() => broadcast(': ping\n\n'), HEARTBEAT_MS);
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    unsubscribe();
    for (const res of open) res.end();
    open.clear();
  });

  app.get('/api/v1/events', { onRequest: opts.requireOperator, schema: { hide: true } }, async (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n: connected\n\n');
    open.add(res);
    req.raw.once('close', () => open.delete(res));
  });
};
