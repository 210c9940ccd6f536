import type { DesiredMessage } from '@edgefleet/shared';
import type { FailureRow } from '../store/agent-store.js';
import { createFailureLog } from './failure-log.js';
import { createHealthGuard } from './health-guard.js';
import { activates, blockKey, reconcile, type InstallStep, type LoadedCandidate, type Step } from './reconcile.js';
import { blockedAssignments } from './retry-policy.js';
import { createStagedCandidates } from './staged.js';
import { createStandbyKeeper, DEFAULT_STANDBY_KEEP_MS, type StandbyPolicy } from './standby.js';
import type { ShadowRunner, StepContext, StepFailure, SwitchLock } from './step-context.js';
import { runInstall, runRemove } from './steps.js';
import { DEFAULT_MAX_DEFER_SEC } from './switch-over.js';

/** What every step needs (the runner adds its own signals and slots), plus the runner's own settings. */
export interface DeploymentRunnerOptions
  extends Omit<StepContext, 'signal' | 'waitSignal' | 'staged' | 'standby' | 'watchSwitch' | 'onSwitch' | 'now' | 'maxDeferSec' | 'updateLock' | 'shadow'> {
  /** Called after a desired document was applied or models changed, so `reported` goes out. */
  onStateChange: () => void;
  /** Delay before retrying an assignment that failed for a retryable reason (network, hub down). */
  retryDelayMs?: (attempts: number) => number;
  now?: () => number;
  /** The local update lock a switch waits for (none: switches never wait). */
  updateLock?: SwitchLock;
  /** Runs shadow phases (none: assignments asking for one switch without it). */
  shadow?: ShadowRunner;
  /** Longest deferral when an assignment sets none, seconds (default 600). */
  maxDeferSec?: number;
  /** Keeping the replaced version loaded: policy (default auto), time (default 10 min), free memory (default: none, so auto keeps nothing). */
  standby?: { policy?: StandbyPolicy; keepMs?: number; freeMemory?: () => number };
}

export interface DeploymentRunner {
  start(): void;
  stop(): Promise<void>;
  /** Queues a desired document; a newer one arriving mid-run replaces any queued one (coalesced). */
  submit(desired: DesiredMessage): void;
  /** Resolves when nothing is running or queued (tests, shutdown). Health windows run on. */
  idle(): Promise<void>;
  /** True while a document is being applied or queued (download, verify, load, shadow, switch) or a health window is open. */
  busy(): boolean;
}

const defaultRetryDelay = (attempts: number): number => Math.min(10 * 60_000, 10_000 * 2 ** Math.max(0, attempts - 1));

/** The install step running now, and what would make a newer document interrupt its waits. */
interface InProgress {
  name: string;
  sha256: string;
  activate: boolean;
  supersede: AbortController;
}

/** A newer document interrupts a wait when it no longer wants that digest, or no longer wants it switched to now. */
function supersedes(desired: DesiredMessage, step: InProgress): boolean {
  const assignment = desired.models.find((m) => m.manifest.manifest.model === step.name);
  if (!assignment || assignment.manifest.manifest.sha256 !== step.sha256) return true;
  return step.activate && !activates(assignment);
}

/** What is remembered of a failed install: enough to tell the same assignment again from a retry. */
function failureRecord(desired: DesiredMessage, step: InstallStep, failure: StepFailure): Omit<FailureRow, 'attempts' | 'failedAt'> {
  const { rolloutId } = step.assignment;
  const { code, message, retryable } = failure;
  return { name: step.name, sha256: step.sha256, version: step.version, desiredVersion: desired.version, ...(rolloutId ? { rolloutId } : {}), code, message, retryable };
}

/**
 * Applies desired documents one at a time, in arrival order with coalescing. A failure is remembered
 * (in the store) with the desired version and rollout it happened under: the same document is not
 * retried in a loop; a retryable failure is tried again after a growing delay; a non-retryable one
 * is tried again by a new rollout, or by a new desired version when it was outside a rollout (retry-policy.ts).
 * Long waits (shadow, update lock) end when a newer document no longer wants what they wait for.
 * Health windows outlive the step that switched and switch back on their own.
 */
export function createDeploymentRunner(opts: DeploymentRunnerOptions): DeploymentRunner {
  const log = opts.logger.child({ module: 'deployment' });
  const now = opts.now ?? Date.now;
  const retryDelay = opts.retryDelayMs ?? defaultRetryDelay;
  let pending: DesiredMessage | undefined;
  let latest: DesiredMessage | undefined;
  let running: Promise<void> | undefined;
  let started = false;
  let abort = new AbortController();
  let inProgress: InProgress | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  const idleWaiters: Array<() => void> = [];
  const failures = createFailureLog(opts.store, log, now);
  const staged = createStagedCandidates(log);
  const standby = createStandbyKeeper({
    table: opts.table,
    settings: { policy: opts.standby?.policy ?? 'auto', keepMs: opts.standby?.keepMs ?? DEFAULT_STANDBY_KEEP_MS, freeMemory: opts.standby?.freeMemory ?? (() => 0) },
    logger: log,
  });

  const health = createHealthGuard({
    rollback: { stateDir: opts.stateDir, store: opts.store, table: opts.table, runtime: opts.runtime, standby, logger: log },
    signal: () => abort.signal,
    recordFailure: (failure) => failures.record(failure),
    publishEvent: (event) => publishEvent(event),
    onStateChange: () => opts.onStateChange(),
  });

  // An event that cannot go out (its outbox on a full disk) must not stop the deployment that emits it.
  const publishEvent: StepContext['publishEvent'] = (event) => {
    try {
      opts.publishEvent(event);
    } catch (err) {
      log.error({ model: event.model, phase: event.phase, err: (err as Error).message }, 'could not publish a deployment event');
    }
  };

  const ctx = (desired: DesiredMessage, waitSignal: AbortSignal): StepContext => ({
    stateDir: opts.stateDir,
    apiUrl: opts.apiUrl,
    auth: opts.auth,
    hubPublicKey: opts.hubPublicKey,
    store: opts.store,
    runtime: opts.runtime,
    table: opts.table,
    download: opts.download,
    publishEvent,
    logger: log,
    signal: abort.signal,
    waitSignal,
    ...(opts.diskReserveBytes === undefined ? {} : { diskReserveBytes: opts.diskReserveBytes }),
    staged,
    standby,
    ...(opts.updateLock ? { updateLock: opts.updateLock } : {}),
    ...(opts.shadow ? { shadow: opts.shadow } : {}),
    maxDeferSec: opts.maxDeferSec ?? DEFAULT_MAX_DEFER_SEC,
    // Recorded under the document in force when it fails (it may be newer than the one that switched).
    watchSwitch: (switched) => health.watch(switched, () => latest?.version ?? desired.version),
    // Only now: until the switch, an install that fails or is interrupted leaves the active version
    // serving, and its health window still speaks for it.
    onSwitch: (name) => health.stop(name),
    now,
  });

  function dueAt(f: FailureRow): number {
    return f.failedAt + retryDelay(f.attempts);
  }

  function blockedFor(desired: DesiredMessage): Set<string> {
    return blockedAssignments(failures.list(), desired, now(), dueAt);
  }

  function scheduleRetry(desired: DesiredMessage): void {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = undefined;
    const retryable = failures.list().filter((f) => f.retryable && f.desiredVersion === desired.version);
    const names = new Set(desired.models.map((m) => `${m.manifest.manifest.model}@${m.manifest.manifest.sha256}`));
    const due = retryable.filter((f) => names.has(blockKey(f.name, f.sha256))).map(dueAt);
    if (due.length === 0) return;
    const wait = Math.max(0, Math.min(...due) - now());
    log.info({ retryInMs: wait, desiredVersion: desired.version }, 'retry of failed assignments scheduled');
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (!pending && latest) submit(latest);
    }, wait);
    retryTimer.unref();
  }

  /** Failures of assignments the hub no longer asks for are history, not policy. */
  function forgetStaleFailures(desired: DesiredMessage): void {
    const wanted = new Set(desired.models.map((m) => blockKey(m.manifest.manifest.model, m.manifest.manifest.sha256)));
    for (const f of failures.list()) {
      if (!wanted.has(blockKey(f.name, f.sha256))) failures.clear(f.name, f.sha256);
    }
  }

  /** Whatever happens while applying, a failure that is due again gets its retry. */
  async function apply(desired: DesiredMessage): Promise<void> {
    try {
      await applySteps(desired);
    } finally {
      if (!abort.signal.aborted) scheduleRetry(desired);
    }
  }

  function loadedCandidates(): LoadedCandidate[] {
    return [
      ...staged.list().map(({ model: m, readyReported }) => ({ name: m.name, version: m.version, sha256: m.sha256, role: 'staged' as const, ...(readyReported === false ? { readyReported } : {}) })),
      ...opts.table.listStandby().map((m) => ({ name: m.name, version: m.version, sha256: m.sha256, role: 'standby' as const })),
    ];
  }

  /** Runs one step; `interrupted` when the document's application must stop here (stopping, or a newer document took over). */
  async function runStep(desired: DesiredMessage, step: Step): Promise<{ interrupted: boolean; changed: boolean }> {
    if (step.kind === 'discard') {
      await staged.discard(step.name);
      return { interrupted: false, changed: false };
    }
    if (step.kind === 'remove') {
      // Once the model is gone an earlier switch's health window has nothing left to speak for.
      health.stop(step.name);
      await runRemove(ctx(desired, abort.signal), step);
      return { interrupted: false, changed: true };
    }
    const current: InProgress = { name: step.name, sha256: step.sha256, activate: step.activate, supersede: new AbortController() };
    inProgress = current;
    try {
      const failure = await runInstall(ctx(desired, AbortSignal.any([abort.signal, current.supersede.signal])), step);
      if (failure?.aborted) return { interrupted: true, changed: false };
      if (failure) failures.record(failureRecord(desired, step, failure));
      else failures.clear(step.name, step.sha256);
      return { interrupted: false, changed: true };
    } finally {
      inProgress = undefined;
    }
  }

  async function applySteps(desired: DesiredMessage): Promise<void> {
    forgetStaleFailures(desired);
    const plan = reconcile({ current: opts.store.listModels(), desired, blocked: blockedFor(desired), loaded: loadedCandidates() });
    if (plan.duplicates.length > 0) log.warn({ duplicates: plan.duplicates, desiredVersion: desired.version }, 'desired lists a model twice; the first assignment wins');
    if (plan.skipped.length > 0) log.info({ skipped: plan.skipped, desiredVersion: desired.version }, 'not retrying assignments that failed under this desired version or rollout');
    log.info({ desiredVersion: desired.version, steps: plan.steps.map((s) => `${s.kind} ${s.name}@${s.version}`) }, 'reconciling');
    let changed = false;
    for (const step of plan.steps) {
      if (abort.signal.aborted) return;
      const done = await runStep(desired, step);
      if (done.interrupted) return;
      changed ||= done.changed;
    }
    const versionChanged = opts.store.desiredVersion() !== desired.version;
    try {
      opts.store.setDesiredVersion(desired.version);
    } catch (err) {
      // Applied all the same; the hub's retained document brings the version back after a restart.
      log.error({ desiredVersion: desired.version, err: (err as Error).message }, 'cannot store the desired version in agent.db');
    }
    if (changed || versionChanged) opts.onStateChange();
  }

  async function loop(): Promise<void> {
    while (pending && started) {
      const desired = pending;
      pending = undefined;
      try {
        await apply(desired);
      } catch (err) {
        log.error({ err, desiredVersion: desired.version }, 'applying desired state failed');
      }
    }
  }

  function kick(): void {
    if (running || !started) return;
    running = loop().finally(() => {
      running = undefined;
      if (pending && started) kick();
      else idleWaiters.splice(0).forEach((resolve) => resolve());
    });
  }

  function submit(desired: DesiredMessage): void {
    if (pending && pending.version > desired.version) {
      log.warn({ queued: pending.version, received: desired.version }, 'ignoring a desired document older than the queued one');
      return;
    }
    pending = desired;
    latest = desired;
    if (inProgress && supersedes(desired, inProgress)) {
      log.info({ model: inProgress.name, desiredVersion: desired.version }, 'a newer desired document ends the current wait');
      inProgress.supersede.abort();
    }
    kick();
  }

  return {
    start() {
      if (started) return;
      started = true;
      abort = new AbortController();
      kick();
    },
    async stop() {
      if (!started) return;
      started = false;
      pending = undefined;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = undefined;
      abort.abort();
      health.stopAll();
      await running;
      await staged.stop();
      await standby.stop();
    },
    submit,
    busy: () => running !== undefined || pending !== undefined || health.watching(),
    idle() {
      if (!running && !pending) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
