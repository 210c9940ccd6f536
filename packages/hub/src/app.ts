import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { SigningKeyPair } from '@edgefleet/shared';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { createAedesBroker } from './broker/aedes-broker.js';
import type { Broker } from './broker/broker.js';
import { createIngestService, type IngestCounters, type IngestService } from './broker/ingest-service.js';
import { VARIANT_BUILD_LIMITS } from './compression/variant-builder.js';
import type { HubConfig } from './config.js';
import type { DriftBaselines } from './drift/drift-baselines.js';
import type { BaselineService } from './drift/baseline-service.js';
import { buildBaselines, buildDrift } from './drift/drift-parts.js';
import type { DriftScores } from './rollouts/gates.js';
import type { DriftService } from './drift/drift-service.js';
import { createHubEventBus, type HubEventBus } from './events/hub-event-bus.js';
import { displayHost } from './http/display-host.js';
import { createHttpServer } from './http/http-server.js';
import { registerRoutes } from './http/register-routes.js';
import { createHubJobs } from './jobs/hub-jobs.js';
import { createArtifactStore } from './models/artifact-store.js';
import { loadOrCreateSigningKey } from './models/signing-key.js';
import { createVariantService, type VariantService } from './models/variant-service.js';
import { createBenchmarkService, type BenchmarkService } from './plans/benchmark-service.js';
import { createPlanRepo, type PlanRepo } from './plans/plan-repo.js';
import { createPlanService, type PlanService } from './plans/plan-service.js';
import { createRolloutService, type RolloutService } from './rollouts/rollout-service.js';
import { openDatabase, type Db } from './store/database.js';
import { openStores, type Stores } from './store/open-stores.js';
import { createStorageHealth, type StorageHealth } from './store/storage-health.js';
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

/** A hub whose parts are all built: `http` has every route and can answer `inject()` before `start()`. */
export interface BuiltHub extends Hub {
  readonly http: FastifyInstance;
  /** Drift evaluation: evaluate now, views, alerts, per-device scores. */
  readonly drift: DriftService;
  /** The versions' drift baselines as stored (reference or calibration data). */
  readonly driftBaselines: DriftBaselines;
}

type StopStep = () => Promise<void> | void;

/** Stop steps run last-pushed first; one that fails is logged and the rest still run. */
function createStopStack(log: Logger) {
  const steps: StopStep[] = [];
  return {
    push(step: StopStep): void {
      steps.push(step);
    },
    async unwind(): Promise<void> {
      while (steps.length > 0) {
        const step = steps.pop()!;
        try {
          await step();
        } catch (err) {
          log.error({ err }, 'error while stopping');
        }
      }
    },
  };
}
type StopStack = ReturnType<typeof createStopStack>;

interface HubParts {
  stores: Stores;
  signingKey: SigningKeyPair;
  ingest: IngestService;
  broker: Broker;
  rollouts: RolloutService;
  variantService: VariantService;
  planning: { repo: PlanRepo; plans: PlanService; benchmarks: BenchmarkService };
  drift: DriftService;
  baselines: BaselineService;
  app: FastifyInstance;
}

interface BuildContext {
  database: Db;
  storage: StorageHealth;
  bus: HubEventBus;
  tls: ServerTls | undefined;
  stack: StopStack;
  /** Filled in by start() once listening; the enrollment routes read apiUrl as a fallback. */
  urls: { apiUrl: string; brokerUrl: string };
  log: Logger;
  /** Drift baselines given by the caller (tests); ingest checks drift records against them. */
  driftBaselines?: DriftBaselines;
  /** Drift scores given by the caller (tests) instead of the drift evaluations, for the rollout drift gate. */
  driftScores?: DriftScores;
}

/** Each part that must be closed goes on the stack as soon as it exists, so a failure part-way unwinds what was built. */
async function buildParts(config: HubConfig, ctx: BuildContext): Promise<HubParts> {
  const { database, storage, bus, tls, stack, log } = ctx;
  const stores = openStores(database, config, log);
  const signingKey = loadOrCreateSigningKey(config.dataDir, log.child({ module: 'models' }));
  const artifacts = createArtifactStore(config.dataDir);
  const baselines = buildBaselines(config, { database, stores, artifacts, signingKey, stack, log });
  const ingest = createIngestService({
    devices: stores.devices,
    // Health reports degraded while record batches fail (a damaged index can break writes and leave reads working).
    records: { ...stores.records, insertBatch: storage.observe(stores.records.insertBatch) },
    bus,
    queueBound: config.ingestQueueBound,
    driftBaselines: ctx.driftBaselines ?? baselines.baselines,
    log: log.child({ module: 'ingest' }),
  });
  stack.push(() => ingest.stop());
  const broker = createAedesBroker({
    host: config.host,
    port: config.mqttPort,
    maxConnections: config.maxConnections,
    maxPacketBytes: config.mqttMaxPacketBytes,
    policy: ingest,
    log: log.child({ module: 'broker' }),
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
  });
  const planRepo = createPlanRepo(database);
  const plans = createPlanService({ db: database, plans: planRepo, variants: stores.variants, models: stores.models, bus, log: log.child({ module: 'plans' }) });
  const benchmarks = createBenchmarkService({
    db: database,
    plans: planRepo,
    devices: stores.devices,
    variants: stores.variants,
    broker,
    afterBenchmark: (deviceId, key) => plans.afterBenchmark(deviceId, key),
    log: log.child({ module: 'benchmarks' }),
  });
  const rollouts = createRolloutService({
    db: database,
    variants: plans,
    rollouts: stores.rollouts,
    desired: stores.desired,
    devices: stores.devices,
    models: stores.models,
    records: stores.records,
    broker,
    bus,
    log: log.child({ module: 'rollouts' }),
    // The drift gate reads the latest evaluations; `drift` is built below and only asked once a wave is judged.
    driftScores: ctx.driftScores ?? ((model, version, deviceIds) => drift.driftScores(model, version, deviceIds)),
  });
  rollouts.follow(ingest.streams);
  plans.follow(ingest.streams);
  benchmarks.follow(ingest.streams);
  const variantService = createVariantService({
    models: stores.models,
    variants: stores.variants,
    artifacts,
    privateKeyPem: signingKey.privateKeyPem,
    bus,
    log: log.child({ module: 'variants' }),
    autoBuild: config.autoBuildVariants,
    limits: { ...VARIANT_BUILD_LIMITS, maxOldGenerationSizeMb: config.variantBuildHeapMb },
    drift: baselines,
  });
  const drift = buildDrift(config, ctx, ctx.driftBaselines ?? baselines.baselines);
  const app = await createHttpServer(log.child({ module: 'http' }), tls ? { https: { cert: tls.cert, key: tls.key } } : {});
  stack.push(() => app.close());
  await registerRoutes(app, { config, database, stores, bus, broker, ingest, rollouts, signingKey, artifacts, variantService, baselines, plans, benchmarks, drift, storage, tls, apiUrl: () => ctx.urls.apiUrl, log });
  await app.ready();
  return { stores, signingKey, ingest, broker, rollouts, variantService, planning: { repo: planRepo, plans, benchmarks }, drift, baselines, app };
}

/** Broker (desired state republished), then HTTP, then jobs. */
async function startParts(parts: HubParts, config: HubConfig, ctx: BuildContext): Promise<void> {
  const { broker, rollouts, app, stores } = parts;
  const { tls, stack, urls, log } = ctx;
  await broker.start();
  stack.push(() => broker.stop());
  const republished = await rollouts.republishAll();
  log.info({ devices: republished }, 'desired state republished');
  // After the republish: rollouts continue from SQLite and their first new documents follow the old ones.
  rollouts.start();
  stack.push(() => rollouts.stop());
  // Unfinished variant builds resume; stopping cancels the worker and leaves the build resumable.
  parts.variantService.start();
  stack.push(() => parts.variantService.stop());
  await app.listen({ host: config.host, port: config.httpPort });
  const httpPort = (app.server.address() as AddressInfo).port;
  urls.apiUrl = `${tls ? 'https' : 'http'}://${displayHost(config.host)}:${httpPort}`;
  urls.brokerUrl = `${tls ? 'mqtts' : 'mqtt'}://${displayHost(config.host)}:${broker.port}`;
  // Plans follow enrollments, reports, finished builds and benchmarks from here on.
  parts.planning.plans.start();
  stack.push(() => parts.planning.plans.stop());
  const jobs = createHubJobs(stores, log, parts.planning, { schedule: config.driftEvaluateCron, evaluate: () => parts.drift.evaluate() });
  jobs.start();
  stack.push(() => jobs.stop());
}

/**
 * The composition root: opens SQLite and builds every part (broker, ingest, rollouts, the Fastify app
 * with its routes) without listening. start() brings up the broker (desired state republished), then
 * HTTP, then jobs; stop() takes them down in reverse and closes what build opened. Safe twice.
 */
export async function buildHub(config: HubConfig, opts: { log?: Logger; bus?: HubEventBus; driftBaselines?: DriftBaselines; driftScores?: DriftScores } = {}): Promise<BuiltHub> {
  const log = opts.log ?? pino({ level: config.logLevel });
  const bus = opts.bus ?? createHubEventBus(log.child({ module: 'events' }));
  const stack = createStopStack(log);
  // Before anything is opened: unreadable or mismatched TLS files stop the hub, naming the file.
  const tls = config.tls ? loadServerTls(config.tls) : undefined;
  if (tls) log.info({ certFile: config.tls?.certFile, validTo: tls.validTo, pinnedCa: tls.caPem !== undefined }, 'tls enabled for http and mqtt');

  mkdirSync(config.dataDir, { recursive: true });
  const database = openDatabase(`${config.dataDir}/hub.db`, log.child({ module: 'store' }), { allowEmpty: config.allowEmptyDatabase });
  const storage = createStorageHealth();
  stack.push(() => {
    database.close();
  });
  const ctx: BuildContext = { database, storage, bus, tls, stack, urls: { apiUrl: '', brokerUrl: '' }, log, ...(opts.driftBaselines ? { driftBaselines: opts.driftBaselines } : {}), ...(opts.driftScores ? { driftScores: opts.driftScores } : {}) };
  let parts: HubParts;
  try {
    parts = await buildParts(config, ctx);
  } catch (err) {
    await stack.unwind();
    throw err;
  }
  const { app, ingest, signingKey } = parts;

  let starting: Promise<void> | null = null;
  let started = false;
  return {
    async start() {
      if (started) throw new Error('hub is already started');
      started = true;
      starting = startParts(parts, config, ctx).catch(async (err: unknown) => {
        await stack.unwind();
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
      await stack.unwind();
    },
    get apiUrl() {
      return ctx.urls.apiUrl;
    },
    get brokerUrl() {
      return ctx.urls.brokerUrl;
    },
    http: app,
    drift: parts.drift,
    driftBaselines: parts.baselines.baselines,
    bus,
    hubPublicKey: signingKey.publicKeyPem,
    ingestCounters: () => ingest.counters,
    flushIngest: () => ingest.queue.flush(),
  };
}

/** buildHub() and start() in one call of start(), for callers that do not need the app before listening. */
export function createHub(config: HubConfig, opts: { log?: Logger; driftBaselines?: DriftBaselines; driftScores?: DriftScores } = {}): Hub {
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
        built = await buildHub(config, { ...opts, log, bus });
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
