import type { Logger } from 'pino';
import { ensureAdminToken } from '../auth/admin-token.js';
import { createSessionRepo } from '../auth/session-repo.js';
import type { HubConfig } from '../config.js';
import { createDeviceRepo } from '../devices/device-repo.js';
import { createEnrollmentRepo } from '../enrollment/enrollment-repo.js';
import { createModelRepo } from '../models/model-repo.js';
import { createVariantRepo } from '../models/variant-repo.js';
import { createRecordRepo } from '../records/record-repo.js';
import { createDesiredRepo } from '../rollouts/desired-repo.js';
import { createRolloutRepo } from '../rollouts/rollout-repo.js';
import type { Db } from './database.js';
import { createSettingsRepo } from './settings-repo.js';

/** Every SQLite-backed store, opened on one database (and the admin token checked). */
export function openStores(database: Db, config: HubConfig, log: Logger) {
  const devices = createDeviceRepo(database);
  // No device is connected to a hub that has not started its broker yet, whatever the last run left.
  devices.markAllOffline();
  return {
    devices,
    records: createRecordRepo(database, config.telemetryHistory),
    tokens: ensureAdminToken(createSettingsRepo(database), config.dataDir, config.adminToken, log.child({ module: 'auth' })),
    sessions: createSessionRepo(database),
    enrollmentTokens: createEnrollmentRepo(database),
    models: createModelRepo(database),
    variants: createVariantRepo(database),
    rollouts: createRolloutRepo(database),
    desired: createDesiredRepo(database),
  };
}

export type Stores = ReturnType<typeof openStores>;
