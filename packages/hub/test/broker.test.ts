import { DEVICE_PUBLISH_KINDS, deviceTopic, type EnrollResponse } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

describe('broker: auth, ACL and ingest', () => {
  let t: TestHub;
  let a: EnrollResponse;
  let b: EnrollResponse;
  const clients: MqttClient[] = [];
  const connect = async (creds: EnrollResponse, clientId?: string) => {
    const c = await connectDevice(t, creds, clientId);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await startTestHub();
    a = await enrollDevice(t, { name: 'a' });
    b = await enrollDevice(t, { name: 'b' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(async () => {
    await t.stop();
  });

  const points = async (id: string) => (await t.api<{ points: Array<{ seq: number }> }>('GET', `/api/v1/devices/${id}/telemetry?limit=100`)).body.points;

  it('refuses bad credentials with a CONNACK error and tracks presence of good ones', async () => {
    await expect(connectDevice(t, { deviceId: a.deviceId, secret: 'wrong' })).rejects.toThrow(/Bad username or password/i);
    await expect(connectDevice(t, { deviceId: 'dev-unknown', secret: a.secret })).rejects.toThrow(/Bad username or password/i);
    const c = await connect(a, 'any-client-id');
    await eventually(async () => (await t.api<{ online: boolean }>('GET', `/api/v1/devices/${a.deviceId}`)).body.online, 'a online');
    await c.endAsync();
    await eventually(async () => !(await t.api<{ online: boolean }>('GET', `/api/v1/devices/${a.deviceId}`)).body.online, 'a offline');
  });

  it("refuses a client id that is another device's id and keeps that device connected", async () => {
    const ca = await connect(a);
    let closed = false;
    ca.on('close', () => {
      closed = true;
    });
    await expect(connectDevice(t, b, a.deviceId)).rejects.toThrow(/Identifier rejected/i);
    expect(t.logs.some((l) => l.clientId === a.deviceId && l.username === b.deviceId)).toBe(true);
    // A's own connection still serves: a SUBACK round trip after the refused attempt.
    const granted = await ca.subscribeAsync(deviceTopic(a.deviceId, 'cmd'), { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    expect(closed).toBe(false);
    expect(ca.connected).toBe(true);
    // With its own credentials, any client id that is not another device's id is fine.
    const outside = await connect(b, `${b.deviceId}-tool`);
    expect(outside.connected).toBe(true);
  });

  it('stores a record before PUBACK and ignores a duplicate seq', async () => {
    const c = await connect(a);
    await c.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(1)), { qos: 1 });
    // PUBACK came back: the record is committed, no waiting needed.
    expect((await points(a.deviceId)).map((p) => p.seq)).toEqual([1]);
    await c.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify({ ...telemetryRecord(1), system: { ...telemetryRecord(1).system, cpuPercent: 99 } }), { qos: 1 });
    await c.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(2)), { qos: 1 });
    const stored = await t.api<{ points: Array<{ seq: number; system: { cpuPercent: number } }> }>('GET', `/api/v1/devices/${a.deviceId}/telemetry`);
    expect(stored.body.points.map((p) => [p.seq, p.system.cpuPercent])).toEqual([
      [1, 10],
      [2, 10],
    ]);
    expect(t.hub.ingestCounters().duplicates).toBeGreaterThanOrEqual(1);
  });

  it('drops garbage, counts it, keeps the connection and keeps serving', async () => {
    const c = await connect(a);
    const before = t.hub.ingestCounters().dropped;
    await c.publishAsync(deviceTopic(a.deviceId, 'telemetry'), 'not json {', { qos: 1 });
    await c.publishAsync(deviceTopic(a.deviceId, 'events'), JSON.stringify({ v: 1, seq: 3 }), { qos: 1 });
    await c.publishAsync(deviceTopic(a.deviceId, 'reported'), JSON.stringify({ nope: true }), { qos: 1, retain: true });
    expect(t.hub.ingestCounters().dropped).toBe(before + 3);
    expect(t.logs.filter((l) => l.msg === 'invalid message dropped').length).toBeGreaterThanOrEqual(3);
    expect(c.connected).toBe(true);
    await c.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(10)), { qos: 1 });
    expect((await points(a.deviceId)).map((p) => p.seq)).toContain(10);
    const health = await t.api<{ ingest: { dropped: number } }>('GET', '/api/v1/health');
    expect(health.body.ingest.dropped).toBe(before + 3);
  });

  it('drops garbage on every device-publishable kind, counts each, and keeps serving', async () => {
    const c = await connect(a);
    const before = { ...t.hub.ingestCounters().droppedByKind };
    const dropped = t.hub.ingestCounters().dropped;
    for (const kind of DEVICE_PUBLISH_KINDS) {
      for (const garbage of ['not json {', JSON.stringify({ v: 1, seq: 'x', nope: true }), '']) {
        await c.publishAsync(deviceTopic(a.deviceId, kind), garbage, { qos: 1, retain: kind === 'status' || kind === 'reported' });
      }
    }
    const counters = t.hub.ingestCounters();
    for (const kind of DEVICE_PUBLISH_KINDS) expect(counters.droppedByKind[kind], kind).toBe((before[kind] ?? 0) + 3);
    expect(counters.dropped).toBe(dropped + 3 * DEVICE_PUBLISH_KINDS.length);
    expect(c.connected).toBe(true);
    await c.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(77)), { qos: 1 });
    expect((await points(a.deviceId)).map((p) => p.seq)).toContain(77);
  });

  it("refuses a publish on another device's tree (connection closed, nothing stored)", async () => {
    const c = await connect(a);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.publish(deviceTopic(b.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(5)), { qos: 1 });
    await closed;
    expect(await points(b.deviceId)).toHaveLength(0);
  });

  it('refuses publishing desired and subscribing outside its own desired/cmd', async () => {
    const c = await connect(a);
    const own = await c.subscribeAsync([deviceTopic(a.deviceId, 'desired'), deviceTopic(a.deviceId, 'cmd')], { qos: 1 });
    expect(own.map((g) => g.qos)).toEqual([1, 1]);
    for (const topic of [deviceTopic(b.deviceId, 'desired'), deviceTopic(a.deviceId, 'telemetry'), 'ef/v1/dev/+/desired', '#']) {
      // SUBACK 128: mqtt.js reports the refused grant as an error; the connection stays up.
      const err = await c.subscribeAsync(topic, { qos: 1 }).then(() => null, (e: { packet?: { granted?: number[] } }) => e);
      expect(err?.packet?.granted).toEqual([128]);
    }
    expect(c.connected).toBe(true);

    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.publish(deviceTopic(a.deviceId, 'desired'), JSON.stringify({ version: 99, models: [] }), { qos: 1, retain: true });
    await closed;
  });

  it('updates the device from its retained reported state', async () => {
    const c = await connect(b);
    const reported = {
      capabilities: { arch: 'arm64', platform: 'linux', cores: 4, memoryMb: 4096, cpuModel: 'A72', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' },
      models: [],
      desiredVersion: 0,
      ts: Date.now(),
    };
    await c.publishAsync(deviceTopic(b.deviceId, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
    const dev = await t.api<{ capabilities: { arch: string } | null }>('GET', `/api/v1/devices/${b.deviceId}`);
    expect(dev.body.capabilities?.arch).toBe('arm64');
  });

  it('closes and refuses a revoked device', async () => {
    const extra = await enrollDevice(t, { name: 'to-revoke' });
    const c = await connect(extra);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const res = await t.api<{ revoked: boolean }>('POST', `/api/v1/devices/${extra.deviceId}/revoke`);
    expect(res.body.revoked).toBe(true);
    await closed;
    await expect(connectDevice(t, extra)).rejects.toThrow(/Bad username or password/i);
  });
});
