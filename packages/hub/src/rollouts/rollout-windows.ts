import type { MaintenanceWindow } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { DeviceAssignments, Effects } from './device-assignments.js';
import { onWindowClose, switchesOnWindowOpen, UNSWITCHED_STATES } from './device-transitions.js';
import type { WindowClock } from './maintenance-window.js';
import type { RolloutRepo } from './rollout-repo.js';
import type { RolloutRecord } from './rollout-rows.js';
import { LIVE } from './rollout-runner.js';

/** The window's end (ms) when it opened at `opened`. */
const endOf = (window: MaintenanceWindow, opened: number) => opened + window.durationMinutes * 60_000;

/**
 * The maintenance windows of rollouts: devices told to prepare only switch while a window is open.
 * node-cron (through the WindowClock) says when a window opens; the end is stored on the rollout
 * (windowOpenUntil) and the service's tick closes it, so a restarted hub finds an open window open.
 */
export function createRolloutWindows(deps: {
  rollouts: RolloutRepo;
  assignments: DeviceAssignments;
  clock: WindowClock;
  transactDetached: (fields: Record<string, string>, msg: string, fn: (eff: Effects) => void) => void;
  advance: (eff: Effects, rolloutId: string, now: number) => void;
  log: Logger;
}) {
  const { rollouts, assignments, clock, log } = deps;

  /**
   * Tells the prepared devices of a running rollout to switch (the window is open). A paused or
   * halted rollout switches nobody: the operator stopped it; resuming inside the window switches them.
   */
  function switchPrepared(eff: Effects, rec: RolloutRecord, now: number, at: string): void {
    if (rec.core.state !== 'running') return;
    const deadline = now + rec.core.settings.deviceTimeoutSec * 1000;
    for (const row of rollouts.rowsIn(rec.core.id, UNSWITCHED_STATES)) {
      if (switchesOnWindowOpen(row)) assignments.setActivate(eff, rec, row, true, deadline, at);
    }
  }

  /** The maintenance window opened: prepared devices may switch until `until`. */
  function open(rolloutId: string, now: number, until: number): void {
    deps.transactDetached({ rolloutId }, 'opening the maintenance window failed', (eff) => {
      const rec = rollouts.record(rolloutId);
      if (!rec || !LIVE.includes(rec.core.state)) return;
      const at = new Date(now).toISOString();
      const core = { ...rec.core, windowOpenUntil: until };
      rollouts.saveRollout(core, at);
      eff.touched.set(rolloutId, {});
      switchPrepared(eff, { ...rec, core }, now, at);
      log.info({ rolloutId, state: core.state, until: new Date(until).toISOString() }, 'maintenance window open');
      deps.advance(eff, rolloutId, now);
    });
  }

  function watch(rec: RolloutRecord): void {
    const window = rec.core.settings.maintenanceWindow;
    if (!window || !LIVE.includes(rec.core.state)) return;
    clock.watch(rec.core.id, window, (at) => open(rec.core.id, at, endOf(window, at)));
  }

  /**
   * The maintenance window closed: devices of a live rollout that were told to switch and have not
   * are told to prepare only again, so none switches outside the window (they switch when it next
   * opens). In the caller's transaction; the rewritten documents are published after it commits.
   */
  function close(eff: Effects, rec: RolloutRecord, now: number, at: string): void {
    const core = { ...rec.core, windowOpenUntil: null };
    rollouts.saveRollout(core, at);
    eff.touched.set(core.id, {});
    if (!LIVE.includes(core.state)) return;
    let held = 0;
    for (const row of rollouts.rowsIn(core.id, UNSWITCHED_STATES)) {
      const change = onWindowClose(row);
      if (!change) continue;
      // The deadline stays: a row that is (or becomes) ready is not timed while it waits for the window.
      assignments.setActivate(eff, { ...rec, core }, row, false, row.deadline, at);
      if (change.state !== row.state) assignments.save(eff, { ...row, activate: false }, change, at);
      held++;
    }
    log.info({ rolloutId: core.id, devices: held, closedAt: new Date(now).toISOString() }, 'maintenance window closed');
  }

  return {
    switchPrepared,
    watch,
    /** The end of the window open at `now` (it opened less than its duration ago), or null: a rollout created then may switch at once. */
    openUntil(window: MaintenanceWindow | undefined | null, now: number): number | null {
      const opened = window ? clock.openedWithin(window, now) : null;
      return opened === null ? null : endOf(window!, opened);
    },
    /** Closes the rollout's window if its end has passed. In the caller's transaction. */
    closeIfEnded(eff: Effects, rec: RolloutRecord, now: number, at: string): void {
      if (rec.core.windowOpenUntil !== null && now >= rec.core.windowOpenUntil) close(eff, rec, now, at);
    },
    /** At hub start: watches the rollout's window again, and opens it if it opened while the hub was down. */
    resume(rec: RolloutRecord, now: number): void {
      watch(rec);
      const window = rec.core.settings.maintenanceWindow;
      if (window && rec.core.windowOpenUntil === null && LIVE.includes(rec.core.state)) {
        const opened = clock.openedWithin(window, now);
        if (opened !== null) open(rec.core.id, now, endOf(window, opened));
      }
    },
  };
}
export type RolloutWindows = ReturnType<typeof createRolloutWindows>;
