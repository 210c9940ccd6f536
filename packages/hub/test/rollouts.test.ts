import { deviceTopic, type DesiredMessage, type EnrollResponse, type ModelVersion, type Rollout } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, startTestHub, type TestHub } from './hub-harness.js';

function nextDesired(c: MqttClient, deviceId: string, minVersion: number): Promise<DesiredMessage> {
  return new Promise((resolve, reject) => {
    const topic = deviceTopic(deviceId, 'desired');
    const onMessage = (t: string, payload: Buffer) => {
      const doc = JSON.parse(payload.toString()) as DesiredMessage;
      if (t === topic && doc.version >= minVersion) {
        c.off('message', onMessage);
        resolve(doc);
      }
    };
    c.on('message', onMessage);
    c.subscribe(topic, { qos: 1 }, (err) => err && reject(err));
  });
}

describe('rollouts and restart', () => {
  let dir: string;
  let t: TestHub;
  let a: EnrollResponse;
  let b: EnrollResponse;
  let v1: ModelVersion;
  let other: ModelVersion;
  let rollout: Rollout;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-rollout-'));
    t = await startTestHub({ dataDir: dir });
    a = await enrollDevice(t, { name: 'a', labels: { ring: 'canary' } });
    b = await enrollDevice(t, { name: 'b' });
    v1 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).body;
    other = (await t.api<ModelVersion>('POST', '/api/v1/models/other/versions?version=1', buildMlp({ inputSize: 3, hidden: [], outputSize: 2 }))).body;
  });
  afterAll(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses unknown models and empty targets', async () => {
    expect((await t.api('POST', '/api/v1/rollouts', { model: 'nope', version: '1', target: { all: true } })).status).toBe(404);
    expect((await t.api('POST', '/api/v1/rollouts', { model: 'clf', version: '1', target: { labels: { ring: 'none' } } })).status).toBe(400);
  });

  it('writes a retained desired document per target device, keeping other models', async () => {
    const first = await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'other', version: '1', target: { deviceIds: [a.deviceId] } });
    expect(first.status).toBe(201);
    const res = await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'clf', version: '1', target: { labels: { ring: 'canary' } } });
    expect(res.status).toBe(201);
    rollout = res.body;
    expect(rollout).toMatchObject({ model: 'clf', version: '1', state: 'in-progress', counts: { pending: 1 } });
    expect(rollout.waves[0]!.devices.map((d) => d.deviceId)).toEqual([a.deviceId]);

    // Connecting afterwards still gets it: retained.
    const c = await connectDevice(t, a);
    const doc = await nextDesired(c, a.deviceId, 2);
    expect(doc.version).toBe(2);
    expect(doc.models.map((m) => [m.manifest.manifest.model, m.rolloutId])).toEqual([
      ['other', first.body.id],
      ['clf', rollout.id],
    ]);
    expect(doc.models[1]!.manifest).toEqual(v1.manifest);
    expect(other.sha256).not.toBe(v1.sha256);
    await c.endAsync();
  });

  it('follows deployment events and reported state to success', async () => {
    const c = await connectDevice(t, a);
    const event = (seq: number, phase: string, extra: object = {}) =>
      c.publishAsync(
        deviceTopic(a.deviceId, 'events'),
        JSON.stringify({ v: 1, seq, ts: Date.now(), type: 'deployment', rolloutId: rollout.id, model: 'clf', version: '1', sha256: v1.sha256, phase, ...extra }),
        { qos: 1 },
      );
    await event(1, 'downloading', { progress: 0.5 });
    let r = (await t.api<Rollout>('GET', `/api/v1/rollouts/${rollout.id}`)).body;
    expect(r.waves[0]!.devices[0]).toMatchObject({ state: 'downloading', progress: 0.5 });
    await event(2, 'health-check');
    await event(1, 'downloading'); // replayed duplicate: ignored
    r = (await t.api<Rollout>('GET', `/api/v1/rollouts/${rollout.id}`)).body;
    expect(r.waves[0]!.devices[0]!.state).toBe('health-check');

    const reported = {
      capabilities: { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 2048, cpuModel: 'x', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' },
      models: [{ name: 'clf', version: '1', sha256: v1.sha256, profile: 'fp32', active: true }],
      desiredVersion: 2,
      ts: Date.now(),
    };
    await c.publishAsync(deviceTopic(a.deviceId, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
    r = (await t.api<Rollout>('GET', `/api/v1/rollouts/${rollout.id}`)).body;
    expect(r.state).toBe('succeeded');
    expect(r.counts).toEqual({ active: 1 });
    await c.endAsync();
  });

  it('marks a failing device and the rollout failed', async () => {
    const res = await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'clf', version: '1', target: { deviceIds: [b.deviceId] } });
    const c = await connectDevice(t, b);
    await c.publishAsync(
      deviceTopic(b.deviceId, 'events'),
      JSON.stringify({ v: 1, seq: 1, ts: Date.now(), type: 'deployment', rolloutId: res.body.id, model: 'clf', version: '1', sha256: v1.sha256, phase: 'failed', code: 'GOLDEN_MISMATCH', message: 'output differs' }),
      { qos: 1 },
    );
    const r = (await t.api<Rollout>('GET', `/api/v1/rollouts/${res.body.id}`)).body;
    expect(r.state).toBe('failed');
    expect(r.waves[0]!.devices[0]!.error).toMatch(/GOLDEN_MISMATCH: output differs/);
    await c.endAsync();
  });

  it('keeps devices, models and rollouts across a restart and republishes desired retained', async () => {
    await t.restart();
    const devices = (await t.api<{ devices: Array<{ id: string; online: boolean }> }>('GET', '/api/v1/devices')).body.devices;
    expect(devices.map((d) => d.id).sort()).toEqual([a.deviceId, b.deviceId].sort());
    expect(devices.every((d) => !d.online)).toBe(true);
    expect((await t.api<{ versions: ModelVersion[] }>('GET', '/api/v1/models/clf/versions')).body.versions[0]!.sha256).toBe(v1.sha256);
    expect((await t.api<Rollout>('GET', `/api/v1/rollouts/${rollout.id}`)).body.state).toBe('succeeded');

    const c = await connectDevice(t, a);
    const doc = await nextDesired(c, a.deviceId, 2);
    expect(doc.version).toBe(2);
    expect(doc.models.map((m) => m.manifest.manifest.model)).toEqual(['other', 'clf']);
    await eventually(async () => (await t.api<{ online: boolean }>('GET', `/api/v1/devices/${a.deviceId}`)).body.online, 'online after restart');
    await c.endAsync();
  });

  it('keeps a superseded device row failed when a late event names the old rollout', async () => {
    const d = await enrollDevice(t, { name: 'd' });
    const old = (await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'clf', version: '1', target: { deviceIds: [d.deviceId] } })).body;
    const newer = (await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'clf', version: '1', target: { deviceIds: [d.deviceId] } })).body;
    let r = (await t.api<Rollout>('GET', `/api/v1/rollouts/${old.id}`)).body;
    expect(r.waves[0]!.devices[0]).toMatchObject({ state: 'failed', error: `superseded by rollout ${newer.id}` });

    const c = await connectDevice(t, d);
    await c.publishAsync(
      deviceTopic(d.deviceId, 'events'),
      JSON.stringify({ v: 1, seq: 1, ts: Date.now(), type: 'deployment', rolloutId: old.id, model: 'clf', version: '1', sha256: v1.sha256, phase: 'active' }),
      { qos: 1 },
    );
    r = (await t.api<Rollout>('GET', `/api/v1/rollouts/${old.id}`)).body;
    expect(r.state).toBe('failed');
    expect(r.waves[0]!.devices[0]).toMatchObject({ state: 'failed', error: `superseded by rollout ${newer.id}` });
    expect((await t.api<Rollout>('GET', `/api/v1/rollouts/${newer.id}`)).body.waves[0]!.devices[0]!.state).toBe('pending');
    await c.endAsync();
  });
});
