import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { EdgefleetError, type SigningKeyPair } from '@edgefleet/shared';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { ensureAdminToken } from './auth/admin-token.js';
import { createOperatorAuth } from './auth/operator-auth.js';
import { secretMatches } from './auth/secret-digest.js';
import { createSessionRepo } from './auth/session-repo.js';
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
import { createHubEventBus, type HubEventBus } from './events/hub-event-bus.js';
import { healthRoutes } from './http/health-routes.js';
import { createHttpServer } from './http/http-server.js';
import { createJobRegistry } from './jobs/job-registry.js';
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
import { createSettingsRepo } from './store/settings-repo.js';

export type { HubConfig } from './config.js';
export { DEFAULT_CONFIG, loadConfig } from './config.js';

export interface Hub {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** After start: `http://host:port` and `mqtt://host:port` with the actual ports. */
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

/** The hostname in a request's Host header; a malformed one is the client's error (400), not ours. */
function hostnameOf(host: string): string {
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    throw new EdgefleetError('BAD_REQUEST', `Host header "${host}" is not a valid host[:port]: expected e.g. "hub.example:8080"`);
  }
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
  /** The hub's own API URL once listening (fallback for enrollment answers without a Host header). */
  apiUrl: () => string;
  log: Logger;
}

/** Registers every HTTP route on the server (explicitly, in one place). */
async function registerRoutes(app: FastifyInstance, p: RouteParts): Promise<void> {
  const { config, stores, bus, broker, ingest, log } = p;
  const { devices, tokens, sessions } = stores;
  const requireOperator = createOperatorAuth(tokens, sessions);
  const enrollment = createEnrollmentService({
    db: p.database,
    tokens: stores.enrollmentTokens,
    devices,
    bus,
    hubPublicKey: p.signingKey.publicKeyPem,
    log: log.child({ module: 'enrollment' }),
  });
  await app.register(healthRoutes, { status: () => ({ connections: broker.connections, ingest: ingest.counters }) });
  await app.register(sessionRoutes, { tokens, sessions });
  await app.register(eventStreamRoutes, { bus, requireOperator, deviceById: (id) => devices.get(id) });
  await app.register(staticRoutes, {});
  await app.register(enrollmentRoutes, {
    service: enrollment,
    requireOperator,
    endpointsFor: (host, protocol) => {
      const hostname = host ? hostnameOf(host) : displayHost(config.host);
      return {
        apiUrl: config.publicUrl ?? (host ? `${protocol}://${host}` : p.apiUrl()),
        brokerUrl: config.brokerUrl ?? `mqtt://${hostname}:${broker.port}`,
      };
    },
  });
  await app.register(deviceRoutes, {
    service: createDeviceService({ devices, records: stores.records, bus, disconnect: (id) => broker.disconnectDevice(id), log: log.child({ module: 'devices' }) }),
    requireOperator,
  });
  await app.register(modelRoutes, {
    service: createModelService({ repo: stores.models, artifacts: p.artifacts, privateKeyPem: p.signingKey.privateKeyPem, log: log.child({ module: 'models' }) }),
    requireOperator,
    maxModelBytes: config.maxModelBytes,
  });
  await app.register(artifactRoutes, {
    artifacts: p.artifacts,
    verifyDevice: (id, secret) => {
      const creds = devices.credentials(id);
      return creds !== undefined && !creds.revoked && secretMatches(secret, creds.secretSha256);
    },
  });
  await app.register(rolloutRoutes, { service: p.rollouts, requireOperator });
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
  const bus = opts.bus ?? createHubEventBus();
  const stack: Array<() => Promise<void> | void> = [];
  let apiUrl = '';
  let brokerUrl = '';

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
  const database = openDatabase(`${config.dataDir}/hub.db`, log.child({ module: 'store' }));
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
      records: stores.records,
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
      policy: ingest,
      log: log.child({ module: 'broker' }),
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
    app = await createHttpServer(log.child({ module: 'http' }));
    const server = app;
    stack.push(() => server.close());
    const parts = { config, database, stores, bus, broker, ingest, rollouts, signingKey, artifacts, log };
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
    apiUrl = `http://${displayHost(config.host)}:${httpPort}`;
    brokerUrl = `mqtt://${displayHost(config.host)}:${broker.port}`;
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
  const bus = createHubEventBus();
  let built: BuiltHub | null = null;
  let starting: Promise<void> | null = null;
  const need = (): BuiltHub => {
    if (!built) throw new Error('hub is not started');
    return built;
  };
  return {
    start() {
      starting = (async () => {
        built = await buildHub(config, { ...opts, bus });
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
