import { join } from 'node:path';
import Database from 'better-sqlite3';
import { deviceTopic } from '@edgefleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

describe('device state writes (presence, reported) are batched off the delivery path', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.stop();
  });

  it('commits presence for many devices connecting at once and tells the bus only after the commit', { timeout: 60_000 }, async () => {
    // More than the broker lets handshake at once (256), so some connections wait for their turn.
    const devices: Awaited<ReturnType<typeof enrollDevice>>[] = [];
    for (let i = 0; i < 300; i += 50) devices.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => enrollDevice(t, { name: `storm-${i + j}` })))));
    const reader = new Database(join(t.dataDir, 'hub.db'), { readonly: true });
    const onlineInDb = reader.prepare('SELECT online FROM devices WHERE id = ?').pluck();
    const seenOnline: Array<{ id: string; committed: unknown }> = [];
    // A second connection sees only committed data: each event must find its row already online.
    const unsubscribe = t.hub.bus.subscribe((name, payload) => {
      if (name === 'device' && (payload as { change: string }).change === 'online') {
        const id = (payload as { deviceId: string }).deviceId;
        seenOnline.push({ id, committed: onlineInDb.get(id) });
      }
    });
    try {
      const clients = await Promise.all(devices.map((d) => connectDevice(t, d)));
      await eventually(() => seenOnline.length >= devices.length, 'every device reported online');
      expect(seenOnline.every((e) => e.committed === 1)).toBe(true);
      expect(new Set(seenOnline.map((e) => e.id))).toEqual(new Set(devices.map((d) => d.deviceId)));
      await Promise.all(clients.map((c) => c.endAsync()));
      await eventually(() => devices.every((d) => onlineInDb.get(d.deviceId) === 0), 'every device offline in the database');
    } finally {
      unsubscribe();
      reader.close();
    }
  });

  it('keeps serving when a presence or reported write fails: counted, logged, the device refused only its reported', async () => {
    const dev = await enrollDevice(t, { name: 'unwritable' });
    const admin = new Database(join(t.dataDir, 'hub.db'));
    // A real SQLite failure on exactly the writes under test (as a full disk or a corrupt page would make).
    admin.exec(`CREATE TRIGGER fail_device_state BEFORE UPDATE OF online, capabilities ON devices WHEN NEW.id = '${dev.deviceId}'
                BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END`);
    try {
      const before = t.hub.ingestCounters().storageErrors;
      const c = await connectDevice(t, dev);
      await eventually(() => t.hub.ingestCounters().storageErrors > before, 'the presence failure counted');
      expect(t.logs.some((l) => l.msg === 'ingest batch failed' && String((l.err as { message?: string })?.message).includes('simulated storage failure'))).toBe(true);
      // Records still go in, and the hub still answers.
      await c.publishAsync(deviceTopic(dev.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(1)), { qos: 1 });
      expect((await t.api('GET', '/api/v1/devices')).status).toBe(200);
      // A reported state that cannot be stored is refused (not acknowledged), so the agent sends it again later.
      const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
      const reported = {
        capabilities: { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 1024, cpuModel: 't', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0' },
        models: [],
        desiredVersion: 0,
        ts: Date.now(),
      };
      c.publish(deviceTopic(dev.deviceId, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
      await closed;
      await c.endAsync(true);
    } finally {
      admin.exec('DROP TRIGGER fail_device_state');
      admin.close();
    }
    const again = await connectDevice(t, dev);
    await eventually(async () => (await t.api<{ online: boolean }>('GET', `/api/v1/devices/${dev.deviceId}`)).body.online, 'online once writes work again');
    await again.endAsync();
  });
});
