import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { HealthQuery, HubHealth } from '@edgefleet/shared';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { IngestCounters } from '../broker/ingest-service.js';

const NS_PER_MS = 1e6;
const RESOLUTION_MS = 10;

/**
 * Liveness plus the broker's connection count, the ingest counters (dropped invalid messages,
 * duplicates) and the event-loop delay since start or the last `?reset=1` — the number the hub's
 * latency targets are judged by.
 */
export const healthRoutes: FastifyPluginAsyncTypebox<{ status: () => { connections: number; ingest: IngestCounters } }> = async (app, opts) => {
  const delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  app.addHook('onClose', async () => delay.disable());

  app.get('/api/v1/health', { schema: { querystring: HealthQuery, response: { 200: HubHealth } } }, async (req) => {
    // The histogram records whole timer intervals; the lag is what exceeds the sampling interval.
    const lag = (ns: number) => +Math.max(0, ns / NS_PER_MS - RESOLUTION_MS).toFixed(2);
    const eventLoopDelayMs = { p50: lag(delay.percentile(50)), p99: lag(delay.percentile(99)), max: lag(delay.max) };
    if (req.query.reset === '1') delay.reset();
    return { status: 'ok' as const, ...opts.status(), eventLoopDelayMs };
  });
};
