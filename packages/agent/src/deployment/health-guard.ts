import type { FailureRow } from '../store/agent-store.js';
import { watchHealth } from './health-window.js';
import { switchBack, type LocalRollbackContext } from './local-rollback.js';
import { boundedText, type DeploymentEventBody, type Switched } from './step-context.js';

export interface HealthGuardOptions {
  rollback: LocalRollbackContext;
  /** The runner's stop signal (it is renewed at each start). */
  signal: () => AbortSignal;
  recordFailure: (failure: Omit<FailureRow, 'attempts' | 'failedAt'>) => void;
  publishEvent: (event: DeploymentEventBody) => void;
  /** Publishes `reported` after a switch back. */
  onStateChange: () => void;
}

/**
 * The health windows of recent switches, at most one per model name. A window outlives the step
 * that switched (the runner goes on with newer documents meanwhile); a newer step on that model
 * ends it. On a verdict against the new version: switch back, remember the failure, report
 * `rolled-back` (UNHEALTHY) and the new reported state.
 */
export interface HealthGuard {
  /** Watches `switched`; `desiredVersion` is read when the verdict comes, to record the failure under. */
  watch(switched: Switched, desiredVersion: () => number): void;
  stop(name: string): void;
  stopAll(): void;
  /** True while any health window is open. */
  watching(): boolean;
}

export function createHealthGuard(opts: HealthGuardOptions): HealthGuard {
  const log = opts.rollback.logger;
  const windows = new Map<string, AbortController>();

  function stop(name: string): void {
    windows.get(name)?.abort();
    windows.delete(name);
  }

  function end(name: string, window: AbortController): void {
    if (windows.get(name) === window) windows.delete(name);
  }

  async function rollBack(switched: Switched, window: AbortController, reason: string, desiredVersion: number): Promise<void> {
    const { name, version, sha256, previous } = switched;
    const message = boundedText(`health window: ${reason}; switched back to ${previous.version}`);
    log.warn({ model: name, version, keptVersion: previous.version }, message);
    const back = await switchBack(opts.rollback, switched, window.signal);
    end(name, window);
    if (!back) return;
    // Not retryable under this document nor this rollout: neither a reconnect nor another model's
    // rollout moving the desired version may reinstall it in a loop.
    opts.recordFailure({ name, sha256, version, desiredVersion, ...(switched.rolloutId ? { rolloutId: switched.rolloutId } : {}), code: 'UNHEALTHY', message, retryable: false });
    opts.publishEvent({
      type: 'deployment',
      model: name,
      version,
      sha256,
      ...(switched.rolloutId ? { rolloutId: switched.rolloutId } : {}),
      phase: 'rolled-back',
      code: 'UNHEALTHY',
      message,
      keptVersion: previous.version,
    });
    opts.onStateChange();
  }

  return {
    watching: () => windows.size > 0,
    watch(switched, desiredVersion) {
      const { name, version } = switched;
      stop(name);
      const window = new AbortController();
      windows.set(name, window);
      watchHealth({
        table: opts.rollback.table,
        name,
        version,
        spec: switched.spec,
        baseline: switched.baseline,
        signal: AbortSignal.any([window.signal, opts.signal()]),
        onPassed: (observed) => {
          end(name, window);
          log.info({ model: name, version, ...observed }, 'health window passed');
        },
        onUnhealthy: (reason, observed) => {
          log.debug({ model: name, version, ...observed }, 'health window verdict against the new version');
          rollBack(switched, window, reason, desiredVersion()).catch((err: Error) => log.error({ model: name, version, err: err.message }, 'switching back after the health window failed'));
        },
      });
    },
    stop,
    stopAll() {
      for (const name of [...windows.keys()]) stop(name);
    },
  };
}
