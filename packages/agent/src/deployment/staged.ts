import type { Logger } from 'pino';
import type { LoadedModel } from '../inference/types.js';
import { closeQuietly } from './step-context.js';

export interface StagedCandidate {
  model: LoadedModel;
  /** Set once a switch of this candidate was deferred by an update lock: a later try keeps this deadline. */
  deferUntil?: number;
  /** false: staged by a switch a newer document interrupted, so no `ready` went out for it yet. Absent: reported. */
  readyReported?: boolean;
}

/**
 * Candidates prepared for a switch the hub has not ordered yet (a maintenance window), or whose
 * deferred switch a newer document interrupted: loaded, verified, checked, and not served. At most
 * one per model name, in memory only (after a restart the file on disk is loaded again).
 */
export interface StagedCandidates {
  /** Stages `model`, closing a different candidate of the same name. */
  put(candidate: StagedCandidate): Promise<void>;
  /** Takes the staged candidate of that name if it is that digest (the caller switches to it or closes it). */
  take(name: string, sha256: string): StagedCandidate | undefined;
  list(): StagedCandidate[];
  /** Closes the staged candidate of that name, if any. */
  discard(name: string): Promise<void>;
  stop(): Promise<void>;
}

export function createStagedCandidates(logger: Logger): StagedCandidates {
  const staged = new Map<string, StagedCandidate>();

  async function discard(name: string): Promise<void> {
    const c = staged.get(name);
    staged.delete(name);
    if (c) {
      logger.info({ model: name, version: c.model.version }, 'staged candidate closed');
      await closeQuietly({ logger }, c.model);
    }
  }

  return {
    async put(candidate) {
      const before = staged.get(candidate.model.name);
      if (before && before.model !== candidate.model) await discard(candidate.model.name);
      staged.set(candidate.model.name, candidate);
    },
    take(name, sha256) {
      const c = staged.get(name);
      if (!c || c.model.sha256 !== sha256) return undefined;
      staged.delete(name);
      return c;
    },
    list: () => [...staged.values()],
    discard,
    async stop() {
      await Promise.all([...staged.keys()].map(discard));
    },
  };
}
