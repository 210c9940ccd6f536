import { join } from 'node:path';
import { generateSigningKeyPair, type ModelAssignment, type SigningKeyPair } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { createDeploymentRunner, type DeploymentRunner, type DeploymentRunnerOptions } from '../../src/deployment/runner.js';
import type { DeploymentEventBody } from '../../src/deployment/step-context.js';
import { createModelRuntime } from '../../src/inference/model-runtime.js';
import { createModelTable } from '../../src/inference/model-table.js';
import type { LoadedModel, ModelRuntime, ModelTable } from '../../src/inference/types.js';
import { createLocalApi, type LocalApi, type LocalApiOptions } from '../../src/local-api/local-api.js';
import { createDownloader } from '../../src/models/download.js';
import { createAgentStore, type AgentStore } from '../../src/store/agent-store.js';
import { startArtifactServer, type ArtifactServer } from './artifact-server.js';
import { assignmentFor, desired, type AssignmentOptions } from './manifests.js';
import { silentLogger } from './temp.js';
import { trackingRuntime } from './tracking-runtime.js';

/**
 * A deployment runner on real parts: an artifact server with Basic auth, agent.db in `stateDir`,
 * onnxruntime with one worker, and a signing key for the manifests. Every event is kept in `events`.
 */
export interface DeploymentRig {
  keys: SigningKeyPair;
  server: ArtifactServer;
  store: AgentStore;
  /** The real runtime, tracking which loaded models are still open. */
  runtime: ModelRuntime & { loaded: Set<LoadedModel> };
  table: ModelTable;
  runner: DeploymentRunner;
  /** The local API on the rig's model table, when asked for (socket at <stateDir>/agent.sock). */
  localApi: LocalApi | undefined;
  events: DeploymentEventBody[];
  /** Run when a model has been loaded, before the runner goes on, once per entry (consumed in order). */
  afterLoad: Array<() => Promise<void>>;
  /** A manifest signed with the rig's key, its golden vector computed by the rig's runtime. */
  assignment(opts: Omit<AssignmentOptions, 'privateKeyPem' | 'runtime' | 'scratchDir'>): Promise<ModelAssignment>;
  /** Submits these assignments as the next desired version, without waiting. */
  submit(...models: ModelAssignment[]): void;
  /** Submits these assignments as the next desired version; resolves when applied, with the events that caused. */
  apply(...models: ModelAssignment[]): Promise<DeploymentEventBody[]>;
  /** The desired version the next `apply` submits. */
  nextVersion(): number;
  /** Stops the runner, closes loaded models, the runtime, agent.db and the server (not the directories). */
  stop(): Promise<void>;
}

export interface DeploymentRigOptions {
  stateDir: string;
  /** Where golden outputs are computed (model files are written there). */
  scratchDir: string;
  creds: { username: string; password: string };
  /** Retry delay of a retryable failure, whatever the attempt. */
  retryDelayMs: number;
  logger?: Logger;
  onStateChange?: () => void;
  diskReserveBytes?: number;
  /** Runner settings under test: update lock, shadow runner, standby policy, deferral default. */
  runner?: Pick<DeploymentRunnerOptions, 'updateLock' | 'shadow' | 'standby' | 'maxDeferSec'>;
  /** Serve the rig's model table on a real Unix socket, with these parts (pass the runner's lock and shadow registry). */
  localApi?: Pick<LocalApiOptions, 'updateLock' | 'shadow'>;
  /** Sign with these keys (a restarted rig must verify what the first one signed). */
  keys?: SigningKeyPair;
}

export async function startDeploymentRig(opts: DeploymentRigOptions): Promise<DeploymentRig> {
  const keys = opts.keys ?? generateSigningKeyPair();
  const server = await startArtifactServer(opts.creds);
  const store = createAgentStore({ path: join(opts.stateDir, 'agent.db'), logger: silentLogger });
  store.start();
  const tracking = trackingRuntime(createModelRuntime({ workers: 1, threads: 1, logger: silentLogger }));
  const afterLoad: Array<() => Promise<void>> = [];
  const runtime: typeof tracking = {
    ...tracking,
    async load(file) {
      const model = await tracking.load(file);
      await afterLoad.shift()?.();
      return model;
    },
  };
  const table = createModelTable();
  const events: DeploymentEventBody[] = [];
  const runner = createDeploymentRunner({
    stateDir: opts.stateDir,
    apiUrl: server.apiUrl,
    auth: opts.creds,
    hubPublicKey: keys.publicKeyPem,
    store,
    runtime,
    table,
    download: createDownloader({ logger: silentLogger, retries: 1, retryDelayMs: 5 }),
    publishEvent: (e) => events.push(e),
    onStateChange: opts.onStateChange ?? (() => undefined),
    logger: opts.logger ?? silentLogger,
    retryDelayMs: () => opts.retryDelayMs,
    ...opts.runner,
    ...(opts.diskReserveBytes === undefined ? {} : { diskReserveBytes: opts.diskReserveBytes }),
  });
  runner.start();
  let version = 1;
  let localApi: LocalApi | undefined;
  if (opts.localApi) {
    localApi = createLocalApi({ ...opts.localApi, socketPath: join(opts.stateDir, 'agent.sock'), models: table, logger: silentLogger });
    await localApi.start();
  }

  return {
    keys,
    server,
    store,
    runtime,
    table,
    runner,
    localApi,
    events,
    afterLoad,
    assignment: (a) => assignmentFor({ ...a, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: opts.scratchDir }),
    submit: (...models) => runner.submit(desired(version++, ...models)),
    async apply(...models) {
      const before = events.length;
      runner.submit(desired(version++, ...models));
      await runner.idle();
      return events.slice(before);
    },
    nextVersion: () => version,
    async stop() {
      await localApi?.stop();
      await runner.stop();
      for (const m of [...table.list(), ...table.listStandby()]) await m.close();
      await runtime.stop();
      store.stop();
      await server.close();
    },
  };
}
