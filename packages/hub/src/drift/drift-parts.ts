import type { SigningKeyPair } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { HubConfig } from '../config.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { ArtifactStore } from '../models/artifact-store.js';
import type { Db } from '../store/database.js';
import type { Stores } from '../store/open-stores.js';
import { createAlertWebhook } from './alert-webhook.js';
import { createBaselineRepo } from './baseline-repo.js';
import { createBaselineService, type BaselineService } from './baseline-service.js';
import type { DriftBaselines } from './drift-baselines.js';
import { createDriftService, type DriftService } from './drift-service.js';

// The hub's drift parts as the composition root (app.ts) builds them; each goes on the stop stack
// as soon as it exists.

interface Stack {
  push(stop: () => unknown): void;
}

/** Baselines from reference or calibration data, built in a child process; stopping cancels a running build. */
export function buildBaselines(
  config: HubConfig,
  deps: { database: Db; stores: Stores; artifacts: ArtifactStore; signingKey: SigningKeyPair; stack: Stack; log: Logger },
): BaselineService {
  const baselines = createBaselineService({
    repo: createBaselineRepo(deps.database),
    models: deps.stores.models,
    variants: deps.stores.variants,
    artifacts: deps.artifacts,
    privateKeyPem: deps.signingKey.privateKeyPem,
    heapMb: config.variantBuildHeapMb,
    log: deps.log.child({ module: 'baselines' }),
  });
  deps.stack.push(() => baselines.stop());
  return baselines;
}

/** Drift evaluation (run by the 'drift-evaluate' job) with its optional alert webhook; stopping waits for a running pass. */
export function buildDrift(config: HubConfig, ctx: { database: Db; bus: HubEventBus; stack: Stack; log: Logger }, driftBaselines: DriftBaselines): DriftService {
  const log = ctx.log.child({ module: 'drift' });
  const webhook = config.driftWebhookUrl ? createAlertWebhook({ url: config.driftWebhookUrl, secret: config.driftWebhookSecret, log }) : undefined;
  if (webhook) ctx.stack.push(() => webhook.stop());
  const drift = createDriftService({
    db: ctx.database,
    baselines: driftBaselines,
    bus: ctx.bus,
    log,
    minSamples: config.driftMinSamples,
    recordRetentionHours: config.driftRecordRetentionHours,
    alertStaleHours: config.driftAlertStaleHours,
    webhook,
  });
  ctx.stack.push(() => drift.idle());
  return drift;
}
