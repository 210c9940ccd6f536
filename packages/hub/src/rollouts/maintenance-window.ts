import cron, { type ScheduledTask } from 'node-cron';
import { EdgefleetError, type MaintenanceWindow } from '@edgefleet/shared';
import type { Logger } from 'pino';

/** Refuses an expression node-cron cannot run, naming it (checked when a rollout is created). */
export function assertWindowCron(window: MaintenanceWindow): void {
  if (!cron.validate(window.cron)) {
    throw new EdgefleetError('BAD_REQUEST', `maintenanceWindow.cron "${window.cron}" is not a valid cron expression (e.g. "0 2 * * *")`);
  }
}

/**
 * The opening times of maintenance windows, one node-cron task per running rollout that has one.
 * Only this module talks to node-cron for rollouts; the window's end is stored by the service, so a
 * hub restarted inside an open window finds it open (`openedWithin`).
 */
export function createWindowClock(log: Logger) {
  const tasks = new Map<string, ScheduledTask>();
  return {
    watch(rolloutId: string, window: MaintenanceWindow, onOpen: (at: number) => void): void {
      if (tasks.has(rolloutId)) return;
      const task = cron.createTask(window.cron, () => {
        try {
          onOpen(Date.now());
        } catch (err) {
          log.error({ err, rolloutId }, 'opening the maintenance window failed');
        }
      }, { name: `rollout-window-${rolloutId}` });
      tasks.set(rolloutId, task);
      void task.start();
    },
    unwatch(rolloutId: string): void {
      const task = tasks.get(rolloutId);
      tasks.delete(rolloutId);
      void task?.destroy();
    },
    /** The latest opening (ms, at a minute's start) within the window's duration before `now`, if any. */
    openedWithin(window: MaintenanceWindow, now: number): number | null {
      const probe = cron.createTask(window.cron, () => undefined);
      try {
        const minute = Math.floor(now / 60_000) * 60_000;
        for (let t = minute; t > now - window.durationMinutes * 60_000; t -= 60_000) {
          if (probe.match(new Date(t))) return t;
        }
        return null;
      } finally {
        void probe.destroy();
      }
    },
    async stop(): Promise<void> {
      const all = [...tasks.values()];
      tasks.clear();
      await Promise.all(all.map((t) => t.destroy()));
    },
  };
}
export type WindowClock = ReturnType<typeof createWindowClock>;
