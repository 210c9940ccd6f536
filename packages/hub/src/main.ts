#!/usr/bin/env node
import { pino } from 'pino';
import { createHub } from './app.js';
import { loadConfig } from './config.js';

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
  try {
    await hub.start();
  } catch (err) {
    log.fatal({ err }, 'hub failed to start');
    process.exit(1);
  }
  log.info({ apiUrl: hub.apiUrl, brokerUrl: hub.brokerUrl, dataDir: config.dataDir }, 'hub ready');
}

void main();
