#!/usr/bin/env node
import { pino, type Logger } from 'pino';
import { isEdgefleetError } from '@edgefleet/shared';
import { notifySystemd } from '@edgefleet/shared/systemd';
import { enroll } from './cli/enroll.js';
import { parseCommand, USAGE, type LogLevel, type RunConfig } from './config.js';
import { createRestartBackoff } from './restart-backoff.js';

/** The only module that touches `process`: argv, env (through config), signals, exit, systemd. */
const STOP_TIMEOUT_MS = 15_000;

function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { pid: process.pid, service: 'edgefleet-agent' } });
}

function fail(err: unknown, logger?: Logger): never {
  const message = err instanceof Error ? err.message : String(err);
  const code = isEdgefleetError(err) ? err.code : 'INTERNAL';
  logger?.error({ code, err: message }, 'command failed');
  process.stderr.write(`edgefleet-agent: ${message}\n`);
  process.exit(code === 'BAD_REQUEST' ? 2 : 1);
}

async function run(config: RunConfig): Promise<void> {
  const logger = createLogger(config.logLevel);
  // Loaded only for `run`: enrolling needs neither onnxruntime nor SQLite.
  const { createAgent, AGENT_VERSION } = await import('./agent.js');
  const agent = createAgent(config, logger, { rss: () => process.memoryUsage.rss(), pid: process.pid });
  const backoff = createRestartBackoff({ stateDir: config.stateDir, logger, pid: process.pid, env: process.env });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    notifySystemd(logger, 'STOPPING=1');
    if (backoff.waiting) {
      backoff.stopped();
      process.exit(0);
    }
    const force = setTimeout(() => {
      logger.error({ timeoutMs: STOP_TIMEOUT_MS }, 'stop took too long; exiting');
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    force.unref();
    agent.stop().then(
      () => {
        backoff.stopped();
        process.exit(0);
      },
      (err) => fail(err, logger),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  try {
    await backoff.wait();
    await agent.start();
  } catch (err) {
    fail(err, logger);
  }
  logger.info({ socketPath: config.socketPath, version: AGENT_VERSION }, 'agent ready');
  notifySystemd(logger, 'READY=1');
  backoff.ready();
}

async function main(): Promise<void> {
  let command;
  try {
    command = parseCommand(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`edgefleet-agent: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  switch (command.command) {
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    case 'enroll': {
      const logger = createLogger(command.config.logLevel);
      try {
        const identity = await enroll(command.config, logger);
        process.stdout.write(`${identity.deviceId}\n`);
      } catch (err) {
        fail(err, logger);
      }
      return;
    }
    case 'run':
      await run(command.config);
  }
}

await main();
