import { randomUUID } from 'node:crypto';
import { EdgefleetError } from '@edgefleet/shared';

// Local applications hold update locks (e.g. during a critical job) through the socket API; the
// deployment runner waits for them before it switches a model, up to the assignment's maxDeferSec.
// Every lock has a TTL, so an application that dies holding one cannot block updates for good.

export interface UpdateLockInfo {
  id: string;
  reason: string;
  /** ms since epoch */
  acquiredAt: number;
  /** ms since epoch; the lock is gone from then on */
  expiresAt: number;
}

export interface UpdateLock {
  /** Takes a lock; ttlSec (> 0) is capped at maxTtlSec. Throws TOO_MANY_REQUESTS when maxLocks are held. */
  acquire(reason: string, ttlSec: number): UpdateLockInfo;
  /** False when no lock with that id is held (never was, released, or expired). */
  release(id: string): boolean;
  /** The locks held now, oldest first; expired ones are dropped. */
  held(): UpdateLockInfo[];
  /** true as soon as no lock is held (at once when none is); false at `deadline` (ms epoch) or on abort. */
  waitUntilFree(deadline: number, signal?: AbortSignal): Promise<boolean>;
}

export const DEFAULT_MAX_LOCK_TTL_SEC = 3600;
/** Far more than any device runs critical jobs at once; past it a client is leaking locks, and each one costs a timer. */
export const DEFAULT_MAX_LOCKS = 1000;

/** setTimeout's longest delay; a longer one fires after 1 ms, so longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface HeldLock {
  info: UpdateLockInfo;
  timer: NodeJS.Timeout;
}

export function createUpdateLock(opts: { now?: () => number; maxTtlSec?: number; maxLocks?: number } = {}): UpdateLock {
  const now = opts.now ?? Date.now;
  const maxTtlSec = opts.maxTtlSec ?? DEFAULT_MAX_LOCK_TTL_SEC;
  const maxLocks = opts.maxLocks ?? DEFAULT_MAX_LOCKS;
  const locks = new Map<string, HeldLock>();
  /** Each waiter's settle(true); called once the last lock is gone. */
  const waiters = new Set<() => void>();

  function drop(id: string): boolean {
    const lock = locks.get(id);
    if (!lock) return false;
    clearTimeout(lock.timer);
    locks.delete(id);
    if (locks.size === 0) for (const free of [...waiters]) free();
    return true;
  }

  function dropExpired(): void {
    const t = now();
    for (const [id, lock] of locks) if (lock.info.expiresAt <= t) drop(id);
  }

  // Unref'd: an expiry is bookkeeping and must not keep the process alive. A timer can fire a
  // millisecond early, so an unexpired lock re-arms rather than being dropped.
  function arm(id: string, expiresAt: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const lock = locks.get(id);
      if (!lock) return;
      if (lock.info.expiresAt <= now()) drop(id);
      else lock.timer = arm(id, lock.info.expiresAt);
    }, Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - now())));
    timer.unref();
    return timer;
  }

  return {
    acquire(reason, ttlSec) {
      if (!Number.isFinite(ttlSec) || ttlSec <= 0) throw new EdgefleetError('BAD_REQUEST', `an update lock's ttlSec must be a positive number of seconds, got ${ttlSec}`);
      dropExpired();
      if (locks.size >= maxLocks) {
        throw new EdgefleetError('TOO_MANY_REQUESTS', `${locks.size} update locks are held already (at most ${maxLocks}); release one before taking another`);
      }
      const acquiredAt = now();
      const info: UpdateLockInfo = { id: randomUUID(), reason, acquiredAt, expiresAt: acquiredAt + Math.round(Math.min(ttlSec, maxTtlSec) * 1000) };
      locks.set(info.id, { info, timer: arm(info.id, info.expiresAt) });
      return { ...info };
    },
    release: (id) => {
      dropExpired();
      return drop(id);
    },
    held() {
      dropExpired();
      return [...locks.values()].map((l) => ({ ...l.info }));
    },
    waitUntilFree(deadline, signal) {
      dropExpired();
      if (locks.size === 0) return Promise.resolve(true);
      if (signal?.aborted || deadline <= now()) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        const settle = (free: boolean) => {
          waiters.delete(onFree);
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(free);
        };
        const onFree = () => settle(true);
        const onAbort = () => settle(false);
        // Not unref'd: whoever awaits this expects an answer by the deadline; settling clears it.
        const armDeadline = () => {
          timer = setTimeout(() => {
            dropExpired();
            if (locks.size === 0) settle(true);
            else if (now() >= deadline) settle(false);
            else armDeadline();
          }, Math.min(MAX_TIMER_MS, Math.max(0, deadline - now())));
        };
        armDeadline();
        waiters.add(onFree);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}
