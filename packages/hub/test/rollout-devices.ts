import { deviceTopic, type DeploymentEvent, type DesiredMessage, type EnrollResponse, type InstalledModel, type ModelAssignment, type ModelStats } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { connectDevice, eventually, telemetryRecord, type TestHub } from './hub-harness.js';

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
