import { deviceTopic, MESSAGE_SIZE_LIMITS, type EnrollResponse } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

/** A schema-valid cmd/result whose `result` nests `depth` arrays (overflows a recursive JSON.stringify at a few thousand). */
function deepCmdResult(seq: number, depth: number): string {
  return `{"v":1,"seq":${seq},"ts":${Date.now()},"id":"c1","ok":true,"result":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

const reportedState = (extra: Record<string, unknown> = {}) => ({
  capabilities: { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 2048, cpuModel: 'test', cpuFlags: ['sse2'], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' },
  models: [],
  desiredVersion: 0,
  ts: Date.now(),
  ...extra,
});

describe('ingest: one device cannot disturb others, and every device message is bounded', () => {
  let t: TestHub;
  let a: EnrollResponse;
  let b: EnrollResponse;
  const clients: MqttClient[] = [];
  const connect = async (creds: EnrollResponse) => {
    const c = await connectDevice(t, creds);
    clients.push(c);
    return c;
  };
  const seqs = async (id: string) =>
    (await t.api<{ points: Array<{ seq: number }> }>('GET', `/api/v1/devices/${id}/telemetry?limit=1000`)).body.points.map((p) => p.seq);

  beforeAll(async () => {
    t = await startTestHub();
    a = await enrollDevice(t, { name: 'poisoner' });
    b = await enrollDevice(t, { name: 'bystander' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(async () => {
    await t.stop();
  });

  it('drops a record too deep to serialise; 20 records of another device in the same batch are stored and it stays connected', async () => {
    const ca = await connect(a);
    const cb = await connect(b);
    let bClosed = false;
    cb.on('close', () => {
      bClosed = true;
    });
    const before = structuredClone(t.hub.ingestCounters());
    const dropped = before.droppedByKind['cmd/result'] ?? 0;
    // Sent in the same tick so the broker reads them together and, before the fix, they shared one write batch.
    const acks = [
      ca.publishAsync(deviceTopic(a.deviceId, 'cmd/result'), deepCmdResult(1, 10_000), { qos: 1 }),
      ...Array.from({ length: 20 }, (_, i) => cb.publishAsync(deviceTopic(b.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(i + 1)), { qos: 1 })),
    ];
    await Promise.all(acks);
    expect(await seqs(b.deviceId)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const after = t.hub.ingestCounters();
    expect(after.droppedByKind['cmd/result']).toBe(dropped + 1);
    expect(after.storageErrors).toBe(before.storageErrors);
    expect(t.logs.some((l) => l.msg === 'invalid message dropped' && l.deviceId === a.deviceId && /deeper than/.test(String(l.error)))).toBe(true);
    expect(bClosed).toBe(false);
    expect(cb.connected && ca.connected).toBe(true);
  });

  it('drops payloads over their kind limit, counts them, stores nothing, and keeps the connection', async () => {
    const ca = await connect(a);
    const before = structuredClone(t.hub.ingestCounters());
    const pad = (n: number) => 'x'.repeat(n);
    const bigTelemetry = { ...telemetryRecord(500), models: [{ name: pad(MESSAGE_SIZE_LIMITS.telemetry), version: '1', requests: 0, errors: 0, latencyMs: { p50: 0, p90: 0, p99: 0 } }] };
    const bigEvent = { v: 1, seq: 501, ts: Date.now(), type: 'error', code: 'X', message: pad(MESSAGE_SIZE_LIMITS.events) };
    const bigReported = reportedState({ capabilities: { ...reportedState().capabilities, cpuFlags: Array.from({ length: 3000 }, (_, i) => `flag-${i}-${pad(20)}`) } });
    await ca.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(bigTelemetry), { qos: 1 });
    await ca.publishAsync(deviceTopic(a.deviceId, 'events'), JSON.stringify(bigEvent), { qos: 1 });
    await ca.publishAsync(deviceTopic(a.deviceId, 'reported'), JSON.stringify(bigReported), { qos: 1, retain: true });
    await ca.publishAsync(deviceTopic(a.deviceId, 'status'), JSON.stringify({ state: 'online', pad: pad(MESSAGE_SIZE_LIMITS.status) }), { qos: 1, retain: true });
    const after = t.hub.ingestCounters();
    expect(after.tooLarge).toBe(before.tooLarge + 4);
    expect(after.stored).toBe(before.stored);
    expect(await seqs(a.deviceId)).not.toContain(500);
    const dev = await t.api<{ capabilities: unknown }>('GET', `/api/v1/devices/${a.deviceId}`);
    expect(dev.body.capabilities).toBeNull();
    expect(ca.connected).toBe(true);
  });

  it('refuses unknown fields, absurd numbers, seq past 2^53 and ts past year 9999; nothing is stored', async () => {
    const ca = await connect(a);
    const before = structuredClone(t.hub.ingestCounters());
    const base = telemetryRecord(600);
    const bad: Array<[string, unknown]> = [
      ['extra field', { ...base, seq: 600, extra: true }],
      ['extra nested field', { ...base, seq: 601, system: { ...base.system, bogus: 1 } }],
      ['1e308', { ...base, seq: 602, system: { ...base.system, memUsedMb: 1e308 } }],
      ['cpu over 100%', { ...base, seq: 603, system: { ...base.system, cpuPercent: 250 } }],
      ['latency 1e300', { ...base, seq: 604, models: [{ name: 'm', version: '1', requests: 1, errors: 0, latencyMs: { p50: 1e300, p90: 0, p99: 0 } }] }],
      ['seq 1e300', { ...base, seq: 1e300 }],
      ['seq 2^53', { ...base, seq: 2 ** 53 }],
      ['ts 1e16', { ...base, seq: 605, ts: 1e16 }],
      ['bad epoch', { ...base, seq: 606, epoch: 'no spaces allowed' }],
    ];
    for (const [, record] of bad) await ca.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(record), { qos: 1 });
    await ca.publishAsync(deviceTopic(a.deviceId, 'reported'), JSON.stringify(reportedState({ secret: 'x' })), { qos: 1, retain: true });
    await ca.publishAsync(deviceTopic(a.deviceId, 'reported'), JSON.stringify(reportedState({ models: Array.from({ length: 300 }, (_, i) => ({ name: `m${i}`, version: '1', sha256: 'a', profile: 'fp32', active: false })) })), { qos: 1, retain: true });
    const after = t.hub.ingestCounters();
    expect(after.droppedByKind.telemetry).toBe((before.droppedByKind.telemetry ?? 0) + bad.length);
    expect(after.droppedByKind.reported).toBe((before.droppedByKind.reported ?? 0) + 2);
    expect(after.stored).toBe(before.stored);
    const stored = await seqs(a.deviceId);
    expect(stored.filter((s) => s >= 600)).toEqual([]);
    expect((await t.api<{ capabilities: unknown }>('GET', `/api/v1/devices/${a.deviceId}`)).body.capabilities).toBeNull();
    // The same device still gets a good record in.
    await ca.publishAsync(deviceTopic(a.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(700)), { qos: 1 });
    expect(await seqs(a.deviceId)).toContain(700);
  });

  it('closes a connection whose packet is past the broker maximum before buffering it, and keeps serving others', async () => {
    const ca = await connect(a);
    const cb = await connect(b);
    const closed = new Promise<void>((resolve) => ca.once('close', () => resolve()));
    const received = t.hub.ingestCounters().received;
    // 60 MB announced: the guard reads the size from the fixed header and closes before aedes buffers it.
    ca.publish(deviceTopic(a.deviceId, 'events'), Buffer.alloc(60 * 1024 * 1024, 0x20), { qos: 1 });
    await closed;
    expect(t.hub.ingestCounters().received).toBe(received);
    await eventually(() => t.logs.some((l) => l.msg === 'mqtt packet over the size limit: connection closed'), 'the oversized packet logged');
    await cb.publishAsync(deviceTopic(b.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(900)), { qos: 1 });
    expect(await seqs(b.deviceId)).toContain(900);
  });
});
