import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';

export interface Job {
  name: string;
  /** node-cron expression */
  schedule: string;
  run: () => void | Promise<void>;
}

/** node-cron jobs, created stopped (node-cron 4's createTask does not start) and started with the hub. */
export function createJobRegistry(jobs: readonly Job[], log: Logger) {
  let tasks: ScheduledTask[] = [];
  return {
    start() {
      tasks = jobs.map((job) =>
        cron.createTask(job.schedule, async () => {
          try {
            await job.run();
          } catch (err) {
            log.error({ err, job: job.name }, 'job failed');
          }
        }),
      );
      for (const t of tasks) void t.start();
    },
    async stop() {
      const running = tasks;
      tasks = [];
      await Promise.all(running.map((t) => t.destroy()));
    },
  };
}
