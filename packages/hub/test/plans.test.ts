import { join } from 'node:path';
import {
  deviceTopic,
  type BenchmarkArgs,
  type Capabilities,
  type CmdMessage,
  type DesiredMessage,
  type DeviceBenchmark,
  type DevicePlan,
  type EnrollResponse,
  type InstalledModel,
  type ModelVersion,
  type Rollout,
  type SignedManifest,
} from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, useTestHub, type TestHub } from './hub-harness.js';
import { seedVariants } from './seed-variants.js';

const caps = (over: Partial<Capabilities>): Capabilities => ({
  arch: 'x64',
  platform: 'linux',
  cores: 4,
  memoryMb: 8192,
  cpuModel: 'test cpu',
  cpuFlags: [],
  executionProviders: ['cpu'],
  accelerators: [],
  agentVersion: '0.1.0',
  ...over,
});
const GATEWAY = caps({ cpuFlags: ['sse4_2', 'avx2', 'avx512f', 'avx512_vnni'] });
const PI4 = caps({ arch: 'arm64', cpuFlags: ['fp', 'asimd'], memoryMb: 4096 });

/** An outside MQTT client with a device's credentials: reports capabilities, records desired documents and cmds. */
async function fakeDevice(t: TestHub, capabilities: Capabilities) {
  const creds: EnrollResponse = await enrollDevice(t);
  const client: MqttClient = await connectDevice(t, creds);
  const desired: DesiredMessage[] = [];
  const cmds: CmdMessage[] = [];
  let seq = 0;
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/desired')) desired.push(JSON.parse(payload.toString()) as DesiredMessage);
    else cmds.push(JSON.parse(payload.toString()) as CmdMessage);
  });
  await client.subscribeAsync([deviceTopic(creds.deviceId, 'desired'), deviceTopic(creds.deviceId, 'cmd')], { qos: 1 });
  const dev = {
    id: creds.deviceId,
    creds,
    desired,
    cmds,
    client,
    async report(models: InstalledModel[] = []) {
      const reported = { capabilities, models, desiredVersion: 0, ts: Date.now() };
      await client.publishAsync(deviceTopic(creds.deviceId, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
    },
    async answer(body: { id: string; ok: boolean; result?: unknown; error?: string }) {
      await client.publishAsync(deviceTopic(creds.deviceId, 'cmd/result'), JSON.stringify({ v: 1, seq: ++seq, ts: Date.now(), ...body }), { qos: 1 });
    },
    async download(sha256: string): Promise<number> {
      const res = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${sha256}`, { headers: { authorization: `Basic ${Buffer.from(`${creds.deviceId}:${creds.secret}`).toString('base64')}` } });
      await res.arrayBuffer();
      return res.status;
    },
    manifestFor: (model: string) => desired.at(-1)?.models.find((m) => m.manifest.manifest.model === model)?.manifest,
  };
  await dev.report();
  return dev;
}
type FakeDevice = Awaited<ReturnType<typeof fakeDevice>>;
const installed = (m: SignedManifest, active: boolean): InstalledModel => ({ name: m.manifest.model, version: m.manifest.version, sha256: m.manifest.sha256, profile: m.manifest.profile, active });

describe('per-device plans, benchmarks and rollouts of planned variants', () => {
  const t = useTestHub();
  let v1: ModelVersion;
  let v2: ModelVersion;
  let variants: Record<string, SignedManifest>;
  let gateway: FakeDevice;
  let pi: FakeDevice;
  let otherPi: FakeDevice;
  let thirdPi: FakeDevice;

  const plans = async (query: string) => (await t.api<{ plans: DevicePlan[] }>('GET', `/api/v1/plans?${query}`)).body.plans;
  const planOf = async (deviceId: string, version = '2') => (await plans(`model=clf&version=${version}&deviceId=${deviceId}`))[0];
  const planned = (deviceId: string, check: (p: DevicePlan) => boolean, what: string) =>
    eventually(async () => {
      const p = await planOf(deviceId);
      return p && check(p) && p;
    }, what);
  const rollout = async (body: object) => {
    const res = await t.api<Rollout>('POST', '/api/v1/rollouts', body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  };
  const rowOf = (r: Rollout, deviceId: string) => r.waves.flatMap((w) => w.devices).find((d) => d.deviceId === deviceId)!;
  const assigned = (d: FakeDevice, rolloutId: string) =>
    eventually(() => {
      const a = d.desired.at(-1)?.models.find((m) => m.manifest.manifest.model === 'clf');
      return a?.rolloutId === rolloutId && a.manifest;
    }, `${d.id} assigned by ${rolloutId}`);

  beforeAll(async () => {
    v1 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).body;
    gateway = await fakeDevice(t, GATEWAY);
    pi = await fakeDevice(t, PI4);
    otherPi = await fakeDevice(t, PI4);
    thirdPi = await fakeDevice(t, PI4);
  });
  afterAll(async () => {
    await Promise.all([gateway, pi, otherPi, thirdPi].map((d) => d?.client.endAsync()));
  });

  it('plans fp32 by default while it is the only variant, and every device runs v1', async () => {
    await eventually(async () => (await plans('model=clf&version=1')).length === 4, 'plans of v1 for four devices');
    for (const p of await plans('model=clf&version=1')) expect(p).toMatchObject({ profile: 'fp32', decidedBy: 'default' });
    const r = await rollout({ model: 'clf', version: '1', target: { deviceIds: [gateway.id, pi.id] } });
    for (const d of [gateway, pi]) {
      const m = await assigned(d, r.id);
      expect(m).toEqual(v1.manifest);
      await d.report([installed(m, true)]);
    }
    await eventually(async () => (await t.api<Rollout>('GET', `/api/v1/rollouts/${r.id}`)).body.state === 'succeeded', 'v1 rollout succeeded');
  });

  it('devices of different classes get different variants: in their plans and in a rollout', async () => {
    v2 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=2', buildMlp({ inputSize: 4, hidden: [3], outputSize: 2 }))).body;
    variants = seedVariants(t, v2, [
      { profile: 'int8-static', latencyRatio: 0.45 },
      { profile: 'int8-dynamic', latencyRatio: 0.6 },
      { profile: 'fp16', latencyRatio: 1.8 },
    ]);
    const changed = await t.api<{ plans: DevicePlan[] }>('POST', '/api/v1/plans/replan', {});
    expect(changed.status).toBe(200);
    expect(changed.body.plans.map((p) => p.version)).toEqual(['2', '2', '2', '2']);
    // Nothing new since: a second re-plan (no body: every model's latest) changes nothing.
    expect((await t.api<{ plans: DevicePlan[] }>('POST', '/api/v1/plans/replan')).body).toEqual({ plans: [] });
    expect((await t.api('POST', '/api/v1/plans/replan', { model: 'nope' })).status).toBe(404);

    const gw = (await planOf(gateway.id))!;
    expect(gw).toMatchObject({ profile: 'int8-static', decidedBy: 'rule', deviceClass: 'x86_64 avx512-vnni', sha256: variants['int8-static']!.manifest.sha256 });
    expect(gw.reason).toMatch(/int8 dot products.*0\.45x/);
    expect(gw.candidates.map((c) => c.profile)).toEqual(['fp32', 'fp16', 'int8-dynamic', 'int8-static']);
    const p = (await planOf(pi.id))!;
    expect(p).toMatchObject({ profile: 'fp32', decidedBy: 'rule', deviceClass: 'arm64 no-dotprod' });
    expect(p.candidates.find((c) => c.profile === 'int8-static')!.note).toMatch(/no int8 dot-product instructions/);

    const r = await rollout({ model: 'clf', version: '2', target: { deviceIds: [gateway.id, pi.id] } });
    expect(rowOf(r, gateway.id).to).toEqual({ model: 'clf', version: '2', profile: 'int8-static', sha256: variants['int8-static']!.manifest.sha256 });
    expect(rowOf(r, pi.id).to).toEqual({ model: 'clf', version: '2', profile: 'fp32', sha256: v2.sha256 });
    expect(await assigned(gateway, r.id)).toEqual(variants['int8-static']);
    expect(await assigned(pi, r.id)).toEqual(v2.manifest);
    // Each device may fetch its own variant, not the other's.
    expect(await gateway.download(variants['int8-static']!.manifest.sha256)).toBe(200);
    expect(await pi.download(variants['int8-static']!.manifest.sha256)).toBe(404);
    expect(await pi.download(v2.sha256)).toBe(200);
    // Reporting another variant of a version it was given installed opens nothing: the reported digest is the device's word.
    await pi.report([installed(variants['int8-static']!, false), installed(v2.manifest, true)]);
    await eventually(async () => (await t.api<{ models: unknown[] }>('GET', `/api/v1/devices/${pi.id}`)).body.models.length === 2, 'pi report stored');
    expect(await pi.download(variants['int8-static']!.manifest.sha256)).toBe(404);

    // The gateway switches to its variant; rolled back, it goes to its own `from` (v1 fp32) and may still fetch the variant it keeps installed.
    await gateway.report([installed(v1.manifest, false), installed(variants['int8-static']!, true)]);
    await eventually(async () => rowOf((await t.api<Rollout>('GET', `/api/v1/rollouts/${r.id}`)).body, gateway.id).state === 'active', 'gateway active on int8-static');
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${r.id}/rollback`)).status).toBe(200);
    await eventually(() => gateway.manifestFor('clf')?.manifest.sha256 === v1.sha256, 'gateway desired back on v1');
    await gateway.report([installed(v1.manifest, true), installed(variants['int8-static']!, false)]);
    await eventually(async () => (await t.api<{ models: unknown[] }>('GET', `/api/v1/devices/${gateway.id}`)).body.models.length === 2, 'gateway report stored');
    expect(await gateway.download(variants['int8-static']!.manifest.sha256)).toBe(200);
  });

  it('a pinned profile goes to every device; one that is not accepted is refused, naming the accepted ones', async () => {
    const refused = await t.api<{ error: string }>('POST', '/api/v1/rollouts', { model: 'clf', version: '2', target: { deviceIds: [pi.id] }, profile: 'pruned' });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('profile pruned is not an accepted variant of clf@2: accepted are fp32, fp16, int8-dynamic, int8-static');
    const r = await rollout({ model: 'clf', version: '2', target: { deviceIds: [gateway.id, pi.id] }, profile: 'int8-dynamic' });
    for (const d of [gateway, pi]) expect(rowOf(r, d.id).to.profile).toBe('int8-dynamic');
    expect(await assigned(pi, r.id)).toEqual(variants['int8-dynamic']);
    // A pin does not change what the planner would choose.
    expect((await planOf(pi.id))!.decidedBy).toBe('rule');
  });

  it('a benchmark reaches the device, lets it fetch the candidates until it expires, and its measurements decide the plan of it and its class', async () => {
    expect((await t.api('POST', '/api/v1/devices/nope/benchmarks', { model: 'clf', version: '2' })).status).toBe(404);
    expect((await t.api('POST', `/api/v1/devices/${pi.id}/benchmarks`, { model: 'clf', version: '9' })).status).toBe(404);
    const req = await t.api<{ id: string; candidates: Array<{ profile: string; sha256: string }> }>('POST', `/api/v1/devices/${pi.id}/benchmarks`, { model: 'clf', version: '2' });
    expect(req.status).toBe(202);
    expect(req.body.candidates.map((c) => c.profile)).toEqual(['fp32', 'fp16', 'int8-dynamic', 'int8-static']);
    const cmd = await eventually(() => pi.cmds.find((c) => c.id === req.body.id), 'the benchmark cmd on the device');
    expect(cmd.verb).toBe('benchmark');
    const args = cmd.args as unknown as BenchmarkArgs;
    expect(args.candidates.map((c) => c.manifest.profile)).toEqual(['fp32', 'fp16', 'int8-dynamic', 'int8-static']);
    expect(args.candidates[3]).toEqual(variants['int8-static']);
    // The candidates are the device's to fetch; another device still gets nothing new.
    expect(await pi.download(variants.fp16!.manifest.sha256)).toBe(200);
    expect(await otherPi.download(variants.fp16!.manifest.sha256)).toBe(404);

    const sha = (p: string) => req.body.candidates.find((c) => c.profile === p)!.sha256;
    await pi.answer({
      id: req.body.id,
      ok: true,
      result: {
        model: 'clf',
        version: '2',
        threads: 4,
        measurements: [
          { profile: 'fp32', sha256: sha('fp32'), ok: true, p50Ms: 2.03, p90Ms: 2.5, runs: 30 },
          { profile: 'fp16', sha256: sha('fp16'), ok: false, runs: 0, error: 'no float16 kernel for Gemm' },
          { profile: 'int8-dynamic', sha256: sha('int8-dynamic'), ok: true, p50Ms: 1.6, p90Ms: 1.9, runs: 30 },
          { profile: 'int8-static', sha256: sha('int8-static'), ok: true, p50Ms: 1.21, p90Ms: 1.4, runs: 30 },
        ],
      },
    });
    const p = await planned(pi.id, (x) => x.decidedBy === 'measurement', 'the Pi planned by measurement');
    expect(p).toMatchObject({ profile: 'int8-static', reason: 'measured on this device: int8-static p50 1.21 ms vs fp32 2.03 ms (0.60x)' });
    // The other Pi of the class was re-planned in the same pass, but one device's numbers do not decide for its class.
    expect(await planOf(otherPi.id)).toMatchObject({ profile: 'fp32', decidedBy: 'rule' });
    expect((await planOf(gateway.id))!.decidedBy).toBe('rule');
    // The request is answered: its candidates are closed again (the device fetched them all before it answered).
    expect(await pi.download(variants.fp16!.manifest.sha256)).toBe(404);

    // A second Pi measures: with two devices of the class measured, the third follows their median.
    const second = await t.api<{ id: string }>('POST', `/api/v1/devices/${otherPi.id}/benchmarks`, { model: 'clf', version: '2', profiles: ['fp32', 'int8-static'] });
    expect(second.status).toBe(202);
    await eventually(() => otherPi.cmds.some((c) => c.id === second.body.id), 'the second Pi’s benchmark cmd');
    await otherPi.answer({
      id: second.body.id,
      ok: true,
      result: {
        model: 'clf',
        version: '2',
        threads: 4,
        measurements: [
          { profile: 'fp32', sha256: sha('fp32'), ok: true, p50Ms: 2.23, runs: 30 },
          { profile: 'int8-static', sha256: sha('int8-static'), ok: true, p50Ms: 1.41, runs: 30 },
        ],
      },
    });
    const third = await eventually(async () => {
      const x = await planOf(thirdPi.id);
      return x?.decidedBy === 'measurement' && x;
    }, 'the third Pi planned by its class');
    expect(third).toMatchObject({ profile: 'int8-static', reason: 'measured on 2 other devices of class arm64 no-dotprod (median): int8-static p50 1.31 ms vs fp32 2.13 ms (0.62x)' });

    const stored = (await t.api<{ benchmarks: DeviceBenchmark[] }>('GET', `/api/v1/devices/${pi.id}/benchmarks`)).body.benchmarks;
    expect(stored.map((b) => [b.profile, b.p50Ms, b.error])).toEqual([
      ['fp16', null, 'no float16 kernel for Gemm'],
      ['fp32', 2.03, null],
      ['int8-dynamic', 1.6, null],
      ['int8-static', 1.21, null],
    ]);
  });

  it('ignores garbage, replayed, foreign and unknown results without breaking anything', async () => {
    const before = await planOf(pi.id);
    const req = await t.api<{ id: string }>('POST', `/api/v1/devices/${pi.id}/benchmarks`, { model: 'clf', version: '2', profiles: ['fp32', 'int8-dynamic'] });
    expect(req.status).toBe(202);
    await eventually(() => pi.cmds.some((c) => c.id === req.body.id), 'second cmd');
    await otherPi.answer({ id: req.body.id, ok: true, result: { model: 'clf', version: '2', threads: 1, measurements: [] } });
    await pi.answer({ id: 'bm-0000', ok: true, result: {} });
    await pi.answer({ id: req.body.id, ok: true, result: { model: 'clf', version: '2', threads: 'many', measurements: [{ p50Ms: -1 }] } });
    await pi.answer({ id: req.body.id, ok: true, result: { model: 'clf', version: '2', threads: 1, measurements: [] } });
    const ignored = () => t.logs.filter((l) => String(l.msg).startsWith('benchmark result ignored'));
    await eventually(() => ignored().length >= 4, 'four results ignored');
    expect(ignored().map((l) => String(l.msg))).toEqual([
      expect.stringMatching(/was sent to .*, not this device/),
      'benchmark result ignored: no such benchmark request',
      expect.stringMatching(/does not match BenchmarkResult at "\/threads"/),
      'benchmark result ignored: the request is already failed',
    ]);
    expect(await planOf(pi.id)).toEqual(before);
    // The device and the hub carry on: a new benchmark still goes through, and opens its candidate until it expires.
    const open = await t.api<{ id: string }>('POST', `/api/v1/devices/${pi.id}/benchmarks`, { model: 'clf', version: '2', profiles: ['fp16'] });
    expect(open.status).toBe(202);
    expect(await pi.download(variants.fp16!.manifest.sha256)).toBe(200);
    const db = new Database(join(t.dataDir, 'hub.db'));
    try {
      db.prepare('UPDATE benchmark_requests SET expires_at = ? WHERE id = ?').run(Date.now() - 1, open.body.id);
    } finally {
      db.close();
    }
    expect(await pi.download(variants.fp16!.manifest.sha256)).toBe(404);
    await pi.client.endAsync();
    await eventually(async () => !(await t.api<{ online: boolean }>('GET', `/api/v1/devices/${pi.id}`)).body.online, 'the Pi offline');
    const offline = await t.api<{ error: string }>('POST', `/api/v1/devices/${pi.id}/benchmarks`, { model: 'clf', version: '2' });
    expect(offline.status).toBe(409);
    expect(offline.body.error).toMatch(/is offline: a benchmark cmd is not retained/);
  });

  it('re-plans every device when a build of the latest version finishes', async () => {
    const v3 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=3', buildMlp({ inputSize: 4, hidden: [6], outputSize: 2 }))).body;
    const v3variants = seedVariants(t, v3, [{ profile: 'int8-dynamic', latencyRatio: 0.5 }]);
    t.hub.bus.emit('variants', { model: 'clf', version: '3', state: 'done', progress: { done: 1, total: 1, profile: null, step: null } });
    const gw = await eventually(async () => (await plans(`model=clf&version=3&deviceId=${gateway.id}`))[0], 'the gateway planned for v3');
    expect(gw).toMatchObject({ profile: 'int8-dynamic', decidedBy: 'rule', sha256: v3variants['int8-dynamic']!.manifest.sha256 });
    await eventually(async () => (await plans('model=clf&version=3')).length === 4, 'every device planned for v3');
  });
});
