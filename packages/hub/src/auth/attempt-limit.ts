import { EdgefleetError } from '@edgefleet/shared';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface AttemptLimitSettings {
  /** Failed attempts allowed per source address within the window. */
  maxFailures: number;
  windowMs: number;
}

/** Per-address failure limit for one unauthenticated route: `check` runs first, `count` as the answer is sent. */
export interface AttemptLimit {
  check(req: FastifyRequest, reply: FastifyReply): Promise<void>;
  count(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown>;
}

/** Answers that mean a guessed secret was wrong; only these count, so bulk enrollment from one address is not slowed. */
const FAILURES = new Set([401, 403]);

export const DEFAULT_ATTEMPT_LIMITS = {
  enroll: { maxFailures: 20, windowMs: 10 * 60_000 },
  session: { maxFailures: 10, windowMs: 10 * 60_000 },
} satisfies Record<string, AttemptLimitSettings>;

/**
 * Registers @fastify/rate-limit (only for routes that ask) and builds failure limits on its
 * manual limiter: the counter is peeked before the route runs and consumed only by a failure, so
 * an address that keeps guessing gets 429 with Retry-After until its window ends.
 */
export async function registerAttemptLimits<K extends string>(app: FastifyInstance, limits: Record<K, AttemptLimitSettings>): Promise<Record<K, AttemptLimit>> {
  if (!app.hasDecorator('createRateLimit')) await app.register(rateLimit, { global: false });
  const built = {} as Record<K, AttemptLimit>;
  for (const name of Object.keys(limits) as K[]) {
    const { maxFailures, windowMs } = limits[name];
    const limiter = app.createRateLimit({ max: maxFailures, timeWindow: windowMs, keyGenerator: (req) => `${name}:${req.ip}` });
    built[name] = {
      async check(req, reply) {
        const state = await limiter(req, { increment: false });
        if (state.isAllowed || state.remaining > 0) return;
        reply.header('retry-after', String(Math.max(1, state.ttlInSeconds)));
        req.log.warn({ ip: req.ip, limit: name }, 'attempt refused: too many failures');
        throw new EdgefleetError(
          'TOO_MANY_REQUESTS',
          `too many failed attempts from ${req.ip} (${maxFailures} within ${Math.round(windowMs / 1000)} s): retry after ${Math.max(1, state.ttlInSeconds)} s`,
        );
      },
      async count(req, reply, payload) {
        if (FAILURES.has(reply.statusCode)) await limiter(req);
        return payload;
      },
    };
  }
  return built;
}
