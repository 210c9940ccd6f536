import type { SigningKeyPair } from '@edgefleet/shared';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { DEFAULT_ATTEMPT_LIMITS, registerAttemptLimits } from '../auth/attempt-limit.js';
import { createOperatorAuth } from '../auth/operator-auth.js';
import { secretMatches } from '../auth/secret-digest.js';
import { createTokenRepo } from '../auth/token-repo.js';
import { tokenRoutes } from '../auth/token-routes.js';
import { createTokenService } from '../auth/token-service.js';
import type { Broker } from '../broker/broker.js';
import type { IngestService } from '../broker/ingest-service.js';
import type { HubConfig } from '../config.js';
import { eventStreamRoutes } from '../dashboard/event-stream-routes.js';
import { sessionRoutes } from '../dashboard/session-routes.js';
import { staticRoutes } from '../dashboard/static-routes.js';
import { deviceRoutes } from '../devices/device-routes.js';
import { createDeviceService } from '../devices/device-service.js';
import { driftRoutes } from '../drift/drift-routes.js';
import { baselineRoutes } from '../drift/baseline-routes.js';
import type { BaselineService } from '../drift/baseline-service.js';
import type { DriftService } from '../drift/drift-service.js';
import { enrollmentRoutes, type EnrollmentRoutesOptions } from '../enrollment/enrollment-routes.js';
import { createEnrollmentService } from '../enrollment/enrollment-service.js';
import { parseHostHeader } from '../enrollment/host-header.js';
import { createFieldSampleRateLimit } from '../drift/field-sample-rate.js';
import { createFieldSampleRepo } from '../drift/field-sample-repo.js';
import { fieldSampleRoutes, type FieldSampleRouteOptions } from '../drift/field-sample-routes.js';
import { createFieldSampleService } from '../drift/field-sample-service.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import { createHubMetrics } from '../metrics/hub-metrics.js';
import { createMetricsRepo } from '../metrics/metrics-repo.js';
import { metricsRoutes } from '../metrics/metrics-routes.js';
import { mayDownload } from '../models/artifact-access.js';
import { artifactRoutes, type ArtifactRouteOptions } from '../models/artifact-routes.js';
import type { ArtifactStore } from '../models/artifact-store.js';
import { modelRoutes } from '../models/model-routes.js';
import { createModelService } from '../models/model-service.js';
import { variantRoutes } from '../models/variant-routes.js';
import type { VariantService } from '../models/variant-service.js';
import type { BenchmarkService } from '../plans/benchmark-service.js';
import { planRoutes } from '../plans/plan-routes.js';
import type { PlanService } from '../plans/plan-service.js';
import { rolloutRoutes } from '../rollouts/rollout-routes.js';
import type { RolloutService } from '../rollouts/rollout-service.js';
import type { Db } from '../store/database.js';
import type { Stores } from '../store/open-stores.js';
import type { StorageHealth } from '../store/storage-health.js';
import type { ServerTls } from '../tls/server-tls.js';
import { displayHost } from './display-host.js';
import { healthRoutes } from './health-routes.js';

export interface RouteParts {
  config: HubConfig;
  database: Db;
  stores: Stores;
  bus: HubEventBus;
  broker: Broker;
  ingest: IngestService;
  rollouts: RolloutService;
  signingKey: SigningKeyPair;
  artifacts: ArtifactStore;
  /** Variant builds, calibration data and the variants of each version. */
  variantService: VariantService;
  /** Device plans and device benchmarks. */
  plans: PlanService;
  benchmarks: BenchmarkService;
  /** Drift evaluations and alerts. */
  drift: DriftService;
  /** Drift baselines of model versions and their reference data. */
  baselines: BaselineService;
  storage: StorageHealth;
  /** HTTPS/MQTTS material when the operator configured TLS. */
  tls: ServerTls | undefined;
  /** The hub's own API URL once listening (fallback for enrollment answers without a Host header). */
  apiUrl: () => string;
  log: Logger;
}

/** Registers every HTTP route on the server (explicitly, in one place). */
export async function registerRoutes(app: FastifyInstance, p: RouteParts): Promise<void> {
  const { config, stores, bus, broker, ingest, log } = p;
  const { devices, sessions } = stores;
  const operatorTokens = createTokenService({ admin: stores.tokens, repo: createTokenRepo(p.database), sessions, log: log.child({ module: 'auth' }) });
  const limits = await registerAttemptLimits(app, DEFAULT_ATTEMPT_LIMITS);
  const { requireRole, requireOperator, stillAuthenticated } = createOperatorAuth(operatorTokens, sessions, limits.bearer);
  const enrollment = createEnrollmentService({
    db: p.database,
    tokens: stores.enrollmentTokens,
    devices,
    bus,
    hubPublicKey: p.signingKey.publicKeyPem,
    log: log.child({ module: 'enrollment' }),
  });
  await app.register(healthRoutes, {
    sources: () => ({ connections: broker.connections, ingest: ingest.counters, storage: p.storage.state }),
    requireOperator,
  });
  await app.register(sessionRoutes, { tokens: operatorTokens, sessions, limit: limits.session });
  await app.register(tokenRoutes, { tokens: operatorTokens, requireRole });
  await app.register(eventStreamRoutes, { bus, requireOperator, stillAuthenticated, deviceById: (id) => devices.get(id) });
  await app.register(staticRoutes, {});
  await app.register(enrollmentRoutes, { service: enrollment, requireRole, limit: limits.enroll, endpointsFor: enrollmentEndpoints(p) });
  await app.register(deviceRoutes, {
    service: createDeviceService({ devices, records: stores.records, bus, disconnect: (id) => broker.disconnectDevice(id), log: log.child({ module: 'devices' }) }),
    requireRole,
  });
  await app.register(modelRoutes, {
    service: createModelService({
      repo: stores.models,
      variants: stores.variants,
      artifacts: p.artifacts,
      privateKeyPem: p.signingKey.privateKeyPem,
      log: log.child({ module: 'models' }),
      afterUpload: (name, version) => p.variantService.versionUploaded(name, version),
    }),
    requireRole,
    maxModelBytes: config.maxModelBytes,
  });
  await app.register(variantRoutes, { service: p.variantService, requireRole, maxCalibrationBytes: config.maxCalibrationBytes });
  await app.register(baselineRoutes, { service: p.baselines, requireRole, maxReferenceBytes: config.maxCalibrationBytes });
  await app.register(artifactRoutes, artifactRouteOptions(p));
  await app.register(rolloutRoutes, { service: p.rollouts, requireRole });
  await app.register(planRoutes, { plans: p.plans, benchmarks: p.benchmarks, requireRole });
  await app.register(driftRoutes, { drift: p.drift, requireRole });
  await app.register(fieldSampleRoutes, fieldSampleRouteOptions(p, requireRole));
  const metricsRepo = createMetricsRepo(p.database);
  const metrics = createHubMetrics({
    ...metricsRepo,
    ingest: () => ingest.counters,
    ingestQueueLength: () => ingest.queue.length,
    brokerConnections: () => broker.connections,
    driftRejections: () => ({ ...ingest.counters.driftRejected }),
  });
  await app.register(metricsRoutes, { metrics, requireOperator });
}

/** Configured URLs win; otherwise the URLs the enrolling client reached the hub by. */
function enrollmentEndpoints(p: RouteParts): EnrollmentRoutesOptions['endpointsFor'] {
  const { config, broker, tls } = p;
  return (rawHost, protocol) => {
    const host = rawHost ? parseHostHeader(rawHost) : undefined;
    const hostname = host ? host.hostname : displayHost(config.host);
    return {
      apiUrl: config.publicUrl ?? (host ? `${protocol}://${host.host}` : p.apiUrl()),
      brokerUrl: config.brokerUrl ?? `${tls ? 'mqtts' : 'mqtt'}://${hostname}:${broker.port}`,
      hubCaPem: tls?.caPem,
    };
  };
}

function artifactRouteOptions(p: RouteParts): ArtifactRouteOptions {
  const { devices, desired, rollouts } = p.stores;
  return {
    artifacts: p.artifacts,
    verifyDevice: (id, secret) => {
      const creds = devices.credentials(id);
      return creds !== undefined && !creds.revoked && secretMatches(secret, creds.secretSha256);
    },
    mayDownload: (deviceId, sha256) =>
      mayDownload(
        {
          desired: (id) => desired.get(id),
          reportedModels: (id) => devices.get(id)?.models ?? [],
          // Exactly the variant a rollout gave this device, from that rollout's own record: the reported digest alone opens nothing.
          assignedManifest: (id, model, version, sha256) => rollouts.manifestGivenTo(id, { model, version, sha256 })?.manifest,
          benchmarkArtifacts: (id) => p.benchmarks.artifactsFor(id),
        },
        deviceId,
        sha256,
      ),
  };
}

function fieldSampleRouteOptions(p: RouteParts, requireRole: FieldSampleRouteOptions['requireRole']): FieldSampleRouteOptions {
  const { config, stores } = p;
  return {
    service: createFieldSampleService({
      repo: createFieldSampleRepo(p.database),
      artifacts: p.artifacts,
      inputsOf: (model, version) => stores.models.get(model, version)?.inputs,
      // Every other holder of the shared artifact store: model versions, variants and calibration data, baselines and references (with manifests given out).
      isReferenced: (sha256) => stores.models.isReferenced(sha256) || stores.variants.isReferenced(sha256) || p.baselines.isReferenced(sha256),
      reportedModels: (id) => stores.devices.get(id)?.models ?? [],
      rate: createFieldSampleRateLimit(config.fieldSamplesPerHour),
      keepPerVersion: config.fieldSamplesPerVersion,
    }),
    requireRole,
    // The same device check as artifact downloads: enrolled, not revoked, secret matches.
    verifyDevice: artifactRouteOptions(p).verifyDevice,
    maxFieldSampleBytes: config.maxFieldSampleBytes,
  };
}
