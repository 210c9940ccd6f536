import { chmod, lstat, mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { EdgefleetError, isEdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ShadowTap } from '../inference/shadow-registry.js';
import type { ModelTable } from '../inference/types.js';
import { DEFAULT_BODY_LIMITS, type BodyLimitSettings } from './body-limit.js';
import { guardLoopback } from './loopback-guard.js';
import { createInferenceMetrics, type InferenceMetrics } from './metrics.js';
import { registerOipRoutes } from './oip-routes.js';
import { registerBodyReader } from './request-body.js';
import type { UpdateLock } from './update-lock.js';
import { registerUpdateLockRoutes, UPDATE_LOCK_EXTENSION } from './update-lock-routes.js';

export interface LocalApiOptions {
  socketPath: string;
  /** Also listen on 127.0.0.1:tcpPort (0 = OS picks); never on another interface. */
  tcpPort?: number;
  models: ModelTable;
  logger: Logger;
  serverName?: string;
  serverVersion?: string;
  /** Shared with telemetry when given; a private registry otherwise. */
  metricsRegistry?: Registry;
  /** Request body limits; an infer request's own limit comes from its model's inputs within these. */
  bodyLimits?: Partial<BodyLimitSettings>;
  /** Served under /v2/edgefleet/update-locks when given (the deployment runner waits on the same registry). */
  updateLock?: UpdateLock;
  /** Shadow sessions that sample local requests for a candidate version. */
  shadow?: ShadowTap;
}

export interface LocalApi {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly socketPath: string;
  /** The TCP port actually bound, once started with `tcpPort`. */
  tcpPort(): number | undefined;
  /** The socket listener's app, for `inject()` in tests. */
  readonly app: FastifyInstance;
}

export const SOCKET_MODE = 0o660;

interface AppDeps {
  models: ModelTable;
  metrics: InferenceMetrics;
  logger: Logger;
  serverName: string;
  serverVersion: string;
  bodyLimits: BodyLimitSettings;
  updateLock?: UpdateLock;
  shadow?: ShadowTap;
}

/** Builds the Fastify app without listening. Every body arrives as a Buffer; the infer route decides JSON vs binary. */
export function buildLocalApiApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  registerBodyReader(app, { bytes: deps.bodyLimits.jsonFloor, reason: 'requests other than inference' });
  app.setErrorHandler((err: FastifyError | EdgefleetError, req, reply) => {
    const status = isEdgefleetError(err) ? err.httpStatus : (err.statusCode ?? 500);
    if (status >= 500) deps.logger.error({ method: req.method, url: req.url, err: err.message }, 'local api request failed');
    else deps.logger.debug({ method: req.method, url: req.url, status, err: err.message }, 'local api request rejected');
    void reply.code(status).send({ error: err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}; see GET /v2 and /v2/models/{name}` });
  });
  registerOipRoutes(app, { ...deps, extensions: deps.updateLock ? [UPDATE_LOCK_EXTENSION] : [] });
  if (deps.updateLock) registerUpdateLockRoutes(app, deps.updateLock);
  return app;
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Removes a stale socket file left by a previous run; refuses to touch a live socket or a non-socket file. */
async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const stat = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!stat) return;
  if (!stat.isSocket()) throw new EdgefleetError('CONFLICT', `${path} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(path)) throw new EdgefleetError('CONFLICT', `another process is serving ${path}`);
  await rm(path, { force: true });
}

/** The local inference API: Open Inference Protocol on a Unix socket (mode 0660), optionally on 127.0.0.1 too. */
export function createLocalApi(opts: LocalApiOptions): LocalApi {
  const logger = opts.logger.child({ module: 'local-api' });
  const deps: AppDeps = {
    models: opts.models,
    metrics: createInferenceMetrics(opts.metricsRegistry),
    logger,
    serverName: opts.serverName ?? 'edgefleet-agent',
    serverVersion: opts.serverVersion ?? '0.0.0',
    bodyLimits: { ...DEFAULT_BODY_LIMITS, ...opts.bodyLimits },
    ...(opts.updateLock ? { updateLock: opts.updateLock } : {}),
    ...(opts.shadow ? { shadow: opts.shadow } : {}),
  };
  const app = buildLocalApiApp(deps);
  let tcpApp: FastifyInstance | undefined;
  let boundPort: number | undefined;
  let started = false;
  let stopping: Promise<void> | undefined;

  async function stopAll(): Promise<void> {
    if (tcpApp) await tcpApp.close();
    await app.close();
    if (started) await rm(opts.socketPath, { force: true });
    logger.info({ socketPath: opts.socketPath }, 'local api stopped');
  }

  return {
    app,
    socketPath: opts.socketPath,
    tcpPort: () => boundPort,
    async start() {
      await prepareSocketPath(opts.socketPath);
      await app.listen({ path: opts.socketPath });
      started = true;
      await chmod(opts.socketPath, SOCKET_MODE);
      if (opts.tcpPort !== undefined) {
        tcpApp = buildLocalApiApp(deps);
        // The socket needs no such check: browsers cannot reach it, and curl sends any Host there.
        guardLoopback(tcpApp);
        await tcpApp.listen({ host: '127.0.0.1', port: opts.tcpPort });
        const address = tcpApp.server.address();
        boundPort = typeof address === 'object' && address ? address.port : undefined;
      }
      logger.info({ socketPath: opts.socketPath, tcpPort: boundPort }, 'local api listening');
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}
