import type { Device } from '@edgefleet/shared';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { RequireOperator } from '../auth/operator-auth.js';
import type { HubEventBus, HubEventMap, HubEventName } from '../events/hub-event-bus.js';
import { createSseFanout } from './sse-fanout.js';

const HEARTBEAT_MS = 15_000;

/**
 * GET /api/v1/events: server-sent events (`event: device|telemetry|rollout|variants|plan|drift`, JSON `data:`) for the dashboard.
 * A `device` event carries the whole device as it is now, so the page never has to guess what changed.
 * One bus subscription serves every open stream: each event is looked up and serialized once. A failing
 * lookup or serialisation skips that event; a failing or stalled stream is dropped alone.
 */
export interface EventStreamOptions {
  bus: HubEventBus;
  requireOperator: RequireOperator;
  /** Whether the credentials a stream's request was authenticated with are still valid (checked while it stays open). */
  stillAuthenticated: (req: FastifyRequest) => boolean;
  deviceById: (id: string) => Device | undefined;
}

export const eventStreamRoutes: FastifyPluginAsync<EventStreamOptions> = async (app, opts) => {
  const log = app.log.child({ module: 'event-stream' });
  const fanout = createSseFanout(log);
  /** The frame for an event, or null when there is nothing to send (the device is gone). */
  const frameOf = (name: HubEventName, payload: HubEventMap[HubEventName]): string | null => {
    const data = name === 'device' ? opts.deviceById((payload as HubEventMap['device']).deviceId) : payload;
    return data ? `event: ${name}\ndata: ${JSON.stringify(data)}\n\n` : null;
  };
  const unsubscribe = opts.bus.subscribe((name, payload) => {
    if (fanout.size === 0) return;
    let frame: string | null;
    try {
      frame = frameOf(name, payload);
    } catch (err) {
      // Stored state that cannot be read or serialised costs this one event, never the stream or the hub.
      log.error({ err, event: name, deviceId: (payload as { deviceId?: string }).deviceId }, 'event not sent to dashboards');
      return;
    }
    if (frame) fanout.broadcast(frame);
  });
  const heartbeat = setInterval(() => fanout.broadcast(': ping\n\n'), HEARTBEAT_MS);
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    unsubscribe();
    fanout.closeAll();
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
    fanout.add(res, () => opts.stillAuthenticated(req));
    req.raw.once('close', () => fanout.remove(res));
  });
};
