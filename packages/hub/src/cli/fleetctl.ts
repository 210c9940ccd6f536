#!/usr/bin/env node
/**
 * fleetctl: a thin client of the hub's /api/v1. The only file of the CLI that touches process
 * (argv, environment, streams, exit code); the commands get what they need through a context.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, CommanderError } from 'commander';
import { CliError, createApiClient, readConfigFile, resolveConnection, type ApiClient } from './api-client.js';
import { registerApiTokens } from './commands/api-tokens.js';
import { registerDevices } from './commands/devices.js';
import { registerDrift } from './commands/drift.js';
import { registerHealth } from './commands/health.js';
import { registerModels } from './commands/models.js';
import { registerRollouts } from './commands/rollouts.js';
import { registerTokens } from './commands/tokens.js';
import type { CommandContext } from './format.js';

interface GlobalOptions {
  hub?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

const configDir = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
const defaultConfigPath = join(configDir, 'edgefleet', 'fleetctl.json');

const program = new Command('fleetctl')
  .description('Drive an edgefleet hub from a terminal: devices, enrollment tokens, models, rollouts, drift')
  .option('--hub <url>', 'hub URL (or EDGEFLEET_HUB_URL, or "hub" in the config file)')
  .option('--token <token>', 'operator token (or EDGEFLEET_TOKEN, or "token" in the config file)')
  .option('--config <file>', 'config file {"hub", "token"}', defaultConfigPath)
  .option('--json', "print the API's JSON as is, for scripts")
  .showHelpAfterError()
  .exitOverride();

let client: ApiClient | undefined;
const ctx: CommandContext = {
  async client() {
    if (client) return client;
    const opts = program.opts<GlobalOptions>();
    const filePath = opts.config ?? defaultConfigPath;
    const conn = resolveConnection({
      flags: { hub: opts.hub, token: opts.token },
      env: { hub: process.env.EDGEFLEET_HUB_URL || undefined, token: process.env.EDGEFLEET_TOKEN || undefined },
      file: await readConfigFile(filePath),
      filePath,
    });
    client = createApiClient(conn);
    return client;
  },
  json: () => program.opts<GlobalOptions>().json === true,
  write: (text) => process.stdout.write(text),
  stdout: process.stdout,
  sleep: (ms) => sleep(ms),
};

for (const register of [registerDevices, registerTokens, registerApiTokens, registerModels, registerRollouts, registerHealth, registerDrift]) register(program, ctx);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has printed the usage error or the help already; usage errors exit 2 (help exits 0).
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    process.stderr.write(`fleetctl: ${err instanceof CliError ? err.message : (err as Error).stack ?? String(err)}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  }
}
