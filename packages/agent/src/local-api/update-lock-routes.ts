import type { FastifyInstance } from 'fastify';
import { EdgefleetError } from '@edgefleet/shared';
import { DEFAULT_MAX_LOCK_TTL_SEC as MAX_LOCK_TTL_SEC, type UpdateLock } from './update-lock.js';

// The Open Inference Protocol has no notion of update locks, so they live under an edgefleet
// extension path, listed in GET /v2 `extensions` like Triton's own extensions.

export const UPDATE_LOCK_EXTENSION = 'edgefleet_update_locks';
export const UPDATE_LOCK_PATH = '/v2/edgefleet/update-locks';

export const MAX_LOCK_REASON_CHARS = 256;
export const DEFAULT_LOCK_TTL_SEC = 300;

export interface LockRequest {
  reason: string;
  ttlSec: number;
}

function badRequest(message: string): never {
  throw new EdgefleetError('BAD_REQUEST', message);
}

/** The POST body: `{reason?: string (≤256 chars), ttlSec?: integer 1..3600}`; an empty body takes the defaults. Pure. */
export function parseLockRequest(body: Buffer | undefined): LockRequest {
  if (!body || body.byteLength === 0) return { reason: '', ttlSec: DEFAULT_LOCK_TTL_SEC };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    badRequest(`update lock request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    badRequest('update lock request body must be a JSON object {"reason"?: string, "ttlSec"?: integer}');
  }
  const fields = parsed as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => k !== 'reason' && k !== 'ttlSec');
  if (unknown.length > 0) badRequest(`unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')} in update lock request; expected "reason" and "ttlSec"`);
  const { reason = '', ttlSec = DEFAULT_LOCK_TTL_SEC } = fields;
  if (typeof reason !== 'string') badRequest(`reason must be a string, got ${JSON.stringify(reason)}`);
  if (reason.length > MAX_LOCK_REASON_CHARS) badRequest(`reason must be at most ${MAX_LOCK_REASON_CHARS} characters, got ${reason.length}`);
  if (typeof ttlSec !== 'number' || !Number.isInteger(ttlSec) || ttlSec < 1 || ttlSec > MAX_LOCK_TTL_SEC) {
    badRequest(`ttlSec must be an integer from 1 to ${MAX_LOCK_TTL_SEC}, got ${JSON.stringify(ttlSec)}`);
  }
  return { reason, ttlSec };
}

/** POST/GET `/v2/edgefleet/update-locks`, DELETE `/v2/edgefleet/update-locks/{id}`: thin routes over the lock registry. */
export function registerUpdateLockRoutes(app: FastifyInstance, lock: UpdateLock): void {
  app.post(UPDATE_LOCK_PATH, async (req, reply) => {
    const { reason, ttlSec } = parseLockRequest(Buffer.isBuffer(req.body) ? req.body : undefined);
    return reply.code(201).send(lock.acquire(reason, ttlSec));
  });
  app.get(UPDATE_LOCK_PATH, async () => ({ locks: lock.held() }));
  app.delete<{ Params: { id: string } }>(`${UPDATE_LOCK_PATH}/:id`, async (req) => {
    if (!lock.release(req.params.id)) throw new EdgefleetError('NOT_FOUND', `no update lock "${req.params.id}" is held (released, expired, or never taken)`);
    return { released: true };
  });
}
