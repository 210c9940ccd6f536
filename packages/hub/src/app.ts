import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { SigningKeyPair } from '@edgefleet/shared';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { ensureAdminToken } from './auth/admin-token.js';
import { DEFAULT_ATTEMPT_LIMITS, registerAttemptLimits } from './auth/attempt-limit.js';
import { createOperatorAuth } from './auth/operator-auth.js';
import { secretMatches } from './auth/secret-digest.js';
import { createSessionRepo } from './auth/session-repo.js';
import { createTokenRepo } from './auth/token-repo.js';
import { tokenRoutes } from './auth/token-routes.js';
import { createTokenService } from './auth/token-service.js';
import { createAedesBroker } from './broker/aedes-broker.js';
import type { Broker } from './broker/broker.js';
import { createIngestService, type IngestCounters, type IngestService } from './broker/ingest-service.js';
import type { HubConfig } from './config.js';
import { eventStreamRoutes } from './dashboard/event-stream-routes.js';
import { sessionRoutes } from './dashboard/session-routes.js';
import { staticRoutes } from './dashboard/static-routes.js';
import { createDeviceRepo } from './devices/device-repo.js';
import { deviceRoutes } from './devices/device-routes.js';
import { createDeviceService } from './devices/device-service.js';
import { createEnrollmentRepo } from './enrollment/enrollment-repo.js';
import { enrollmentRoutes } from './enrollment/enrollment-routes.js';
import { createEnrollmentService } from './enrollment/enrollment-service.js';
import { parseHostHeader } from './enrollment/host-header.js';
import { createHubEventBus, type HubEventBus } from './events/hub-event-bus.js';
import { healthRoutes } from './http/health-routes.js';
import { createHttpServer } from './http/http-server.js';
import { createJobRegistry } from './jobs/job-registry.js';
import { mayDownload } from './models/artifact-access.js';
import { artifactRoutes } from './models/artifact-routes.js';
import { createArtifactStore, type ArtifactStore } from './models/artifact-store.js';
import { createModelRepo } from './models/model-repo.js';
import { modelRoutes } from './models/model-routes.js';
import { createModelService } from './models/model-service.js';
import { loadOrCreateSigningKey } from './models/signing-key.js';
import { createRecordRepo } from './records/record-repo.js';
import { createDesiredRepo } from './rollouts/desired-repo.js';
import { createRolloutRepo } from './rollouts/rollout-repo.js';
import { rolloutRoutes } from './rollouts/rollout-routes.js';
import { createRolloutService, type RolloutService } from './rollouts/rollout-service.js';
import { openDatabase, type Db } from './store/database.js';
import { createStorageHealth, type StorageHealth } from './store/storage-health.js';
import { createSettingsRepo } from './store/settings-repo.js';
import { loadServerTls, type ServerTls } from './tls/server-tls.js';

export type { HubConfig } from './config.js';
export { DEFAULT_CONFIG, loadConfig } from './config.js';

export interface Hub {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** After start: `http(s)://host:port` and `mqtt(s)://host:port` with the actual ports. */
  readonly apiUrl: string;
  readonly brokerUrl: string;
  readonly http: FastifyInstance;
  readonly bus: HubEventBus;
  readonly hubPublicKey: string;
  ingestCounters(): IngestCounters;
  /** Commits queued records now (tests). */
  flushIngest(): void;
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Every SQLite-backed store, opened on one database (and the admin token checked). */
function openStores(database: Db, config: HubConfig, log: Logger) {
  const devices = createDeviceRepo(database);
  devices.markAllOffline();
  return {
    devices,
    records: createRecordRepo(database, config.telemetryHistory),
    tokens: ensureAdminToken(createSettingsRepo(database), config.dataDir, config.adminToken, log.child({ module: 'auth' })),
    sessions: createSessionRepo(database),
    enrollmentTokens: createEnrollmentRepo(database),
    models: createModelRepo(database),
    rollouts: createRolloutRepo(database),
    desired: createDesiredRepo(database),
  };
}
type Stores = ReturnType<typeof openStores>;

interface RouteParts {
  config: HubConfig;
  database: Db;
  stores: Stores;
  bus: HubEventBus;
  broker: Broker;
  ingest: IngestService;
  rollouts: RolloutService;
  signingKey: SigningKeyPair;
  artifacts: ArtifactStore;
  storage: StorageHealth;
  /** HTTPS/MQTTS material when the operator configured TLS. */
  tls: ServerTls | undefined;
  /** The hub's own API URL once listening (fallback for enrollment answers without a Host header). */
  apiUrl: () => string;
  log: Logger;
}

/** Registers every HTTP route on the server (explicitly, in one place). */
async function registerRoutes(app: FastifyInstance, p: RouteParts): Promise<void> {
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
  await app.register(enrollmentRoutes, {
    service: enrollment,
    requireRole,
    limit: limits.enroll,
    endpointsFor: (rawHost, protocol) => {
      const host = rawHost ? parseHostHeader(rawHost) : undefined;
      const hostname = host ? host.hostname : displayHost(config.host);
      return {
        apiUrl: config.publicUrl ?? (host ? `${protocol}://${host.host}` : p.apiUrl()),
        brokerUrl: config.brokerUrl ?? `${p.tls ? 'mqtts' : 'mqtt'}://${hostname}:${broker.port}`,
        hubCaPem: p.tls?.caPem,
      };
    },
  });
  await app.register(deviceRoutes, {
    service: createDeviceService({ devices, records: stores.records, bus, disconnect: (id) => broker.disconnectDevice(id), log: log.child({ module: 'devices' }) }),
    requireRole,
  });
  await app.register(modelRoutes, {
    service: createModelService({ repo: stores.models, artifacts: p.artifacts, privateKeyPem: p.signingKey.privateKeyPem, log: log.child({ module: 'models' }) }),
    requireRole,
    maxModelBytes: config.maxModelBytes,
  });
  await app.register(artifactRoutes, {
    artifacts: p.artifacts,
    verifyDevice: (id, secret) => {
      const creds = devices.credentials(id);
      return creds !== undefined && !creds.revoked && secretMatches(secret, creds.secretSha256);
    },
    mayDownload: (deviceId, sha256) =>
      mayDownload(
        {
          desired: (id) => stores.desired.get(id),
          reportedModels: (id) => devices.get(id)?.models ?? [],
          assignedManifest: (id, model, version) => stores.models.assignedTo(id, model, version)?.manifest.manifest,
        },
        deviceId,
        sha256,
      ),
  });
  await app.register(rolloutRoutes, { service: p.rollouts, requireRole });
}

/** Scheduled housekeeping: expired sessions and week-old expired enrollment tokens. */
function createHubJobs(stores: Stores, log: Logger) {
  return createJobRegistry(
    [
      {
        name: 'purge-expired',
        schedule: '17 * * * *',
        run: () => {
          const now = Date.now();
          stores.sessions.purgeExpired(now);
          stores.enrollmentTokens.purgeExpired(now - 7 * 24 * 3600 * 1000);
        },
      },
    ],
    log.child({ module: 'jobs' }),
  );
}

/** A hub whose parts are all built: `http` has every route and can answer `inject()` before `start()`. */
export interface BuiltHub extends Hub {
  readonly http: FastifyInstance;
}

/**
 * The composition root: opens SQLite and builds every part (broker, ingest, rollouts, the Fastify app
 * with its routes) without listening. start() brings up the broker (desired state republished), then
 * HTTP, then jobs; stop() takes them down in reverse and closes what build opened. Safe twice.
 */
export async function buildHub(config: HubConfig, opts: { log?: Logger; bus?: HubEventBus } = {}): Promise<BuiltHub> {
  const log = opts.log ?? pino({ level: config.logLevel });
  const bus = opts.bus ?? createHubEventBus(log.child({ module: 'events' }));
  const stack: Array<() => Promise<void> | void> = [];
  let apiUrl = '';
  let brokerUrl = '';
  // Before anything is opened: unreadable or mismatched TLS files stop the hub, naming the file.
  const tls = config.tls ? loadServerTls(config.tls) : undefined;
  if (tls) log.info({ certFile: config.tls?.certFile, validTo: tls.validTo, pinnedCa: tls.caPem !== undefined }, 'tls enabled for http and mqtt');

  async function unwind(): Promise<void> {
    while (stack.length > 0) {
      const step = stack.pop()!;
      try {
        await step();
      } catch (err) {
        log.error({ err }, 'error while stopping');
      }
    }
  }

  mkdirSync(config.dataDir, { recursive: true });
  const database = openDatabase(`${config.dataDir}/hub.db`, log.child({ module: 'store' }), { allowEmpty: config.allowEmptyDatabase });
  const storage = createStorageHealth();
  stack.push(() => {
    database.close();
  });
  let app: FastifyInstance;
  let ingest: IngestService;
  let broker: Broker;
  let rollouts: RolloutService;
  let stores: Stores;
  let signingKey: SigningKeyPair;
  try {
    stores = openStores(database, config, log);
    signingKey = loadOrCreateSigningKey(config.dataDir, log.child({ module: 'models' }));
    const artifacts = createArtifactStore(config.dataDir);
    ingest = createIngestService({
      devices: stores.devices,
      // Health reports degraded while record batches fail (a damaged index can break writes and leave reads working).
      records: { ...stores.records, insertBatch: storage.observe(stores.records.insertBatch) },
      bus,
      queueBound: config.ingestQueueBound,
      log: log.child({ module: 'ingest' }),
    });
    const ingestService = ingest;
    stack.push(() => ingestService.stop());
    broker = createAedesBroker({
      host: config.host,
      port: config.mqttPort,
      maxConnections: config.maxConnections,
      maxPacketBytes: config.mqttMaxPacketBytes,
      policy: ingest,
      log: log.child({ module: 'broker' }),
      ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    });
    rollouts = createRolloutService({
      db: database,
      rollouts: stores.rollouts,
      desired: stores.desired,
      devices: stores.devices,
      models: stores.models,
      broker,
      bus,
      log: log.child({ module: 'rollouts' }),
    });
    ingest.setObserver(rollouts.observer);
    app = await createHttpServer(log.child({ module: 'http' }), tls ? { https: { cert: tls.cert, key: tls.key } } : {});
    const server = app;
    stack.push(() => server.close());
    const parts = { config, database, stores, bus, broker, ingest, rollouts, signingKey, artifacts, storage, tls, log };
    await registerRoutes(app, { ...parts, apiUrl: () => apiUrl });
    await app.ready();
  } catch (err) {
    await unwind();
    throw err;
  }

  /** Broker (desired state republished), then HTTP, then jobs. */
  async function start(): Promise<void> {
    await broker.start();
    stack.push(() => broker.stop());
    const republished = await rollouts.republishAll();
    log.info({ devices: republished }, 'desired state republished');
    await app.listen({ host: config.host, port: config.httpPort });
    const httpPort = (app.server.address() as AddressInfo).port;
    apiUrl = `${tls ? 'https' : 'http'}://${displayHost(config.host)}:${httpPort}`;
    brokerUrl = `${tls ? 'mqtts' : 'mqtt'}://${displayHost(config.host)}:${broker.port}`;
    const jobs = createHubJobs(stores, log);
    jobs.start();
    stack.push(() => jobs.stop());
  }

  let starting: Promise<void> | null = null;
  let started = false;
  return {
    async start() {
      if (started) throw new Error('hub is already started');
      started = true;
      starting = start().catch(async (err: unknown) => {
        await unwind();
        throw err;
      });
      try {
        await starting;
      } finally {
        starting = null;
      }
    },
    async stop() {
      // stop() waits for a start in progress, so that nothing it brings up afterwards is leaked.
      if (starting) await starting.catch(() => undefined);
      await unwind();
    },
    get apiUrl() {
      return apiUrl;
    },
    get brokerUrl() {
      return brokerUrl;
    },
    http: app,
    bus,
    hubPublicKey: signingKey.publicKeyPem,
    ingestCounters: () => ingest.counters,
    flushIngest: () => ingest.queue.flush(),
  };
}

/** buildHub() and start() in one call of start(), for callers that do not need the app before listening. */
export function createHub(config: HubConfig, opts: { log?: Logger } = {}): Hub {
  const log = opts.log ?? pino({ level: config.logLevel });
  const bus = createHubEventBus(log.child({ module: 'events' }));
  let built: BuiltHub | null = null;
  let starting: Promise<void> | null = null;
  const need = (): BuiltHub => {
    if (!built) throw new Error('hub is not started');
    return built;
  };
  return {
    start() {
      starting = (async () => {
        built = await buildHub(config, { log, bus });
        await built.start();
      })();
      return starting;
    },
    async stop() {
      if (starting) await starting.catch(() => undefined);
      await built?.stop();
    },
    get apiUrl() {
      return built?.apiUrl ?? '';
    },
    get brokerUrl() {
      return built?.brokerUrl ?? '';
    },
    get http() {
      return need().http;
    },
    bus,
    get hubPublicKey() {
      return built?.hubPublicKey ?? '';
    },
    ingestCounters: () => need().ingestCounters(),
    flushIngest: () => built?.flushIngest(),
  };
}
