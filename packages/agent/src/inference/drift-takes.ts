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
}

export function createDriftTakes(log: Logger): DriftTakes {
  const pending = new Map<number, { slot: TakeSlot; resolve: (part: WorkerDriftPart | null) => void }>();
  return {
    request(slot, id) {
      return new Promise((resolve) => {
        pending.set(id, { slot, resolve });
        try {
          slot.worker.postMessage({ type: 'drift-take', id });
        } catch (err) {
          pending.delete(id);
          log.warn({ worker: slot.index, err: (err as Error).message }, 'could not ask an inference worker for its drift window');
          resolve(null);
        }
      });
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
  };
}
