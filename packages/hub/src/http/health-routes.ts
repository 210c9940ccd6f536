import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { HealthQuery, HubHealth, type HubStatus } from '@edgefleet/shared';
import { EdgefleetError } from '@edgefleet/shared';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type {} from '@fastify/cookie';
import { SESSION_COOKIE, type RequireOperator } from '../auth/operator-auth.js';
import type { IngestCounters } from '../broker/ingest-service.js';
import type { StorageHealthState } from '../store/storage-health.js';

const NS_PER_MS = 1e6;
const RESOLUTION_MS = 10;

export interface HealthSources {
  connections: number;
  ingest: IngestCounters;
  storage: Readonly<StorageHealthState>;
}

/** Whether the request brings operator credentials at all; bad ones are refused, absent ones get public liveness. */
function presentsCredentials(req: FastifyRequest): boolean {
  return Boolean(req.headers.authorization) || Boolean(req.cookies?.[SESSION_COOKIE]);
}

/**
 * Liveness for anyone (`{status}`: a load balancer or systemd check needs no token). With operator
 * credentials, also the broker's connection count, the ingest counters (dropped invalid messages,
 * duplicates), the storage state and the event-loop delay since start or the last `?reset=1` — the
 * number the hub's latency targets are judged by. Resetting needs credentials too, or anyone could
 * wipe the measurement a benchmark is taking; and a bearer token, not the session cookie: it is a
 * change made by a GET, which no CSRF check covers, and a page on another port of the same host can
 * make the operator's browser send it with the cookie.
 */
export const healthRoutes: FastifyPluginAsyncTypebox<{ sources: () => HealthSources; requireOperator: RequireOperator }> = async (app, opts) => {
  const delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  app.addHook('onClose', async () => delay.disable());

  app.get('/api/v1/health', { schema: { querystring: HealthQuery, response: { 200: HubHealth } } }, async (req, reply) => {
    const sources = opts.sources();
    const status: HubStatus = sources.storage.errorsSinceSuccess > 0 ? 'degraded' : 'ok';
    if (req.query.reset === '1' || presentsCredentials(req)) await opts.requireOperator(req, reply);
    else return { status };
    if (req.query.reset === '1' && !req.headers.authorization) {
      throw new EdgefleetError('FORBIDDEN', 'resetting the health measurements needs "Authorization: Bearer <token>"; a session cookie may only read them');
    }
    // The histogram records whole timer intervals; the lag is what exceeds the sampling interval.
    const lag = (ns: number) => +Math.max(0, ns / NS_PER_MS - RESOLUTION_MS).toFixed(2);
    const eventLoopDelayMs = { p50: lag(delay.percentile(50)), p99: lag(delay.percentile(99)), max: lag(delay.max) };
    if (req.query.reset === '1') delay.reset();
    return { status, connections: sources.connections, ingest: sources.ingest, storage: sources.storage, eventLoopDelayMs };
  });
};
