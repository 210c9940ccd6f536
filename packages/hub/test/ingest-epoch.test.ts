import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { deviceTopic, type EnrollResponse } from '@edgefleet/shared';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordRepo, type DeviceRecord } from '../src/records/record-repo.js';
import { openDatabase } from '../src/store/database.js';
import { sql as m001 } from '../src/store/migrations/001-init.js';
import { connectDevice, enrollDevice, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

const HISTORY = 20;
const EPOCH_A = 'epochAAAA1111';
const EPOCH_B = 'epochBBBB2222';

describe('record identity: (device, epoch, seq)', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ config: { telemetryHistory: HISTORY } });
  });
  afterAll(async () => {
    await t.stop();
  });
  const seqsOf = async (id: string) =>
    (await t.api<{ points: Array<{ seq: number }> }>('GET', `/api/v1/devices/${id}/telemetry?limit=1000`)).body.points.map((p) => p.seq);

  it('stores the records of a replaced agent database (new epoch, seq from 1) and counts the new epoch', async () => {
    const dev: EnrollResponse = await enrollDevice(t, { name: 'lost-db' });
    const c = await connectDevice(t, dev);
    const topic = deviceTopic(dev.deviceId, 'telemetry');
    const before = structuredClone(t.hub.ingestCounters());
    // Past the history bound, so the old epoch has a pruned floor well above the new epoch's seqs.
    const oldTs = (seq: number) => 1_700_000_000_000 + seq * 1000;
    for (let seq = 1; seq <= 100; seq++) await c.publishAsync(topic, JSON.stringify({ ...telemetryRecord(seq), ts: oldTs(seq), epoch: EPOCH_A }), { qos: 1 });
    await c.publishAsync(deviceTopic(dev.deviceId, 'events'), JSON.stringify({ v: 1, epoch: EPOCH_A, seq: 101, ts: Date.now(), type: 'error', code: 'X', message: 'before' }), { qos: 1 });
    // The agent database is lost: a new epoch, seq restarting at 1.
    const newTs = (seq: number) => 1_800_000_000_000 + seq * 1000;
    for (let seq = 1; seq <= 5; seq++) await c.publishAsync(topic, JSON.stringify({ ...telemetryRecord(seq), ts: newTs(seq), epoch: EPOCH_B }), { qos: 1 });
    await c.publishAsync(deviceTopic(dev.deviceId, 'events'), JSON.stringify({ v: 1, epoch: EPOCH_B, seq: 6, ts: Date.now(), type: 'error', code: 'X', message: 'after' }), { qos: 1 });

    const after = t.hub.ingestCounters();
    expect(after.stored - before.stored).toBe(100 + 1 + 5 + 1);
    expect(after.duplicates).toBe(before.duplicates);
    expect(after.newEpochs).toBe(before.newEpochs + 1);
    const warning = t.logs.find((l) => l.msg?.toString().includes('new epoch') && l.deviceId === dev.deviceId);
    expect(warning).toMatchObject({ oldEpoch: EPOCH_A, newEpoch: EPOCH_B });
    // Newest by arrival: the new epoch's records are the latest, after the old epoch's.
    expect((await seqsOf(dev.deviceId)).slice(-5)).toEqual([1, 2, 3, 4, 5]);
    const device = await t.api<{ telemetry: { system: unknown } | null }>('GET', `/api/v1/devices/${dev.deviceId}`);
    expect(device.body.telemetry).not.toBeNull();

    // A replay within the new epoch is still a duplicate, and a replay of a pruned old-epoch record stays out.
    await c.publishAsync(topic, JSON.stringify({ ...telemetryRecord(3), ts: newTs(3), epoch: EPOCH_B }), { qos: 1 });
    await c.publishAsync(topic, JSON.stringify({ ...telemetryRecord(1), ts: oldTs(1), epoch: EPOCH_A }), { qos: 1 });
    expect(t.hub.ingestCounters().duplicates).toBe(before.duplicates + 2);
    expect(t.hub.ingestCounters().seqRegressions).toBe(before.seqRegressions);
    expect(t.hub.ingestCounters().newEpochs).toBe(before.newEpochs + 1);
    // A restored old copy of that database makes new records under pruned identities: not stored, but counted.
    await c.publishAsync(topic, JSON.stringify({ ...telemetryRecord(2), ts: oldTs(5000), epoch: EPOCH_A }), { qos: 1 });
    expect(t.hub.ingestCounters().seqRegressions).toBe(before.seqRegressions + 1);
    const health = await t.api<{ ingest: { newEpochs: number; seqRegressions: number } }>('GET', '/api/v1/health');
    expect(health.body.ingest).toMatchObject({ newEpochs: before.newEpochs + 1, seqRegressions: before.seqRegressions + 1 });
    await c.endAsync();
  });

  it('counts and logs a seq reused within an epoch with a different record (a restored agent database)', async () => {
    const dev = await enrollDevice(t, { name: 'restored-db' });
    const c = await connectDevice(t, dev);
    const topic = deviceTopic(dev.deviceId, 'events');
    const event = (seq: number, ts: number) => JSON.stringify({ v: 1, epoch: EPOCH_A, seq, ts, type: 'error', code: 'X', message: `at ${ts}` });
    const before = structuredClone(t.hub.ingestCounters());
    await c.publishAsync(topic, event(1, 1_000), { qos: 1 });
    await c.publishAsync(topic, event(1, 1_000), { qos: 1 }); // a replay: same record
    await c.publishAsync(topic, event(1, 2_000), { qos: 1 }); // same identity, another record
    const after = t.hub.ingestCounters();
    expect(after.stored).toBe(before.stored + 1);
    expect(after.seqRegressions).toBe(before.seqRegressions + 1);
    expect(t.logs.some((l) => l.deviceId === dev.deviceId && l.seq === 1 && String(l.msg).includes('seq went back'))).toBe(true);
    await c.endAsync();
  });
});

describe('migration 002: existing records get the empty epoch', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-m002-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps rows and the pruned floor, and still takes an old replay for a duplicate', () => {
    const file = join(dir, 'hub.db');
    const old = new Database(file);
    old.exec(m001);
    old.exec('CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    old.prepare("INSERT INTO migrations VALUES (1, '001-init', '2026-01-01')").run();
    old.prepare("INSERT INTO devices (id, name, secret_sha256, enrolled_at, telemetry_floor) VALUES ('d1', 'd1', 'x', '2026-01-01', 4)").run();
    const rec = telemetryRecord(0);
    for (const seq of [5, 6, 7]) old.prepare('INSERT INTO telemetry (device_id, seq, ts, payload) VALUES (?, ?, ?, ?)').run('d1', seq, 1000 + seq, JSON.stringify({ ...rec, seq }));
    old.close();

    const db = openDatabase(file, pino({ level: 'silent' }), { allowEmpty: true });
    try {
      const repo = createRecordRepo(db, 1000);
      expect(repo.telemetryHistory('d1', 10).map((p) => p.seq)).toEqual([5, 6, 7]);
      const legacy = (seq: number, ts = 1000 + seq): DeviceRecord => {
        const message = { ...rec, seq, ts };
        return { deviceId: 'd1', kind: 'telemetry', message, payload: JSON.stringify(message) };
      };
      // An agent without an epoch replays: 6 is stored already, 3 is below the migrated floor, 8 is new.
      expect(repo.insertBatch([legacy(6), legacy(3), legacy(8)]).outcomes).toEqual(['duplicate', 'duplicate', 'stored']);
      const fresh = { ...rec, seq: 1, epoch: EPOCH_A };
      const r = repo.insertBatch([{ deviceId: 'd1', kind: 'telemetry', message: fresh, payload: JSON.stringify(fresh) }]);
      expect(r.outcomes).toEqual(['stored']);
      expect(r.epochChanges).toEqual([{ deviceId: 'd1', from: '', to: EPOCH_A }]);
    } finally {
      db.close();
    }
  });
});
