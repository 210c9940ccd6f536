import type { Logger } from 'pino';
import type { AgentStore, FailureRow } from '../store/agent-store.js';
import { blockKey } from './reconcile.js';

/**
 * The runner's memory of failed assignments: agent.db first, and process memory when agent.db cannot
 * take the write (a full disk fails the download and then the record of the failure alike). Without
 * that fallback a failure nobody could record was never retried; with it the agent keeps retrying
 * until the disk has room, and a restart starts from agent.db again (where the free-space check
 * refuses a download that cannot fit before writing a byte).
 */
export interface FailureLog {
  list(): FailureRow[];
  record(failure: Omit<FailureRow, 'attempts' | 'failedAt'>): void;
  clear(name: string, sha256: string): void;
}

export function createFailureLog(store: AgentStore, logger: Logger, now: () => number): FailureLog {
  const unsaved = new Map<string, FailureRow>();

  function stored(): FailureRow[] {
    try {
      return store.listFailures();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'cannot read deployment failures from agent.db; using the ones in memory');
      return [];
    }
  }

  return {
    list() {
      const rows = new Map(stored().map((f) => [blockKey(f.name, f.sha256), f]));
      for (const [key, f] of unsaved) rows.set(key, f);
      return [...rows.values()];
    },
    record(failure) {
      const key = blockKey(failure.name, failure.sha256);
      try {
        store.recordFailure(failure);
        unsaved.delete(key);
      } catch (err) {
        const before = unsaved.get(key) ?? stored().find((f) => blockKey(f.name, f.sha256) === key);
        unsaved.set(key, { ...failure, attempts: (before?.attempts ?? 0) + 1, failedAt: now() });
        logger.error(
          { model: failure.name, sha256: failure.sha256, code: failure.code, err: (err as Error).message },
          'cannot record the deployment failure in agent.db; keeping it in memory and retrying',
        );
      }
    },
    clear(name, sha256) {
      unsaved.delete(blockKey(name, sha256));
      try {
        store.clearFailure(name, sha256);
      } catch (err) {
        logger.error({ model: name, sha256, err: (err as Error).message }, 'cannot clear a deployment failure in agent.db');
      }
    },
  };
}
