import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
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
import { createArtifactStore } from './models/artifact-store.js';
import { createModelRepo } from './models/model-repo.js';
import { modelRoutes } from './models/model-routes.js';
import { createModelService } from './models/model-service.js';
import { loadOrCreateSigningKey } from './models/signing-key.js';
import { createRecordRepo } from './records/record-repo.js';
import { createDesiredRepo } from './rollouts/desired-repo.js';
import { createRolloutRepo } from './rollouts/rollout-repo.js';
import { rolloutRoutes } from './rollouts/rollout-routes.js';
import { createRolloutService } from './rollouts/rollout-service.js';
import { openDatabase, type Db } from './store/database.js';

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

/** The composition root: builds every part; start() brings them up in order, stop() takes them down in reverse. */
export function createHub(config: HubConfig, opts: { log?: Logger } = {}): Hub {
  const log = opts.log ?? pino({ level: config.logLevel });
  const bus = createHubEventBus();
  let db: Db | null = null;
  let broker: Broker | null = null;
  let ingest: IngestService | null = null;
  let http: FastifyInstance | null = null;
  let jobs: ReturnType<typeof createJobRegistry> | null = null;
  let publicKey = '';
  let apiUrl = '';
  let brokerUrl = '';
  const stack: Array<() => Promise<void> | void> = [];

  async function start(): Promise<void> {
    mkdirSync(config.dataDir, { recursive: true });
    const database = openDatabase(`${config.dataDir}/hub.db`, log.child({ module: 'store' }));
    db = database;
    stack.push(() => {
      database.close();
    });

    const devices = createDeviceRepo(database);
    devices.markAllOffline();
    const records = createRecordRepo(database, config.telemetryHistory);
    const tokens = ensureAdminToken(database, config.dataDir, config.adminToken, log.child({ module: 'auth' }));
    const sessions = createSessionRepo(database);
    const signingKey = loadOrCreateSigningKey(config.dataDir, log.child({ module: 'models' }));
    publicKey = signingKey.publicKeyPem;
    const artifacts = createArtifactStore(config.dataDir);
    const modelRepo = createModelRepo(database);

    const ingestService = createIngestService({ devices, records, bus, log: log.child({ module: 'ingest' }) });
    ingest = ingestService;
    const b = createAedesBroker({
      host: config.host,
      port: config.mqttPort,
      maxConnections: config.maxConnections,
      policy: ingestService,
      log: log.child({ module: 'broker' }),
    });
    broker = b;

    const rollouts = createRolloutService({
      db: database,
      rollouts: createRolloutRepo(database),
      desired: createDesiredRepo(database),
      devices,
      models: modelRepo,
      broker: b,
      bus,
      log: log.child({ module: 'rollouts' }),
    });
    ingestService.setObserver(rollouts.observer);

    await b.start();
    stack.push(async () => {
      await b.stop();
      ingestService.stop();
    });
    const republished = await rollouts.republishAll();
    log.info({ devices: republished }, 'desired state republished');

    const requireOperator = createOperatorAuth(tokens, sessions);
    const enrollment = createEnrollmentService({
      db: database,
      tokens: createEnrollmentRepo(database),
      devices,
      bus,
      hubPublicKey: publicKey,
      log: log.child({ module: 'enrollment' }),
    });
    const app = await createHttpServer(log.child({ module: 'http' }));
    http = app;
    await app.register(healthRoutes, { status: () => ({ connections: b.connections, ingest: ingestService.counters }) });
    await app.register(sessionRoutes, { tokens, sessions });
    await app.register(eventStreamRoutes, { bus, requireOperator, deviceById: (id) => devices.get(id) });
    await app.register(staticRoutes, {});
    await app.register(enrollmentRoutes, {
      service: enrollment,
      requireOperator,
      endpointsFor: (host, protocol) => {
        const hostname = host ? new URL(`http://${host}`).hostname : displayHost(config.host);
        return {
          apiUrl: config.publicUrl ?? (host ? `${protocol}://${host}` : apiUrl),
          brokerUrl: config.brokerUrl ?? `mqtt://${hostname}:${b.port}`,
        };
      },
    });
    await app.register(deviceRoutes, {
      service: createDeviceService({ devices, records, bus, disconnect: (id) => b.disconnectDevice(id), log: log.child({ module: 'devices' }) }),
      requireOperator,
    });
    await app.register(modelRoutes, {
      service: createModelService({ repo: modelRepo, artifacts, privateKeyPem: signingKey.privateKeyPem, log: log.child({ module: 'models' }) }),
      requireOperator,
      maxModelBytes: config.maxModelBytes,
    });
    await app.register(artifactRoutes, {
      artifacts,
      verifyDevice: (id, secret) => {
        const creds = devices.credentials(id);
        return creds !== undefined && !creds.revoked && secretMatches(secret, creds.secretSha256);
      },
    });
    await app.register(rolloutRoutes, { service: rollouts, requireOperator });

    await app.listen({ host: config.host, port: config.httpPort });
    stack.push(() => app.close());
    const httpPort = (app.server.address() as AddressInfo).port;
    apiUrl = `http://${displayHost(config.host)}:${httpPort}`;
    brokerUrl = `mqtt://${displayHost(config.host)}:${b.port}`;

    const jobRegistry = createJobRegistry(
      [
        {
          name: 'purge-expired',
          schedule: '17 * * * *',
          run: () => {
            const now = Date.now();
            sessions.purgeExpired(now);
            createEnrollmentRepo(database).purgeExpired(now - 7 * 24 * 3600 * 1000);
          },
        },
      ],
      log.child({ module: 'jobs' }),
    );
    jobs = jobRegistry;
    jobRegistry.start();
    stack.push(() => jobRegistry.stop());
  }

  return {
    async start() {
      try {
        await start();
      } catch (err) {
        await this.stop();
        throw err;
      }
    },
    async stop() {
      while (stack.length > 0) {
        const step = stack.pop()!;
        try {
          await step();
        } catch (err) {
          log.error({ err }, 'error while stopping');
        }
      }
      db = null;
      broker = null;
      http = null;
      jobs = null;
    },
    get apiUrl() {
      return apiUrl;
    },
    get brokerUrl() {
      return brokerUrl;
    },
    get http() {
      if (!http) throw new Error('hub is not started');
      return http;
    },
    bus,
    get hubPublicKey() {
      return publicKey;
    },
    ingestCounters() {
      if (!ingest) throw new Error('hub is not started');
      return ingest.counters;
    },
    flushIngest() {
      ingest?.queue.flush();
    },
  };
}
