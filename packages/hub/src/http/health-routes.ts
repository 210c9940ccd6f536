import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { FastifyPluginAsync } from 'fastify';
import type { IngestCounters } from '../broker/ingest-service.js';

const NS_PER_MS = 1e6;

/**
 * Liveness plus the broker's connection count, the ingest counters (dropped invalid messages,
 * duplicates) and the event-loop delay since start or the last `?reset=1` — the number the hub's
 * latency targets are judged by.
 */
export const healthRoutes: FastifyPluginAsync<{ status: () => { connections: number; ingest: IngestCounters } }> = async (app, opts) => {
  const delay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  app.addHook('onClose', async () => delay.disable());

  app.get<{ Querystring: { reset?: string } }>('/api/v1/health', { schema: { hide: true } }, async (req) => {
    const eventLoopDelayMs = {
      p50: +(delay.percentile(50) / NS_PER_MS).toFixed(2),
      p99: +(delay.percentile(99) / NS_PER_MS).toFixed(2),
      max: +(delay.max / NS_PER_MS).toFixed(2),
    };
    if (req.query.reset === '1') delay.reset();
    return { status: 'ok', ...opts.status(), eventLoopDelayMs };
  });
};
