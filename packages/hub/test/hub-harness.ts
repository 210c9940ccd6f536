import { afterAll, afterEach, beforeAll, beforeEach, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { EnrollResponse } from '@edgefleet/shared';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { createHub, type Hub } from '../src/app.js';
import { DEFAULT_CONFIG, type HubConfig } from '../src/config.js';

export interface TestHub {
  hub: Hub;
  dataDir: string;
  adminToken: string;
  logs: Array<Record<string, unknown>>;
  api<T = unknown>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T; headers: Headers }>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A real hub in-process: temp data dir, SQLite, aedes and Fastify on loopback ports the OS picks. */
export async function startTestHub(
  opts: { dataDir?: string; adminToken?: string; config?: Partial<HubConfig>; hub?: Omit<NonNullable<Parameters<typeof createHub>[1]>, 'log'> } = {},
): Promise<TestHub> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'ef-hub-test-')));
  const adminToken = opts.adminToken ?? randomBytes(32).toString('base64url');
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const make = () =>
    // Variant builds only where a test opts in: they would start a build worker in every file that uploads a model.
    createHub({ ...DEFAULT_CONFIG, autoBuildVariants: false, ...opts.config, dataDir, host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken }, { ...opts.hub, log: pino({ level: 'info' }, sink) });
  const t: TestHub = {
    hub: make(),
    dataDir,
    adminToken,
    logs,
    async api(method, path, body, headers = {}) {
      const isBytes = body instanceof Uint8Array;
      const res = await fetch(`${t.hub.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { 'content-type': isBytes ? 'application/octet-stream' : 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : isBytes ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body: parsed as never, headers: res.headers };
    },
    async restart() {
      await t.hub.stop();
      t.hub = make();
      await t.hub.start();
    },
    async stop() {
      await t.hub.stop();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  await t.hub.start();
  return t;
}

/**
 * Starts a test hub before the tests of the enclosing describe and stops it after them (with `each`,
 * a fresh hub per test). What it returns stands for the hub of the moment, so hooks registered after
 * this call and the tests use it as they would the TestHub itself, without a `let` and hook pair.
 */
export function useTestHub(opts: Parameters<typeof startTestHub>[0] = {}, { each = false } = {}): TestHub {
  let current: TestHub | undefined;
  (each ? beforeEach : beforeAll)(async () => {
    current = await startTestHub(opts);
  });
  (each ? afterEach : afterAll)(async () => {
    await current?.stop();
    current = undefined;
  });
  return new Proxy({} as TestHub, {
    get(_target, key) {
      if (!current) throw new Error(`the test hub is not running here (reading "${String(key)}"); use it inside hooks and tests of its describe`);
      return Reflect.get(current, key);
    },
  });
}

export async function enrollDevice(t: TestHub, body: { name?: string; labels?: Record<string, string> } = {}): Promise<EnrollResponse> {
  const token = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 });
  const res = await t.api<EnrollResponse>('POST', '/api/v1/enroll', { token: token.body.token, ...body });
  if (res.status !== 201) throw new Error(`enroll failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Connects as a device with the real mqtt client (MQTT 3.1.1, which is all aedes speaks). */
export function connectDevice(t: TestHub, creds: { deviceId: string; secret: string }, clientId = creds.deviceId): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(t.hub.brokerUrl, {
      protocolVersion: 4,
      clientId,
      username: creds.deviceId,
      password: creds.secret,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** vitest's waitUntil (polls until truthy), naming what was awaited when it times out. */
export function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<Exclude<T, false | null | undefined>> {
  return vi.waitUntil(check, { timeout: timeoutMs, interval: 20 }).then(
    (value) => value as Exclude<T, false | null | undefined>,
    (err: Error) => {
      throw new Error(`waiting for ${what}: ${err.message}`);
    },
  );
}

export function telemetryRecord(seq: number) {
  return {
    v: 1 as const,
    seq,
    ts: Date.now(),
    system: { cpuPercent: 10, memUsedMb: 100, memTotalMb: 1000, temperatureC: null, diskUsedPercent: 5, agentRssMb: 40, loadAvg1: 0.1 },
    models: [],
  };
}
