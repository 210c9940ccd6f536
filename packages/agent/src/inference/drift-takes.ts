import type { Worker } from 'node:worker_threads';
import type { DriftSummary } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { WireFieldSample, WorkerReply } from './worker-protocol.js';

// The pool's side of `drift-take`: requests posted to workers and the answers they wait for. A take
// is not a job (it neither counts as in flight nor delays draining), so it lives beside the jobs.

/** One worker's drift window, as it answered a take. */
export interface WorkerDriftPart {
  worker: number;
  summary: DriftSummary | null;
  samples: WireFieldSample[];
}

interface TakeSlot {
  index: number;
  worker: Worker;
}

export interface DriftTakes {
  /** Asks the slot's worker for its window; null when it cannot be asked or exits before answering. */
  request(slot: TakeSlot, id: number): Promise<WorkerDriftPart | null>;
  /** Handles a `drift` reply; false for any other message. */
  onReply(slot: TakeSlot, msg: WorkerReply): boolean;
  /** The slot's worker exited or retired: its pending takes resolve null (what it saw is lost). */
  settle(slot: TakeSlot): void;
  /**
   * Resolves once every take asked so far is answered, or after `ms`: closing waits for it, so a take
   * posted just before an unload (the version a switch replaced) still gets that version's last window.
   */
  answered(ms: number): Promise<void>;
}

export function createDriftTakes(log: Logger): DriftTakes {
  const pending = new Map<number, { slot: TakeSlot; resolve: (part: WorkerDriftPart | null) => void }>();
  const asked = new Set<Promise<WorkerDriftPart | null>>();
  return {
    request(slot, id) {
      const take = new Promise<WorkerDriftPart | null>((resolve) => {
        pending.set(id, { slot, resolve });
        try {
          slot.worker.postMessage({ type: 'drift-take', id });
        } catch (err) {
          pending.delete(id);
          log.warn({ worker: slot.index, err: (err as Error).message }, 'could not ask an inference worker for its drift window');
          resolve(null);
        }
      });
      asked.add(take);
      void take.then(() => asked.delete(take));
      return take;
    },
    onReply(slot, msg) {
      if (msg.type !== 'drift') return false;
      const take = pending.get(msg.id);
      if (!take) return true;
      pending.delete(msg.id);
      if (msg.error) log.warn({ worker: slot.index, err: msg.error }, 'an inference worker could not take its drift window');
      take.resolve({ worker: slot.index, summary: msg.summary, samples: msg.samples });
      return true;
    },
    settle(slot) {
      for (const [id, take] of pending) {
        if (take.slot !== slot) continue;
        pending.delete(id);
        take.resolve(null);
      }
    },
    async answered(ms) {
      if (asked.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      await Promise.race([Promise.all([...asked]), deadline]);
      clearTimeout(timer);
    },
  };
}
