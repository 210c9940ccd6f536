import { deviceTopic, type DeploymentEvent, type DesiredMessage, type EnrollResponse, type InstalledModel, type ModelAssignment, type ModelStats, type Rollout } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { expect } from 'vitest';
import { connectDevice, enrollDevice, eventually, telemetryRecord, type TestHub } from './hub-harness.js';

const CAPABILITIES = { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 2048, cpuModel: 'x', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' };

/**
 * A device simulated on the real MQTT protocol for rollout tests: it records the desired documents
 * it receives and publishes deployment events and reports when the test tells it to, so a test
 * controls each step (and what goes wrong) instead of waiting on a real agent.
 */
export interface SimDevice {
  readonly id: string;
  readonly creds: EnrollResponse;
  /** Every desired document received, in order. */
  readonly docs: DesiredMessage[];
  latest(): DesiredMessage | undefined;
  /** This model's assignment in the latest document. */
  assignment(model: string): ModelAssignment | undefined;
  /** Waits until the latest document assigns this model from this rollout (and matches `check`). */
  assigned(model: string, rolloutId: string, check?: (a: ModelAssignment) => boolean): Promise<ModelAssignment>;
  event(a: ModelAssignment, phase: DeploymentEvent['phase'], extra?: Partial<DeploymentEvent>): Promise<void>;
  report(models: InstalledModel[]): Promise<void>;
  /** A telemetry record with these per-model counters. */
  telemetry(models: ModelStats[]): Promise<void>;
  /** Switches to the assignment: an `active` event and a report with it active (and `previous` kept). */
  switchTo(a: ModelAssignment, previous?: ModelAssignment): Promise<void>;
  connect(t: TestHub): Promise<void>;
  close(): Promise<void>;
}

export const installedOf = (a: ModelAssignment, active: boolean): InstalledModel => {
  const m = a.manifest.manifest;
  return { name: m.model, version: m.version, sha256: m.sha256, profile: m.profile, active };
};

export async function simDevice(t: TestHub, creds: EnrollResponse): Promise<SimDevice> {
  let client: MqttClient;
  let seq = 0;
  const docs: DesiredMessage[] = [];
  const latest = () => docs[docs.length - 1];
  const sim: SimDevice = {
    id: creds.deviceId,
    creds,
    docs,
    latest,
    assignment: (model) => latest()?.models.find((m) => m.manifest.manifest.model === model),
    assigned(model, rolloutId, check = () => true) {
      return eventually(() => {
        const a = sim.assignment(model);
        return a?.rolloutId === rolloutId && check(a) && a;
      }, `${creds.deviceId} assigned ${model} by ${rolloutId}`);
    },
    async event(a, phase, extra = {}) {
      const m = a.manifest.manifest;
      const ev = { v: 1, seq: ++seq, ts: Date.now(), type: 'deployment', rolloutId: a.rolloutId, model: m.model, version: m.version, sha256: m.sha256, phase, ...extra };
      await client.publishAsync(deviceTopic(creds.deviceId, 'events'), JSON.stringify(ev), { qos: 1 });
    },
    async report(models) {
      const reported = { capabilities: CAPABILITIES, models, desiredVersion: latest()?.version ?? 0, ts: Date.now() };
      await client.publishAsync(deviceTopic(creds.deviceId, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
    },
    async telemetry(models) {
      await client.publishAsync(deviceTopic(creds.deviceId, 'telemetry'), JSON.stringify({ ...telemetryRecord(++seq), models }), { qos: 1 });
    },
    async switchTo(a, previous) {
      await sim.event(a, 'active');
      await sim.report([...(previous ? [installedOf(previous, false)] : []), installedOf(a, true)]);
    },
    async connect(hub) {
      client = await connectDevice(hub, creds);
      client.on('message', (_topic, payload) => docs.push(JSON.parse(payload.toString()) as DesiredMessage));
      await client.subscribeAsync(deviceTopic(creds.deviceId, 'desired'), { qos: 1 });
    },
    async close() {
      await client.endAsync();
    },
  };
  await sim.connect(t);
  return sim;
}

/**
 * The rollout routes and the fleet set-up that rollout tests call on a test hub. `t` is only read
 * when a function runs, so this can be made in a describe beside useTestHub.
 */
export function rolloutTestApi(t: TestHub) {
  const create = (body: object) => t.api<Rollout>('POST', '/api/v1/rollouts', body);
  /** Creates a rollout that must be accepted. */
  const created = async (body: object): Promise<Rollout> => {
    const res = await create(body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  };
  const get = async (id: string) => (await t.api<Rollout>('GET', `/api/v1/rollouts/${id}`)).body;
  const until = (id: string, check: (r: Rollout) => boolean, what: string) =>
    eventually(async () => {
      const r = await get(id);
      return check(r) && r;
    }, what);
  return {
    create,
    created,
    get,
    until,
    rowOf: (r: Rollout, deviceId: string) => r.waves.flatMap((w) => w.devices).find((d) => d.deviceId === deviceId)!,

    /** Enrolls and connects `n` simulated devices, online in the hub, sorted by id as waves order them (sims[0] is assigned first). */
    async devices(n: number, labels: Record<string, string> = {}): Promise<SimDevice[]> {
      const sims: SimDevice[] = [];
      for (let i = 0; i < n; i++) sims.push(await simDevice(t, await enrollDevice(t, { name: `d${i}`, labels })));
      await eventually(async () => {
        const all = (await t.api<{ devices: Array<{ id: string; online: boolean }> }>('GET', '/api/v1/devices')).body.devices;
        return sims.every((s) => all.find((d) => d.id === s.id)?.online);
      }, 'devices online');
      return sims.sort((a, b) => (a.id < b.id ? -1 : 1));
    },

    /** Puts every device on clf@1 through a one-wave rollout, so a later version has somewhere to roll back to. */
    async onV1(sims: SimDevice[]): Promise<ModelAssignment[]> {
      const r = await created({ model: 'clf', version: '1', target: { deviceIds: sims.map((s) => s.id) } });
      const given = await Promise.all(sims.map((s) => s.assigned('clf', r.id)));
      await Promise.all(sims.map((s, i) => s.switchTo(given[i]!)));
      await until(r.id, (x) => x.state === 'succeeded', 'v1 everywhere');
      return given;
    },
  };
}
