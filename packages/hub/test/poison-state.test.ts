import { join } from 'node:path';
import { deviceTopic, type Device, type EnrollResponse } from '@edgefleet/shared';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStream } from './event-stream.js';
import { connectDevice, enrollDevice, eventually, telemetryRecord, useTestHub, type TestHub } from './hub-harness.js';

/** Beyond year 275760: `new Date(1e16).toISOString()` throws RangeError. */
const POISON_TS = 1e16;

/** Writes straight into the hub's SQLite file, as an old hub version or a hand edit would have. */
function editDatabase(t: TestHub, edit: (db: Database.Database) => void): void {
  const db = new Database(join(t.dataDir, 'hub.db'));
  try {
    edit(db);
  } finally {
    db.close();
  }
}

function storePoisonTelemetry(t: TestHub, deviceId: string, seq: number): void {
  const record = { ...telemetryRecord(seq), ts: POISON_TS };
  editDatabase(t, (db) => db.prepare('INSERT INTO telemetry (device_id, seq, ts, payload) VALUES (?, ?, ?, ?)').run(deviceId, seq, POISON_TS, JSON.stringify(record)));
}

describe('stored state that cannot be rendered', () => {
  const t = useTestHub();
  let good: EnrollResponse;
  let poisoned: EnrollResponse;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    good = await enrollDevice(t, { name: 'good', labels: { site: 'a' } });
    poisoned = await enrollDevice(t, { name: 'poisoned', labels: { site: 'a' } });
    const c = await connectDevice(t, good);
    clients.push(c);
    await c.publishAsync(deviceTopic(good.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(1)), { qos: 1 });
    const p = await connectDevice(t, poisoned);
    await p.publishAsync(deviceTopic(poisoned.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(1)), { qos: 1 });
    await p.endAsync();
    // The newest row of the poisoned device, as a hub without the ts bound stored it.
    storePoisonTelemetry(t, poisoned.deviceId, 2);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync()));
  });

  it('lists the fleet with 200 and shows the error on that one device', async () => {
    const list = await t.api<{ devices: Device[] }>('GET', '/api/v1/devices');
    expect(list.status).toBe(200);
    const byId = new Map(list.body.devices.map((d) => [d.id, d]));
    expect(byId.get(good.deviceId)?.telemetry?.system.cpuPercent).toBe(10);
    expect(byId.get(good.deviceId)?.error).toBeUndefined();
    const bad = byId.get(poisoned.deviceId)!;
    expect(bad.name).toBe('poisoned');
    expect(bad.telemetry).toBeNull();
    expect(bad.error).toMatch(/telemetry \(seq 2\) has ts 10000000000000000, expected an integer 0\.\.253402300799999/);

    const one = await t.api<Device>('GET', `/api/v1/devices/${poisoned.deviceId}`);
    expect(one.status).toBe(200);
    expect(one.body.error).toBe(bad.error);
    // Its history leaves the unreadable record out instead of failing.
    const history = await t.api<{ points: Array<{ seq: number }> }>('GET', `/api/v1/devices/${poisoned.deviceId}/telemetry`);
    expect(history.status).toBe(200);
    expect(history.body.points.map((p) => p.seq)).toEqual([1]);
    const filtered = await t.api<{ devices: Device[] }>('GET', '/api/v1/devices?label=site=a');
    expect(filtered.body.devices.map((d) => d.id).sort()).toEqual([good.deviceId, poisoned.deviceId].sort());
  });

  it('names every damaged column and still shows the rest of the device', async () => {
    const damaged = await enrollDevice(t, { name: 'damaged' });
    editDatabase(t, (db) =>
      db.prepare("UPDATE devices SET labels = 'not json', capabilities = '{\"arch\": 5}', reported_version = 'x' WHERE id = ?").run(damaged.deviceId),
    );
    const list = await t.api<{ devices: Device[] }>('GET', '/api/v1/devices');
    expect(list.status).toBe(200);
    const d = list.body.devices.find((x) => x.id === damaged.deviceId)!;
    expect(d).toMatchObject({ name: 'damaged', labels: {}, capabilities: null, reportedVersion: 0 });
    expect(d.error).toMatch(/stored labels is not JSON/);
    expect(d.error).toMatch(/stored capabilities does not match its schema/);
    expect(d.error).toMatch(/stored reported_version x is not an integer/);
  });

  it('keeps an open dashboard stream and the hub alive when that device has an event', async () => {
    const stream = await openEventStream(t);
    try {
      // Connecting emits a `device` event, whose frame carries the device as stored.
      const p = await connectDevice(t, poisoned);
      clients.push(p);
      const frame = await eventually(
        () => stream.frames().map((f) => (f.event === 'device' ? (JSON.parse(f.data) as Device) : null)).find((d) => d?.id === poisoned.deviceId),
        'the poisoned device in the event stream',
      );
      expect(frame.online).toBe(true);
      expect(frame.error).toMatch(/has ts 10000000000000000/);

      // The same stream still carries other devices' events, and the API still answers.
      await clients[0]!.publishAsync(deviceTopic(good.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(2)), { qos: 1 });
      await eventually(
        () => stream.frames().some((f) => f.event === 'telemetry' && (JSON.parse(f.data) as { deviceId: string; seq: number }).seq === 2),
        'telemetry of the good device in the event stream',
      );
      expect((await t.api('GET', '/api/v1/devices')).status).toBe(200);
    } finally {
      stream.close();
    }
  });

  it('a throwing event-bus subscriber neither ends the hub nor keeps the event from other subscribers', async () => {
    const seen: string[] = [];
    const unsubscribeThrower = t.hub.bus.subscribe(() => {
      throw new Error('subscriber bug');
    });
    const unsubscribeRecorder = t.hub.bus.subscribe((name, payload) => {
      if (name === 'device') seen.push((payload as { deviceId: string; change: string }).change);
    });
    try {
      const res = await t.api<Device>('PUT', `/api/v1/devices/${good.deviceId}/labels`, { labels: { site: 'b' } });
      expect(res.status).toBe(200);
      expect(res.body.labels).toEqual({ site: 'b' });
      expect(seen).toContain('labels');
      expect(t.logs.some((l) => l.msg === 'hub event listener failed; other listeners still get the event' && l.event === 'device')).toBe(true);

      // Broker callbacks emit too (presence): a device can still connect, and the hub keeps serving.
      const again = await connectDevice(t, good, `${good.deviceId}-second`);
      await again.endAsync();
      expect((await t.api('GET', '/api/v1/devices')).status).toBe(200);
    } finally {
      unsubscribeThrower();
      unsubscribeRecorder();
    }
  });
});
