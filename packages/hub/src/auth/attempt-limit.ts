import { EdgefleetError } from '@edgefleet/shared';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { addressKey } from './address-key.js';

export interface AttemptLimitSettings {
  /** Failed attempts allowed per source address within the window. */
  maxFailures: number;
  windowMs: number;
}

/**
 * Per-address failure limit for one kind of unauthenticated attempt. `check` runs before the attempt
 * and `settle` after it; `count` is `settle` as an onSend hook, judging by the answer's status.
 */
export interface AttemptLimit {
  check(req: FastifyRequest, reply: FastifyReply): Promise<void>;
  settle(req: FastifyRequest, failed: boolean): Promise<void>;
  count(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown>;
}

/** Answers that mean a guessed secret was wrong; only these count, so bulk enrollment from one address is not slowed. */
const FAILURES = new Set([401, 403]);

export const DEFAULT_ATTEMPT_LIMITS = {
  enroll: { maxFailures: 20, windowMs: 10 * 60_000 },
  session: { maxFailures: 10, windowMs: 10 * 60_000 },
  /** Bad `Authorization: Bearer` tokens on API routes: the same guess as a bad login, by another door. */
  bearer: { maxFailures: 100, windowMs: 10 * 60_000 },
} satisfies Record<string, AttemptLimitSettings>;

/**
 * Registers @fastify/rate-limit (only for routes that ask) and builds failure limits on its
 * manual limiter: the counter is peeked before the attempt and consumed only by a failure, so an
 * address that keeps guessing gets 429 with Retry-After until its window ends.
 *
 * Attempts still running count against the limit while they run: otherwise a burst sent at once
 * (or with its bodies held back) would all pass the peek before the first failure was counted. An
 * attempt that finds no room waits for a running one to settle rather than being refused, so bulk
 * enrollment from one address is slowed only as far as it has to be.
 */
export async function registerAttemptLimits<K extends string>(app: FastifyInstance, limits: Record<K, AttemptLimitSettings>): Promise<Record<K, AttemptLimit>> {
  if (!app.hasDecorator('createRateLimit')) await app.register(rateLimit, { global: false });
  const built = {} as Record<K, AttemptLimit>;
  for (const name of Object.keys(limits) as K[]) built[name] = attemptLimit(app, name, limits[name]);
  return built;
}

function attemptLimit(app: FastifyInstance, name: string, { maxFailures, windowMs }: AttemptLimitSettings): AttemptLimit {
  // Each limiter has its own store, so the key is the address alone.
  const limiter = app.createRateLimit({ max: maxFailures, timeWindow: windowMs, keyGenerator: (req) => addressKey(req.ip) });
  const running = new Map<string, { count: number; wake: Array<() => void> }>();
  const holding = new WeakSet<FastifyRequest>();

  function release(req: FastifyRequest): void {
    if (!holding.delete(req)) return;
    const key = addressKey(req.ip);
    const entry = running.get(key)!;
    entry.count--;
    if (entry.count === 0) running.delete(key);
    // Every waiter checks again; those that find no room wait for the next release.
    for (const wake of entry.wake.splice(0)) wake();
  }

  function refuse(req: FastifyRequest, reply: FastifyReply, ttlInSeconds: number): never {
    const retryAfter = Math.max(1, ttlInSeconds);
    reply.header('retry-after', String(retryAfter));
    req.log.warn({ ip: req.ip, limit: name }, 'attempt refused: too many failures');
    throw new EdgefleetError(
      'TOO_MANY_REQUESTS',
      `too many failed attempts from ${addressKey(req.ip)} (${maxFailures} within ${Math.round(windowMs / 1000)} s): retry after ${retryAfter} s`,
    );
  }

  const limit: AttemptLimit = {
    async check(req, reply) {
      for (;;) {
        const state = await limiter(req, { increment: false });
        if (state.isAllowed) return;
        const failures = maxFailures - state.remaining;
        if (failures >= maxFailures) refuse(req, reply, state.ttlInSeconds);
        const key = addressKey(req.ip);
        const entry = running.get(key) ?? { count: 0, wake: [] };
        running.set(key, entry);
        if (failures + entry.count < maxFailures) {
          entry.count++;
          holding.add(req);
          // A request that never gets an answer (its client went away mid-body) must not hold its place forever.
          reply.raw.once('close', () => release(req));
          return;
        }
        await new Promise<void>((resolve) => entry.wake.push(resolve));
      }
    },
    async settle(req, failed) {
      if (failed) await limiter(req);
      release(req);
    },
    async count(req, reply, payload) {
      await limit.settle(req, FAILURES.has(reply.statusCode));
      return payload;
    },
  };
  return limit;
}
