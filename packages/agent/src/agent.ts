import { createRequire } from 'node:module';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { BENCHMARK_VERB, type CmdMessage, type EnrollResponse, type ReportedMessage } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { benchmarkCommand } from './benchmark/benchmark-command.js';
import { createBenchmarkRunner } from './benchmark/benchmark-runner.js';
import { createCommandDispatcher } from './commands/command-table.js';
import type { RunConfig } from './config.js';
import { createDeploymentRunner, type DeploymentRunner } from './deployment/runner.js';
import { createDriftReporting } from './drift/drift-reporting.js';
import { rebuildFromModelFiles, restoreActiveModels } from './deployment/restore.js';
import { createHubLink, type HubLink } from './hub-link/hub-link.js';
import { createModelRuntime, type PooledModelRuntime } from './inference/model-runtime.js';
import { createModelTable } from './inference/model-table.js';
import { createShadowRegistry, type ShadowRegistry } from './inference/shadow-registry.js';
import type { ModelTable } from './inference/types.js';
import { createLocalApi } from './local-api/local-api.js';
import { createUpdateLock, type UpdateLock } from './local-api/update-lock.js';
import { createDownloader } from './models/download.js';
import { ensureModelsDir } from './models/model-files.js';
import { createAgentStore, type AgentStore } from './store/agent-store.js';
import { identityPath, readIdentity } from './store/identity-file.js';
import { lockStateDir } from './store/state-lock.js';
import { gatherCapabilities } from './telemetry/capabilities.js';
import { createTelemetry } from './telemetry/telemetry.js';
import { checkPinnedEndpoints } from './tls/pinned-ca.js';

export type { RunConfig } from './config.js';

export const AGENT_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export interface Agent {
  /** Resolves once the local API listens; the hub link keeps connecting in the background. */
  start(): Promise<void>;
  /** Stops everything in reverse order of start; safe to call twice. */
  stop(): Promise<void>;
  readonly socketPath: string;
}

/** What the agent needs from its process, which only main.ts touches. */
export interface AgentProcess {
  /** Resident set size of this process in bytes, for telemetry. */
  rss: () => number;
  /** This process's id, named in the state directory's lock. */
  pid: number;
}

interface ServingParts {
  store: AgentStore;
  runtime: PooledModelRuntime;
  table: ModelTable;
  /** Held by local applications through the socket API; the deployment runner waits for it before a switch. */
  updateLock: UpdateLock;
  /** Fed by the local API's request path; the deployment runner runs shadow phases on it. */
  shadow: ShadowRegistry;
  /** What /metrics serves: the local API's inference metrics and the drift counters. */
  metricsRegistry: Registry;
}

/** Composition root: store → runtime → model table → local API → telemetry → deployment → hub link. */
export function createAgent(config: RunConfig, logger: Logger, proc: AgentProcess): Agent {
  const log = logger.child({ module: 'agent' });
  const stops: Array<{ name: string; stop: () => unknown }> = [];
  let stopping: Promise<void> | undefined;

  function started(name: string, stop: () => unknown): void {
    stops.push({ name, stop });
  }

  /** What serves inference on this device, hub or no hub: lock, store, runtime, model table, local API. */
  async function startServing(identity: EnrollResponse): Promise<ServingParts> {
    // Before anything is written: two agents on one state directory would fight over its files.
    const lock = lockStateDir(config.stateDir, proc.pid);
    started('state lock', () => lock.release());
    await ensureModelsDir(config.stateDir);

    const { maxBytes, maxAgeMs } = config.outbox ?? {};
    const store: AgentStore = createAgentStore({
      path: join(config.stateDir, 'agent.db'),
      logger,
      outbox: { ...(maxBytes === undefined ? {} : { maxBytes }), ...(maxAgeMs === undefined ? {} : { maxAgeMs }) },
    });
    store.start();
    started('store', () => store.stop());
    if (store.isFresh()) {
      await rebuildFromModelFiles({ stateDir: config.stateDir, hubPublicKey: identity.hubPublicKey, store, logger });
    }

    const runtime: PooledModelRuntime = createModelRuntime({
      ...(config.workers === undefined ? {} : { workers: config.workers }),
      ...(config.threads === undefined ? {} : { threads: config.threads }),
      ...(config.capabilities?.executionProviders ? { executionProviders: config.capabilities.executionProviders } : {}),
      ...(config.drift?.enabled === false ? { drift: false } : {}),
      ...(config.drift?.fieldSamples
        ? { fieldSamples: { randomPerWindow: config.drift.fieldSamples.random, hardPerWindow: config.drift.fieldSamples.hard, hardMargin: config.drift.fieldSamples.hardMargin } }
        : {}),
      logger,
    });
    started('runtime', () => runtime.stop());

    const table: ModelTable = createModelTable();
    started('model table', async () => {
      for (const model of table.listStandby()) {
        table.takeStandby(model.name, model);
        await model.close();
      }
      for (const model of table.list()) {
        table.deactivate(model.name);
        await model.close();
      }
    });
    await restoreActiveModels({ store, runtime, table, logger, stateDir: config.stateDir });

    const updateLock = createUpdateLock();
    const shadow = createShadowRegistry({ logger });
    const metricsRegistry = new Registry();
    const localApi = createLocalApi({
      metricsRegistry,
      socketPath: config.socketPath,
      ...(config.tcpPort === undefined ? {} : { tcpPort: config.tcpPort }),
      models: table,
      updateLock,
      shadow,
      logger,
      serverName: 'edgefleet-agent',
      serverVersion: AGENT_VERSION,
    });
    await localApi.start();
    started('local api', () => localApi.stop());
    return { store, runtime, table, updateLock, shadow, metricsRegistry };
  }

  /** What talks to the hub: telemetry, deployments, and the link both publish through. */
  async function startHubSide(identity: EnrollResponse, { store, runtime, table, updateLock, shadow, metricsRegistry }: ServingParts): Promise<void> {
    const { drainPerSecond, maxInFlight } = config.outbox ?? {};
    const deployment = config.deployment ?? {};
    // `hubLink` is assigned below; telemetry and deployment only publish through it once it exists.
    let hubLink: HubLink | undefined;
    const capabilities = await gatherCapabilities({
      executionProviders: runtime.executionProviders(),
      agentVersion: AGENT_VERSION,
      ...(config.capabilities ? { declared: config.capabilities } : {}),
    });
    const reported = (): ReportedMessage => ({
      capabilities,
      models: store.listModels().map((m) => ({ name: m.name, version: m.version, sha256: m.sha256, profile: m.profile, active: m.active })),
      desiredVersion: store.desiredVersion(),
      ts: Date.now(),
    });

    const telemetry = createTelemetry({
      intervalMs: config.telemetryIntervalMs,
      stateDir: config.stateDir,
      table,
      publish: (body) => hubLink?.publishRecord('telemetry', body),
      rss: proc.rss,
      logger,
    });
    telemetry.start();
    started('telemetry', () => telemetry.stop());

    const hub = {
      stateDir: config.stateDir,
      apiUrl: identity.apiUrl,
      auth: { username: identity.deviceId, password: identity.secret },
      hubPublicKey: identity.hubPublicKey,
      // One downloader (one pinned TLS dispatcher) for deployments and benchmarks alike.
      download: createDownloader({ logger, ca: identity.hubCaPem }),
    };
    const drift = createDriftReporting({
      settings: config.drift ?? { enabled: true },
      table,
      publish: (body) => hubLink?.publishRecord('drift', body),
      hub: { apiUrl: hub.apiUrl, auth: hub.auth, fetch: hub.download.fetch },
      metricsRegistry,
      started,
      logger,
    });
    const runner: DeploymentRunner = createDeploymentRunner({
      ...hub,
      store,
      runtime,
      // A switch through the reporter's view takes the replaced version's window before it closes.
      table: drift ? drift.watch(table) : table,
      publishEvent: (event) => hubLink?.publishRecord('events', event),
      onStateChange: () => hubLink?.publishReported(),
      logger,
      updateLock,
      shadow,
      ...(deployment.maxDeferSec === undefined ? {} : { maxDeferSec: deployment.maxDeferSec }),
      standby: {
        ...(deployment.standby === undefined ? {} : { policy: deployment.standby }),
        ...(deployment.standbyKeepSec === undefined ? {} : { keepMs: deployment.standbyKeepSec * 1000 }),
        freeMemory: freemem,
      },
    });
    runner.start();
    started('deployment', () => runner.stop());

    // A benchmark session gets the intra-op threads a lone serving request gets, so its numbers are the serving ones.
    const deploymentBusy = () => runner.busy();
    const benchmarks = createBenchmarkRunner({ ...hub, threads: runtime.threads, logger, freeMemory: freemem, deploymentBusy });
    // A candidate download the previous process did not live to remove.
    await benchmarks.clearLeftovers();
    const commands = createCommandDispatcher({
      handlers: { [BENCHMARK_VERB]: benchmarkCommand(benchmarks, { deploymentBusy }) },
      publish: (body) => hubLink?.publishRecord('cmd/result', body),
      logger,
    });
    const onCmd = (cmd: CmdMessage) => commands.handle(cmd);
    hubLink = createHubLink({
      brokerUrl: identity.brokerUrl,
      deviceId: identity.deviceId,
      secret: identity.secret,
      ca: identity.hubCaPem,
      logger,
      outbox: store.outbox(),
      drain: { ...(drainPerSecond === undefined ? {} : { perSecond: drainPerSecond }), ...(maxInFlight === undefined ? {} : { maxInFlight }) },
      reported,
      onDesired: (desired) => runner.submit(desired),
      onCmd,
    });
    hubLink.start();
    const link = hubLink;
    started('hub link', () => link.stop());
    if (drift) {
      const reporter = drift;
      reporter.start();
      // Stopped before the hub link: the last windows go into the outbox.
      started('drift', () => reporter.stop());
    }
    // Stopped before the hub link: a benchmark cut short still answers (ok false) into the outbox.
    started('commands', async () => {
      await benchmarks.stop();
      await commands.stop();
    });
    log.info({ deviceId: identity.deviceId, brokerUrl: identity.brokerUrl, models: table.list().length }, 'agent started');
  }

  async function start(): Promise<void> {
    const identity = await readIdentity(config.stateDir);
    checkPinnedEndpoints(identity, identityPath(config.stateDir));
    await startHubSide(identity, await startServing(identity));
  }

  async function stopAll(): Promise<void> {
    while (stops.length > 0) {
      const part = stops.pop()!;
      try {
        await part.stop();
      } catch (err) {
        log.error({ part: part.name, err: (err as Error).message }, 'stopping a part failed');
      }
    }
    log.info('agent stopped');
  }

  return {
    socketPath: config.socketPath,
    async start() {
      try {
        await start();
      } catch (err) {
        await stopAll();
        throw err;
      }
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}
