import type { Logger } from 'pino';
import type { PlanRepo } from '../plans/plan-repo.js';
import type { PlanService } from '../plans/plan-service.js';
import type { Stores } from '../store/open-stores.js';
import { createJobRegistry } from './job-registry.js';

const WEEK_MS = 7 * 24 * 3600 * 1000;

/**
 * Scheduled housekeeping: expired sessions, week-old expired enrollment tokens and benchmark
 * requests; and every 10 minutes a re-plan of every device for each model's latest version, which
 * catches whatever no event announced (a device that reported while the hub was busy, a plan stored
 * before the planner's rules changed).
 */
export function createHubJobs(
  stores: Stores,
  log: Logger,
  planning: { plans: Pick<PlanService, 'replan'>; repo: Pick<PlanRepo, 'purgeRequests'> },
  drift?: { schedule: string; evaluate: () => Promise<unknown> },
) {
  return createJobRegistry(
    [
      {
        name: 'purge-expired',
        schedule: '17 * * * *',
        run: () => {
          const now = Date.now();
          stores.sessions.purgeExpired(now);
          stores.enrollmentTokens.purgeExpired(now - WEEK_MS);
          planning.repo.purgeRequests(now - WEEK_MS);
        },
      },
      {
        name: 'replan',
        schedule: '*/10 * * * *',
        run: async () => {
          await planning.plans.replan();
        },
      },
      // Drift evaluation windows, alerts and pruning of evaluated drift records (drift-service.ts).
      ...(drift ? [{ name: 'drift-evaluate', schedule: drift.schedule, run: async () => void (await drift.evaluate()) }] : []),
    ],
    log.child({ module: 'jobs' }),
  );
}
