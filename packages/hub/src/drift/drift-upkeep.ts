import type { DriftWebhookBody } from '@edgefleet/shared';
import type { HubEventMap } from '../events/hub-event-bus.js';
import type { Db } from '../store/database.js';
import { staleAlertMessage } from './alert-rules.js';
import type { DriftRepo } from './drift-repo.js';

/** What a committed change tells the bus and the webhook. */
export type DriftNotice = { event: HubEventMap['drift']; webhook?: DriftWebhookBody };

/** Where evaluation's cursor stood after a pass, and when (hub clock). */
export interface PassMark {
  at: number;
  cursor: number;
}

const HOUR_MS = 3600_000;
/** Evaluated records deleted per transaction when pruning (the pass yields between batches). */
const PRUNE_BATCH = 1000;

/**
 * Pure. Records below the cursor of the newest pass at least `retentionMs` old arrived before it, so
 * they are that old by arrival whatever their devices' clocks say. Answers that cursor (null: no pass
 * is old enough yet) and the marks still worth keeping (that one and the newer ones, oldest first).
 */
export function pruneBound(marks: readonly PassMark[], now: number, retentionMs: number): { below: number | null; keep: PassMark[] } {
  let chosen = -1;
  for (let i = 0; i < marks.length; i++) if (marks[i]!.at <= now - retentionMs) chosen = i;
  return chosen < 0 ? { below: null, keep: [...marks] } : { below: marks[chosen]!.cursor, keep: marks.slice(chosen) };
}

/**
 * Upkeep after each evaluation pass: evaluated records pruned by arrival, and active alerts cleared
 * once their scope has had no evaluation window for `alertStaleHours`. The pass marks live in memory:
 * after a restart pruning resumes once the first pass since is `recordRetentionHours` old.
 */
export function createDriftUpkeep(deps: { db: Db; repo: DriftRepo; now: () => number; recordRetentionHours: number; alertStaleHours: number }) {
  const { repo, now } = deps;
  let marks: PassMark[] = [];

  const clearStale = deps.db.transaction((notices: DriftNotice[]): number => {
    const at = now();
    const stale = repo.latestRows.staleAlerts(at - deps.alertStaleHours * HOUR_MS);
    for (const s of stale) {
      const alert = repo.clearAlert(s.id, at, staleAlertMessage(s.model, s.version, s.deviceId, deps.alertStaleHours, s.lastEvaluatedAt));
      notices.push({ event: { model: s.model, version: s.version, deviceId: s.deviceId, score: alert.score, over: false, alert: 'cleared' }, webhook: { type: 'drift.alert.cleared', alert } });
    }
    return stale.length;
  });

  return {
    /** After a pass: where the cursor stands now. */
    notePass(cursor: number): void {
      const last = marks.at(-1);
      if (last !== undefined && last.cursor === cursor) return; // nothing arrived: the older mark bounds the same records
      marks.push({ at: now(), cursor });
    },
    /** Records that arrived more than the retention ago, a batch per transaction, yielding between batches. */
    async pruneRecords(): Promise<number> {
      const { below, keep } = pruneBound(marks, now(), deps.recordRetentionHours * HOUR_MS);
      marks = keep;
      if (below === null) return 0;
      let pruned = 0;
      for (;;) {
        const n = repo.pruneRecords(below, PRUNE_BATCH);
        pruned += n;
        if (n < PRUNE_BATCH) return pruned;
        await new Promise((resolve) => setImmediate(resolve));
      }
    },
    /** Clears stale alerts in one transaction; answers how many, with their notices in `notices`. */
    clearStaleAlerts(notices: DriftNotice[]): number {
      return clearStale(notices);
    },
  };
}
