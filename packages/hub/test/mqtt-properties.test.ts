import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { decodeMessage, DEVICE_PUBLISH_KINDS, deviceTopic, type TopicKind } from '@edgefleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driftRejection } from '../src/broker/drift-admission.js';
import { databaseDigest } from './database-digest.js';
import { inMemoryBaselines, testBaseline, windowSummary } from './drift-fixtures.js';
import { connectDevice, enrollDevice, eventually, telemetryRecord, useTestHub } from './hub-harness.js';

/**
 * Random and malformed payloads on every topic kind a device may publish, through a real broker:
 * each publish is acknowledged, the connection stays up, and a payload the schema refuses is
 * dropped and counted with nothing stored.
 */

/** Drift records are admitted against their version's baseline: the valid body's summary fits this one. */
const BASELINE = testBaseline();
const BASELINES = inMemoryBaselines([{ model: 'm', version: '1', baseline: BASELINE }]);

/** Whether ingest stores `payload`: it decodes and, for drift, fits its version's baseline. */
function admissible(kind: TopicKind, payload: Buffer): boolean {
  if (kind !== 'drift') return decodeMessage(kind, payload).ok;
  const decoded = decodeMessage('drift', payload);
  return decoded.ok && driftRejection(BASELINES, decoded.value) === null;
}

/** The tables a device's publishes write to. */
const STATE_TABLES = ['devices', 'telemetry', 'events', 'drift', 'cmd_results'];

function validBody(kind: TopicKind, seq: number): Record<string, unknown> {
  const envelope = { v: 1, seq, ts: Date.now() };
  switch (kind) {
    case 'telemetry':
      return telemetryRecord(seq);
    case 'events':
      return { ...envelope, type: 'error', code: 'X', message: 'm' };
    case 'drift':
      return { ...envelope, model: 'm', version: '1', summary: windowSummary(BASELINE, 20) };
    case 'cmd/result':
      return { ...envelope, id: 'c1', ok: true };
    case 'status':
      return { state: 'online', ts: Date.now() };
    case 'reported':
      return {
        capabilities: { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 1000, cpuModel: 'c', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0' },
        models: [],
        desiredVersion: 0,
        ts: Date.now(),
      };
    default:
      throw new Error(`${kind} is not published by devices`);
  }
}

/** Replaces one value somewhere in `value` (depth-first pick by index) with `replacement`. */
function mutate(value: unknown, pick: number, replacement: unknown): unknown {
  let n = pick;
  const walk = (v: unknown): unknown => {
    if (n-- === 0) return replacement;
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value);
}

const nasty = fc.oneof(
  fc.constantFrom(1e16, 1e308, -1, 2 ** 53, 1e300, -0, 0.5, '', null, true, [], {}, 'x'.repeat(100_000)),
  fc.jsonValue({ maxDepth: 3 }),
);

const payloadFor = (kind: TopicKind, seq: () => number) =>
  fc.oneof(
    fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
    fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v))),
    fc.tuple(fc.nat(40), nasty).map(([pick, bad]) => Buffer.from(JSON.stringify(mutate(validBody(kind, seq()), pick, bad)))),
    fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), nasty).map(([key, extra]) => Buffer.from(JSON.stringify({ ...validBody(kind, seq()), [key]: extra }))),
    fc.constant(null).map(() => Buffer.from(JSON.stringify(validBody(kind, seq())))),
    // Nesting this deep overflows the stack of a recursive JSON.stringify: built as text.
    fc.integer({ min: 1000, max: 300_000 }).map((depth) => {
      const body = JSON.stringify({ ...validBody(kind, seq()), deep: 0 });
      return Buffer.from(body.replace('"deep":0', `"deep":${'['.repeat(depth)}${']'.repeat(depth)}`));
    }),
  );

describe('MQTT ingest under random and malformed payloads', () => {
  const t = useTestHub({ hub: { driftBaselines: BASELINES } });
  let client: MqttClient;
  let deviceId: string;
  let db: Database.Database;
  let seq = 1;

  beforeAll(async () => {
    const creds = await enrollDevice(t);
    deviceId = creds.deviceId;
    client = await connectDevice(t, creds);
    db = new Database(join(t.dataDir, 'hub.db'), { readonly: true, fileMustExist: true });
    await eventually(async () => (await t.api<{ online: boolean }>('GET', `/api/v1/devices/${deviceId}`)).body.online, 'the device to be online');
  });

  afterAll(async () => {
    client?.end(true);
    db?.close();
  });

  it('stores a valid drift record (its summary fits the version baseline)', async () => {
    const count = () => {
      t.hub.flushIngest();
      return (db.prepare('SELECT count(*) AS n FROM drift WHERE device_id = ?').get(deviceId) as { n: number }).n;
    };
    const before = count();
    await client.publishAsync(deviceTopic(deviceId, 'drift'), JSON.stringify(validBody('drift', seq++)), { qos: 1 });
    await eventually(() => count() === before + 1, 'the drift record stored');
  });

  for (const kind of DEVICE_PUBLISH_KINDS) {
    it(`${kind}: every publish is acknowledged; rejected ones are dropped, counted, and store nothing`, async () => {
      const topic = deviceTopic(deviceId, kind);
      await fc.assert(
        fc.asyncProperty(payloadFor(kind, () => seq++), async (payload) => {
          const valid = admissible(kind, payload);
          t.hub.flushIngest();
          const before = databaseDigest(db, STATE_TABLES);
          const dropped = t.hub.ingestCounters().dropped;
          const driftRejected = Object.values(t.hub.ingestCounters().driftRejected).reduce((a, b) => a + b, 0);
          await client.publishAsync(topic, payload, { qos: 1 });
          expect(client.connected, `${kind} payload ${payload.subarray(0, 80).toString()} closed the connection`).toBe(true);
          if (!valid) {
            expect(t.hub.ingestCounters().dropped, `${kind} payload ${payload.subarray(0, 80).toString()} was not counted as dropped`).toBe(dropped + 1);
            const rejectedNow = Object.values(t.hub.ingestCounters().driftRejected).reduce((a, b) => a + b, 0);
            expect(rejectedNow, `${kind} payload ${payload.subarray(0, 80).toString()}: drift drops are counted by reason`).toBe(driftRejected + (kind === 'drift' ? 1 : 0));
            t.hub.flushIngest();
            expect(databaseDigest(db, STATE_TABLES), `${kind} payload ${payload.subarray(0, 80).toString()} was rejected but changed stored state`).toBe(before);
          }
        }),
        { numRuns: 60 },
      );
      const devices = await t.api<{ devices: unknown[] }>('GET', '/api/v1/devices');
      expect(devices.status).toBe(200);
    });
  }
});
