#!/usr/bin/env node
import { pino } from 'pino';
import { notifySystemd } from '@edgefleet/shared/systemd';
import { createHub } from './app.js';
import { loadConfig } from './config.js';

/** How long an ordered stop may take before the process exits anyway (a stuck close must not hang the unit). */
const STOP_TIMEOUT_MS = 15_000;

/** The hub process: config from the environment, signals, ordered stop, exit code. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = pino({ level: config.logLevel });
  const hub = createHub(config, { log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'hub stopping');
    notifySystemd(log, 'STOPPING=1');
    const force = setTimeout(() => {
      log.error({ timeoutMs: STOP_TIMEOUT_MS }, 'stop took too long; exiting');
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    force.unref();
    // stop() waits for a start still in progress, so parts it brings up late are closed too.
    hub.stop().then(
      () => {
        log.info('hub stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'hub stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  try {
    await hub.start();
  } catch (err) {
    if (stopping) return;
    // The reason goes into the message itself: it is the one line an operator reads in the journal.
    const reason = err instanceof Error ? err.message : String(err);
    log.fatal({ err, code: (err as { code?: unknown }).code }, `hub failed to start: ${reason}`);
    process.exit(1);
  }
  if (stopping) return;
  log.info({ apiUrl: hub.apiUrl, brokerUrl: hub.brokerUrl, dataDir: config.dataDir }, 'hub ready');
  // Type=notify (deploy/systemd/edgefleet-hub.service): HTTP and MQTT listen once start() resolves.
  notifySystemd(log, 'READY=1');
}

void main();
