import { closeSync, constants, fstatSync, openSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgefleetError } from '@edgefleet/shared';
import { notifySystemd } from '@edgefleet/shared/systemd';
import { lockStateDir } from './store/state-lock.js';

/**
 * Restart back-off that systemd 249/252 cannot do (RestartSteps= is 254+): the unit restarts every
 * RestartSec=5 s and never gives up, and the agent itself waits longer after each consecutive start
 * that failed before running 60 s healthy. A field device nobody can reach keeps trying, slowly.
 */

export const RESTARTS_FILE = 'restarts.json';
/** First wait after a failed start; EDGEFLEET_RESTART_BACKOFF_BASE_MS shrinks it for tests. */
const DEFAULT_BASE_MS = 5_000;
/** The cap is this many base delays: 5 min with the default base. */
const CAP_IN_BASES = 60;
/** A run that stayed up this long after READY was healthy: the next failure starts the count anew. */
const HEALTHY_RUN_MS = 60_000;
/** The start timeout is extended to the rest of the wait plus this, and re-extended this often. */
const EXTEND_MARGIN_MS = 30_000;
const EXTEND_REFRESH_MS = 20_000;

/** What the last run left behind. `starting`: it never reached 60 s healthy (or is still running). */
export interface RestartHistory {
  /** Consecutive failed starts before the last one. */
  failedStarts: number;
  /** When the last run started (ms since the epoch), after its own wait. */
  lastStartAt: number;
  state: 'starting' | 'healthy' | 'stopped';
}

export interface StartPlan {
  /** Failed starts in a row, counting the previous run if it failed. */
  failedStarts: number;
  /** How long to wait before starting; 0 for none. */
  delayMs: number;
  /** The record to write once the wait is over. */
  record: RestartHistory;
}

/** Failed starts counted at most: far past the cap, and a tampered huge count cannot overflow. */
const MAX_COUNTED_FAILURES = 1_000_000;

/** base × 2^(n-1), capped at 60 × base; 0 when nothing failed. */
export function delayFor(failedStarts: number, baseMs = DEFAULT_BASE_MS): number {
  if (failedStarts <= 0) return 0;
  const capMs = baseMs * CAP_IN_BASES;
  // Past 2^6 the cap has long been reached; the exponent is bounded so huge counts stay finite.
  return Math.min(capMs, baseMs * 2 ** Math.min(failedStarts - 1, 30));
}

/**
 * The pure decision at `run` start. Missing history, a clean stop or a healthy last run: no wait.
 * A last run still `starting` died before 60 s healthy: one more failed start. The delay depends on
 * the count only, never on timestamps, so a clock jump (a Pi without RTC syncing NTP) cannot make a
 * wait longer than the cap.
 */
export function nextDelay(history: RestartHistory | undefined, now: number, baseMs = DEFAULT_BASE_MS): StartPlan {
  // Bounded so the count stays a safe integer (parseHistory would drop it, restarting the back-off at 0).
  const failedStarts = history?.state === 'starting' ? Math.min(history.failedStarts + 1, MAX_COUNTED_FAILURES) : 0;
  return { failedStarts, delayMs: delayFor(failedStarts, baseMs), record: { failedStarts, lastStartAt: now, state: 'starting' } };
}

/** `text` as a history, or undefined when it is not one (a corrupt file counts as no history). */
export function parseHistory(text: string): RestartHistory | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { failedStarts, lastStartAt, state } = value as Record<string, unknown>;
  if (typeof failedStarts !== 'number' || !Number.isSafeInteger(failedStarts) || failedStarts < 0) return undefined;
  if (typeof lastStartAt !== 'number' || !Number.isFinite(lastStartAt)) return undefined;
  if (state !== 'starting' && state !== 'healthy' && state !== 'stopped') return undefined;
  return { failedStarts, lastStartAt, state };
}

/** EDGEFLEET_RESTART_BACKOFF_BASE_MS (a test knob) or the 5 s default. */
function backoffBaseMs(env: NodeJS.ProcessEnv): number {
  const raw = env.EDGEFLEET_RESTART_BACKOFF_BASE_MS;
  if (raw === undefined || raw === '') return DEFAULT_BASE_MS;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new EdgefleetError('BAD_REQUEST', `EDGEFLEET_RESTART_BACKOFF_BASE_MS is "${raw}": expected a whole number of milliseconds, at least 1`);
  }
  return value;
}

// ---- I/O: the file in the state directory, the wait, the timers ----

/** A record is one short line; anything longer is not ours. */
const HISTORY_MAX_BYTES = 4096;

/**
 * The record, or undefined when it is missing or not one: a symlink (not followed), anything but a
 * regular file (a FIFO or /dev/zero would block or never end), or a file over HISTORY_MAX_BYTES.
 */
export function readHistory(stateDir: string): RestartHistory | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(join(stateDir, RESTARTS_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size > HISTORY_MAX_BYTES) return undefined;
    const buf = Buffer.alloc(HISTORY_MAX_BYTES);
    const length = readSync(fd, buf, 0, HISTORY_MAX_BYTES, 0);
    return parseHistory(buf.toString('utf8', 0, length));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Written whole (tmp + rename) so a power cut leaves the old record or the new one, never half. The
 * tmp file is made afresh (exclusive create): a symlink planted in its place is removed, not written through.
 */
function writeHistory(stateDir: string, record: RestartHistory): void {
  const path = join(stateDir, RESTARTS_FILE);
  const tmp = `${path}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}

/** Whether another live agent holds the state directory: then its record is not ours to count or touch. */
function heldByAnother(stateDir: string, pid: number): boolean {
  try {
    lockStateDir(stateDir, pid).release();
    return false;
  } catch (err) {
    // A missing or unwritable directory is for agent.start() to report, with its own message.
    return err instanceof EdgefleetError && err.code === 'CONFLICT';
  }
}

export interface RestartBackoff {
  /** Waits out the back-off (if the last run failed), then records this start. */
  wait(): Promise<void>;
  /** True while wait() is waiting: a SIGTERM then exits at once. */
  readonly waiting: boolean;
  /** After READY: HEALTHY_RUN_MS later the run counts as healthy and the count resets. */
  ready(): void;
  /** The clean-stop mark: the next start does not wait. */
  stopped(): void;
}

export interface RestartBackoffOptions {
  stateDir: string;
  logger: Logger;
  pid: number;
  env: NodeJS.ProcessEnv;
  now?: () => number;
  healthyAfterMs?: number;
}

export function createRestartBackoff(opts: RestartBackoffOptions): RestartBackoff {
  const { stateDir, logger, pid, env } = opts;
  const now = opts.now ?? Date.now;
  let record: RestartHistory | undefined;
  let waiting = false;
  let healthyTimer: NodeJS.Timeout | undefined;

  // Never keeps the agent from starting: a state directory it cannot write only loses the back-off.
  function save(next: RestartHistory): void {
    try {
      writeHistory(stateDir, next);
      record = next;
    } catch (err) {
      logger.warn({ err: (err as Error).message, path: join(stateDir, RESTARTS_FILE) }, 'cannot write the restart record; restarts are not spaced');
    }
  }

  return {
    get waiting() {
      return waiting;
    },
    async wait() {
      // Throws on a bad EDGEFLEET_RESTART_BACKOFF_BASE_MS: main.ts reports it as a failed start.
      const baseMs = backoffBaseMs(env);
      if (heldByAnother(stateDir, pid)) return;
      const plan = nextDelay(readHistory(stateDir), now(), baseMs);
      if (plan.delayMs > 0) {
        const seconds = Math.ceil(plan.delayMs / 1000);
        logger.warn({ failedStarts: plan.failedStarts, delayMs: plan.delayMs }, `restart back-off: waiting ${seconds} s after ${plan.failedStarts} failed starts`);
        notifySystemd(logger, `STATUS=restart back-off: waiting ${seconds} s after ${plan.failedStarts} failed starts`, env);
        // Type=notify's start timeout (90 s by default) would kill a 5 min wait: extend it past the wait.
        // Sent again every 20 s: systemd 249/252 may drop a message whose sender (a short-lived
        // systemd-notify) exited before it was read, and a killed wait would repeat forever at the cap.
        const waitEnds = now() + plan.delayMs;
        const extend = () => notifySystemd(logger, `EXTEND_TIMEOUT_USEC=${(Math.max(0, waitEnds - now()) + EXTEND_MARGIN_MS) * 1000}`, env);
        extend();
        const refresh = setInterval(extend, EXTEND_REFRESH_MS);
        waiting = true;
        await new Promise((resolve) => setTimeout(resolve, plan.delayMs));
        waiting = false;
        clearInterval(refresh);
      }
      save({ ...plan.record, lastStartAt: now() });
    },
    ready() {
      if (!record) return;
      healthyTimer = setTimeout(() => save({ failedStarts: 0, lastStartAt: record!.lastStartAt, state: 'healthy' }), opts.healthyAfterMs ?? HEALTHY_RUN_MS);
      healthyTimer.unref();
    },
    stopped() {
      clearTimeout(healthyTimer);
      // A stop during the wait is clean too: `systemctl restart` after a fix starts at once.
      if (!record && !waiting) return;
      save({ failedStarts: 0, lastStartAt: record?.lastStartAt ?? now(), state: 'stopped' });
    },
  };
}
