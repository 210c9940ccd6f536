import type { Logger } from 'pino';
import type { Stores } from '../store/open-stores.js';
import { createJobRegistry } from './job-registry.js';

const WEEK_MS = 7 * 24 * 3600 * 1000;

/** Scheduled housekeeping: expired sessions and week-old expired enrollment tokens. */
export function createHubJobs(stores: Stores, log: Logger) {
  return createJobRegistry(
    [
      {
        name: 'purge-expired',
        schedule: '17 * * * *',
        run: () => {
          const now = Date.now();
          stores.sessions.purgeExpired(now);
          stores.enrollmentTokens.purgeExpired(now - WEEK_MS);
        },
      },
    ],
    log.child({ module: 'jobs' }),
  );
}
