import { vi } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AGENT_MAIN, HUB_MAIN, startProcess, type RunningProcess } from './processes.js';

const run = promisify(execFile);

export async function makeTempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ef-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface Hub {
  proc: RunningProcess;
  apiUrl: string;
  brokerUrl: string;
  httpPort: number;
  mqttPort: number;
  adminToken: string;
  dataDir: string;
}

export interface HubOptions {
  dataDir: string;
  adminToken?: string;
  httpPort?: number;
  mqttPort?: number;
  env?: Record<string, string>;
}

export async function startHub(opts: HubOptions): Promise<Hub> {
  const adminToken = opts.adminToken ?? randomBytes(32).toString('base64url');
  const proc = startProcess('hub', [HUB_MAIN], {
    EDGEFLEET_HUB_DATA_DIR: opts.dataDir,
    EDGEFLEET_HUB_HOST: '127.0.0.1',
    EDGEFLEET_HUB_HTTP_PORT: String(opts.httpPort ?? 0),
    EDGEFLEET_HUB_MQTT_PORT: String(opts.mqttPort ?? 0),
    EDGEFLEET_ADMIN_TOKEN: adminToken,
    // Variant builds only where a test opts in (opts.env).
    EDGEFLEET_AUTO_BUILD_VARIANTS: '0',
    ...opts.env,
  });
  const ready = await proc.waitForMsg('hub ready');
  const apiUrl = String(ready.apiUrl);
  const brokerUrl = String(ready.brokerUrl);
  return {
    proc,
    apiUrl,
    brokerUrl,
    httpPort: Number(new URL(apiUrl).port),
    mqttPort: Number(new URL(brokerUrl).port),
    adminToken,
    dataDir: opts.dataDir,
  };
}

/** Operator call to the hub API; throws with the body on an unexpected status. */
export async function api<T = unknown>(
  hub: Pick<Hub, 'apiUrl' | 'adminToken'>,
  method: string,
  path: string,
  body?: unknown,
  expectStatus?: number,
): Promise<T> {
  const isBytes = body instanceof Uint8Array;
  const res = await fetch(`${hub.apiUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${hub.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': isBytes ? 'application/octet-stream' : 'application/json' }),
    },
    body: body === undefined ? undefined : isBytes ? body : JSON.stringify(body),
  });
  const text = await res.text();
  const ok = expectStatus === undefined ? res.ok : res.status === expectStatus;
  if (!ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export interface AgentHandle {
  proc: RunningProcess;
  stateDir: string;
  socketPath: string;
  deviceId: string;
}

/** Runs the real `edgefleet-agent enroll` CLI and returns the device id it printed. */
export async function enrollAgent(hub: Hub, stateDir: string, name: string): Promise<string> {
  const { token } = await api<{ token: string }>(hub, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 });
  const { stdout } = await run(process.execPath, [AGENT_MAIN, 'enroll', '--hub', hub.apiUrl, '--token', token, '--name', name, '--state-dir', stateDir], {
    env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'warn' },
  });
  const match = /(dev-[A-Za-z0-9_-]+)/.exec(stdout) ?? /([A-Za-z0-9_-]{6,})\s*$/.exec(stdout.trim());
  if (!match) throw new Error(`enroll printed no device id: ${stdout}`);
  return match[1]!;
}

export async function startAgent(stateDir: string, deviceId: string, env: Record<string, string> = {}): Promise<AgentHandle> {
  const socketPath = join(stateDir, 'agent.sock');
  const proc = startProcess(`agent-${deviceId}`, [AGENT_MAIN, 'run', '--state-dir', stateDir, '--socket', socketPath], {
    EDGEFLEET_TELEMETRY_INTERVAL_MS: '300',
    ...env,
  });
  await proc.waitForMsg('agent ready');
  return { proc, stateDir, socketPath, deviceId };
}

/**
 * vitest's waitUntil (polls until truthy), naming what was awaited when it times out. A check that
 * throws counts as "not yet": processes on the other end may still be coming up.
 */
export function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 30_000): Promise<Exclude<T, false | null | undefined>> {
  const tolerant = async () => {
    try {
      return await check();
    } catch {
      return undefined;
    }
  };
  return vi.waitUntil(tolerant, { timeout: timeoutMs, interval: 100 }).then(
    (value) => value as Exclude<T, false | null | undefined>,
    (err: Error) => {
      throw new Error(`waiting for ${what}: ${err.message}`);
    },
  );
}
