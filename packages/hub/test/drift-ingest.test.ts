import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { deviceTopic, MESSAGE_SIZE_LIMITS, type EnrollResponse } from '@edgefleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasTool } from '../../../test/support/tools.js';
import type { DriftRejections } from '../src/broker/drift-admission.js';
import { inMemoryBaselines, testBaseline, windowSummary } from './drift-fixtures.js';
import { connectDevice, enrollDevice, eventually, useTestHub } from './hub-harness.js';

/**
 * Drift records at ingest, through a real broker: each is checked against its version's baseline
 * before it joins a write batch, and what cannot be scored is dropped and counted by reason.
 */
const v1 = testBaseline();
const v2 = testBaseline(50);
const baselines = inMemoryBaselines([
  { model: 'clf', version: '1', baseline: v1 },
  { model: 'clf', version: '2', baseline: v2 },
]);

describe('drift records at ingest', () => {
  const t = useTestHub({ hub: { driftBaselines: baselines } });
  let creds: EnrollResponse;
  let client: MqttClient;
  let db: Database.Database;
  let seq = 1;

  const body = (over: Record<string, unknown> = {}) => ({ v: 1, seq: seq++, ts: Date.now(), model: 'clf', version: '1', summary: windowSummary(v1), ...over });
  const publish = (payload: unknown) => client.publishAsync(deviceTopic(creds.deviceId, 'drift'), typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
  const stored = () => {
    t.hub.flushIngest();
    return (db.prepare('SELECT count(*) AS n FROM drift WHERE device_id = ?').get(creds.deviceId) as { n: number }).n;
  };
  const rejected = () => ({ ...t.hub.ingestCounters().driftRejected });
  /** Publishes, then expects nothing stored and exactly one more drop under `reason`. */
  async function expectDropped(payload: unknown, reason: keyof DriftRejections): Promise<void> {
    const before = rejected();
    const rows = stored();
    await publish(payload);
    expect(client.connected).toBe(true);
    expect(rejected()).toEqual({ ...before, [reason]: before[reason] + 1 });
    expect(stored()).toBe(rows);
  }

  beforeAll(async () => {
    creds = await enrollDevice(t);
    client = await connectDevice(t, creds);
    db = new Database(join(t.dataDir, 'hub.db'), { readonly: true, fileMustExist: true });
  });
  afterAll(async () => {
    await client?.endAsync();
    db?.close();
  });

  it('stores a summary that fits its version baseline', async () => {
    const message = body();
    await publish(message);
    await eventually(() => stored() === 1, 'the drift record stored');
    const row = db.prepare('SELECT model, payload FROM drift WHERE device_id = ?').get(creds.deviceId) as { model: string; payload: string };
    expect(row.model).toBe('clf');
    expect(JSON.parse(row.payload)).toEqual(message);
  });

  it('drops and counts summaries that cannot be scored, by reason', async () => {
    const summary = windowSummary(v1);
    await expectDropped(body({ summary: { ...summary, counts: summary.counts.slice(1) } }), 'mismatch');
    await expectDropped(body({ summary: { ...summary, counts: summary.counts.map((c, i) => (i === 0 ? -1 : c)) } }), 'invalid');
    await expectDropped(body({ model: 'nope' }), 'unknownVersion');
    await expectDropped(body({ version: '9' }), 'unknownVersion');
    await expectDropped(body({ summary: windowSummary(v2) }), 'mismatch');
    await expectDropped(body({ summary: { ...summary, window: { start: 2000, end: 1000 } } }), 'invalid');
    await expectDropped('{"v":1,"seq":', 'invalid');
    await expectDropped(JSON.stringify(body()) + ' '.repeat(MESSAGE_SIZE_LIMITS.drift), 'tooLarge');
    // A step sum beyond what its bin's count allows (an inner bin adds at most ±15 per value).
    await expectDropped(body({ summary: { ...summary, sums: summary.sums.map((s, i) => (i === 1 ? s + 10_000 : s)) } }), 'mismatch');
    expect(t.hub.ingestCounters().droppedByKind.drift).toBe(9);
  });

  it('drops and counts as mismatch a device inflating its counts or sending inconsistent totals', async () => {
    const summary = windowSummary(v1);
    const dropsBefore = t.hub.ingestCounters().droppedByKind.drift ?? 0;
    // Every count ×1e9, step sums with them: schema-valid and self-consistent, but one device would swamp the fleet window.
    const scale = (list: number[]) => list.map((c) => c * 1e9);
    await expectDropped(body({ summary: { ...summary, counts: scale(summary.counts), sums: scale(summary.sums), missing: scale(summary.missing) } }), 'mismatch');
    // The first feature all zero while the others count 50 samples each.
    const firstBins = v1.features[0]?.kind === 'numeric' ? v1.features[0].edges.length + 1 : 0;
    const zeroed = (list: number[]) => list.map((c, i) => (i < firstBins ? 0 : c));
    await expectDropped(body({ summary: { ...summary, counts: zeroed(summary.counts), sums: zeroed(summary.sums) } }), 'mismatch');
    expect(t.hub.ingestCounters().droppedByKind.drift).toBe(dropsBefore + 2);
  });

  it('logs a device dropped drift at most once a minute, with the reason', () => {
    const lines = t.logs.filter((l) => l.msg === 'drift record dropped' && l.deviceId === creds.deviceId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ reason: 'mismatch', error: expect.stringMatching(/counts: \d+ expected by the baseline/) });
  });

  it('keeps serving: a valid summary after the rejected ones is stored, also on the other version', async () => {
    const rows = stored();
    await publish(body());
    await publish(body({ version: '2', summary: windowSummary(v2) }));
    await eventually(() => stored() === rows + 2, 'both later drift records stored');
  });

  describe.skipIf(!hasTool('mosquitto_pub', 'mosquitto-clients'))('from mosquitto_pub', () => {
    const pub = (message: string) => {
      const port = new URL(t.hub.brokerUrl).port;
      const args = ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-u', creds.deviceId, '-P', creds.secret, '-i', `outside-${creds.deviceId}`, '-q', '1', '-t', deviceTopic(creds.deviceId, 'drift'), '-m', message];
      return promisify(execFile)('mosquitto_pub', args);
    };

    it('drops a garbage summary and stores a valid one', async () => {
      const before = rejected();
      const rows = stored();
      await pub(JSON.stringify(body({ summary: { garbage: true } })));
      expect(rejected().invalid).toBe(before.invalid + 1);
      await pub(JSON.stringify(body()));
      await eventually(() => stored() === rows + 1, 'the outside client drift record stored');
    });
  });
});
