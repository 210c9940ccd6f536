import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { RecordBody } from '../hub-link/hub-link.js';
import type { ModelTable } from '../inference/types.js';
import { createDriftMetrics } from '../local-api/metrics.js';
import type { Fetch } from '../tls/pinned-ca.js';
import type { DriftConfig } from './drift-config.js';
import { createDriftReporter, type DriftReporter } from './drift-reporter.js';
import { createFieldSampleUploader } from './field-sample-upload.js';

/**
 * The agent's drift reporting as its composition root builds it: the reporter (windows go out through
 * the outbox like telemetry), its counters on /metrics, and the field-sample uploader when opted in
 * (over the downloader's pinned TLS). Undefined when drift is off. Not started: the caller starts the
 * reporter once the hub link exists.
 */
export function createDriftReporting(deps: {
  settings: DriftConfig;
  table: ModelTable;
  publish: (body: RecordBody<'drift'>) => void;
  hub: { apiUrl: string; auth: { username: string; password: string }; fetch: Fetch | undefined };
  metricsRegistry: Registry;
  /** Puts a part on the agent's stop stack. */
  started: (name: string, stop: () => unknown) => void;
  logger: Logger;
}): DriftReporter | undefined {
  const { settings, hub, logger } = deps;
  if (!settings.enabled) return undefined;
  const metrics = createDriftMetrics(deps.metricsRegistry);
  const { fieldSamples } = settings;
  const uploader = fieldSamples && hub.fetch ? createFieldSampleUploader({ apiUrl: hub.apiUrl, auth: hub.auth, fetch: hub.fetch, metrics, logger }) : undefined;
  if (uploader) deps.started('field samples', () => uploader.stop());
  return createDriftReporter({
    table: deps.table,
    publish: deps.publish,
    ...(settings.windowSec === undefined ? {} : { windowSec: settings.windowSec }),
    ...(settings.windowRequests === undefined ? {} : { windowRequests: settings.windowRequests }),
    ...(fieldSamples ? { fieldSamples } : {}),
    ...(uploader ? { uploader } : {}),
    metrics,
    logger,
  });
}
