import { deviceTopic, type EnrollResponse, type Manifest, type ModelVersion, type Rollout } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { mayDownload } from '../src/models/artifact-access.js';
import { connectDevice, enrollDevice, eventually, useTestHub } from './hub-harness.js';
import { identityModel } from './test-models.js';

const capabilities = { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 2048, cpuModel: 'x', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' };

describe('artifact access: a device downloads only what the hub assigned to it', () => {
  const t = useTestHub();
  let a: EnrollResponse;
  let b: EnrollResponse;
  const versions: Record<string, Manifest> = {};

  const status = async (d: EnrollResponse, sha256: string) => {
    const res = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${sha256}`, {
      headers: { authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.secret}`).toString('base64')}` },
    });
    const body = res.status === 200 ? undefined : ((await res.json()) as { code: string; error: string });
    if (res.status === 200) await res.arrayBuffer();
    return { status: res.status, body };
  };
  const files = (m: Manifest) => [m.sha256, m.golden.ref!.sha256];
  const rollout = async (version: string, d: EnrollResponse) =>
    expect((await t.api('POST', '/api/v1/rollouts', { model: 'clf', version, target: { deviceIds: [d.deviceId] } })).status).toBe(201);
  const report = async (d: EnrollResponse, models: Array<{ version: string; active: boolean }>) => {
    const c = await connectDevice(t, d);
    const reported = {
      capabilities,
      models: models.map((m) => ({ name: 'clf', version: m.version, sha256: versions[m.version]!.sha256, profile: 'fp32', active: m.active })),
      desiredVersion: 0,
      ts: Date.now(),
    };
    await c.publishAsync(deviceTopic(d.deviceId, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
    await c.endAsync();
    await eventually(async () => {
      const dev = await t.api<{ models: unknown[] }>('GET', `/api/v1/devices/${d.deviceId}`);
      return dev.body.models.length === models.length;
    }, `reported models of ${d.deviceId}`);
  };

  beforeAll(async () => {
    a = await enrollDevice(t, { name: 'a' });
    b = await enrollDevice(t, { name: 'b' });
    for (const [version, n] of [['1', 20_000], ['2', 20_001]] as const) {
      const res = await t.api<ModelVersion>('POST', `/api/v1/models/clf/versions?version=${version}`, identityModel(n));
      expect(res.status).toBe(201);
      versions[version] = res.body.manifest.manifest;
      expect(versions[version]!.golden.ref).toBeDefined();
    }
    expect((await t.api('POST', '/api/v1/models/unassigned/versions?version=1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).status).toBe(201);
  });
  it('serves the assigned model and golden file; another device gets the same 404 as for a missing artifact', async () => {
    await rollout('1', a);
    for (const sha of files(versions['1']!)) {
      expect((await status(a, sha)).status).toBe(200);
      const other = await status(b, sha);
      expect(other.status).toBe(404);
      expect(other.body?.code).toBe('NOT_FOUND');
      const missing = await status(b, 'f'.repeat(64));
      expect(missing.body!.error.replace('f'.repeat(64), sha)).toBe(other.body!.error);
    }
    const unassigned = (await t.api<{ versions: ModelVersion[] }>('GET', '/api/v1/models/unassigned/versions')).body.versions[0]!;
    expect((await status(a, unassigned.sha256)).status).toBe(404);
  });

  it('keeps the previous version open while the device reports it installed, and only then', async () => {
    await rollout('2', a);
    for (const sha of files(versions['2']!)) expect((await status(a, sha)).status).toBe(200);
    // v1 is no longer desired and not reported: closed.
    for (const sha of files(versions['1']!)) expect((await status(a, sha)).status).toBe(404);

    await report(a, [{ version: '2', active: true }, { version: '1', active: false }]);
    for (const sha of files(versions['1']!)) expect((await status(a, sha)).status).toBe(200);

    // A device's own claim to have a version the hub never assigned to it opens nothing.
    await report(b, [{ version: '1', active: true }]);
    for (const sha of files(versions['1']!)) expect((await status(b, sha)).status).toBe(404);
  });

  it('opens nothing for a device whose wave has not been reached, even when it claims the version', async () => {
    const res = await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=3', identityModel(20_002));
    expect(res.status).toBe(201);
    versions['3'] = res.body.manifest.manifest;
    const c = await enrollDevice(t, { name: 'c' });
    const d = await enrollDevice(t, { name: 'd' });
    const created = await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'clf', version: '3', target: { deviceIds: [c.deviceId, d.deviceId] }, waves: [{ size: 1 }, { size: '100%' }] });
    expect(created.status).toBe(201);
    const [first, later] = created.body.waves.map((w) => w.devices[0]!);
    expect([first!.state, later!.state]).toEqual(['assigned', 'pending']);
    const byId = (id: string) => (id === c.deviceId ? c : d);

    // The device of the later wave reports v3 as if it had it: its row exists, but nothing was assigned to it yet.
    await report(byId(later!.deviceId), [{ version: '3', active: true }]);
    for (const sha of files(versions['3']!)) {
      expect((await status(byId(later!.deviceId), sha)).status).toBe(404);
      expect((await status(byId(first!.deviceId), sha)).status).toBe(200);
    }
  });

  it('keeps the version a rollback returned the device to open after a newer rollout', async () => {
    const e = await enrollDevice(t, { name: 'e' });
    await report(e, [{ version: '1', active: true }]);
    const id = (await t.api<Rollout>('POST', '/api/v1/rollouts', { model: 'clf', version: '2', target: { deviceIds: [e.deviceId] } })).body.id;
    const rolled = await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/rollback`);
    // Its report already shows v1: back at once, and the rollback's desired document gave it v1.
    expect(rolled.body.waves[0]!.devices[0]).toMatchObject({ state: 'rolled-back', from: { version: '1' } });
    await rollout('3', e);
    for (const sha of files(versions['1']!)) expect((await status(e, sha)).status).toBe(200);
  });
});

describe('mayDownload (pure policy)', () => {
  const manifest = (sha256: string, extra: Partial<Manifest> = {}): Manifest => ({
    v: 1,
    model: 'm',
    version: '1',
    profile: 'fp32',
    sha256,
    size: 1,
    inputs: [],
    outputs: [],
    golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } },
    createdAt: '',
    ...extra,
  });
  const sha = (c: string) => c.repeat(64);

  it('covers the transfer copy and golden file of a desired manifest', () => {
    const m = manifest(sha('a'), {
      transfer: { encoding: 'gzip', size: 1, sha256: sha('b') },
      golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 }, ref: { sha256: sha('c'), size: 1 } },
    });
    const src = { desired: () => ({ version: 1, models: [{ manifest: { manifest: m, signature: 'x' } }] }), reportedModels: () => [], assignedManifest: () => undefined };
    for (const c of ['a', 'b', 'c']) expect(mayDownload(src, 'd', sha(c))).toBe(true);
    expect(mayDownload(src, 'd', sha('e'))).toBe(false);
  });

  it('ignores a reported version whose digest differs from the assigned one', () => {
    const src = {
      desired: () => undefined,
      reportedModels: () => [{ name: 'm', version: '1', sha256: sha('f'), profile: 'fp32', active: true }],
      assignedManifest: () => manifest(sha('a')),
    };
    expect(mayDownload(src, 'd', sha('a'))).toBe(false);
    expect(mayDownload(src, 'd', sha('f'))).toBe(false);
  });
});
