import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device, WaveGates } from '@edgefleet/shared';
import { api, eventually } from './support/fleet.js';
import { jsonInfer, startInferenceLoad, type InferenceLoad } from './support/inference-load.js';
import { killAll } from './support/processes.js';
import {
  createRollout,
  describeRollout,
  devicesOf,
  reportedActive,
  servedVersion,
  startFleet,
  uploadVersion,
  waitForFleetVersion,
  waitForState,
  type Fleet,
} from './support/rollout-fleet.js';
import { castIndexModel, INDEX_MODEL, lookupIndexModel } from './support/rollout-models.js';

/**
 * Staged rollouts on ten real agents (acceptance 1 and 2): waves of 10 % / 50 % / 100 % pass with their
 * gate results in the API; then a version that passes the hub's golden check but errors on real
 * inputs halts at the error-rate gate from telemetry and is rolled back automatically.
 */
describe('rollout waves end to end', () => {
  let fleet: Fleet;
  let load: InferenceLoad | undefined;

  beforeAll(async () => {
    fleet = await startFleet({ agents: 10, namePrefix: 'wave' });
  }, 120_000);

  afterAll(async () => {
    await load?.stop();
    await killAll();
    await fleet?.removeDirs();
  });

  it('rolls a version out in waves of 10%, 50% and 100%; each wave passes with its gate results', async () => {
    const { hub, agents } = fleet;
    await uploadVersion(hub, INDEX_MODEL.name, '1', castIndexModel());
    const created = await createRollout(hub, {
      model: INDEX_MODEL.name,
      version: '1',
      target: { all: true },
      waves: [{ size: '10%' }, { size: '50%' }, { size: '100%' }],
    });
    expect(created.waves.map((w) => w.spec.size)).toEqual(['10%', '50%', '100%']);

    const done = await waitForState(hub, created.id, ['succeeded'], 60_000);
    const why = describeRollout(done);
    // Cumulative sizes of 10 devices: 1, then up to 5, then all 10.
    expect(done.waves.map((w) => w.devices.length), why).toEqual([1, 4, 5]);
    for (const wave of done.waves) {
      expect(wave.state, why).toBe('passed');
      expect(wave.endedAt, why).not.toBeNull();
      expect(wave.gates.length, why).toBeGreaterThan(0);
      const success = wave.gates.find((g) => g.gate === 'success-share');
      expect(success, why).toMatchObject({ status: 'passed', observed: 1, threshold: 1 });
      expect(success!.message, why).toMatch(/\d/);
      for (const gate of wave.gates) expect(gate.status, why).not.toBe('failed');
    }
    expect(devicesOf(done).map((d) => d.state)).toEqual(Array(10).fill('active'));
    expect(new Set(devicesOf(done).map((d) => d.deviceId))).toEqual(new Set(agents.map((a) => a.deviceId)));
    for (const d of devicesOf(done)) expect(d).toMatchObject({ from: null, to: { model: INDEX_MODEL.name, version: '1' } });
    await waitForFleetVersion(fleet, agents, INDEX_MODEL.name, '1');
  });

  it('halts a version that errors on real inputs at its error-rate gate and rolls every switched device back', async () => {
    const { hub, agents } = fleet;
    // Devices in `bad` send an index past the lookup table every other request: harmless to the cast
    // version (the baseline), an inference error on the lookup version.
    const bad = new Set<string>();
    const call = (deviceId: string) => (i: number) =>
      jsonInfer(INDEX_MODEL.name, {
        name: INDEX_MODEL.input,
        shape: [...INDEX_MODEL.shape],
        datatype: 'INT64',
        data: bad.has(deviceId) && i % 2 === 1 ? [1000, 1, 2, 3] : [i % 10, 1, 2, 3],
      });
    load = startInferenceLoad(agents.map((a) => ({ socketPath: a.socketPath, clients: 1, call: call(a.deviceId) })), 40);
    // The baseline: the hub holds telemetry with requests on version 1 from every device.
    for (const agent of agents) {
      await eventually(async () => {
        const d = await api<Device>(hub, 'GET', `/api/v1/devices/${agent.deviceId}`);
        return (d.telemetry?.models.find((m) => m.name === INDEX_MODEL.name && m.version === '1')?.requests ?? 0) > 0;
      }, `telemetry with requests on ${INDEX_MODEL.name}@1 from ${agent.deviceId}`);
    }

    await uploadVersion(hub, INDEX_MODEL.name, '2', lookupIndexModel());
    const gates: WaveGates = { maxErrorRateIncrease: 0.05, minRequests: 10 };
    const created = await createRollout(hub, {
      model: INDEX_MODEL.name,
      version: '2',
      target: { all: true },
      waves: [
        { size: '10%', bakeSec: 3, gates },
        { size: '50%', bakeSec: 3, gates },
        { size: '100%', bakeSec: 3, gates },
      ],
      autoRollback: true,
    });
    // The second wave's devices are the ones that get bad inputs; the first wave's device gets only good
    // ones, so its error-rate gate passes with numbers before the second wave's fails.
    const secondWave = created.waves[1]!.devices.map((d) => d.deviceId);
    expect(secondWave).toHaveLength(4);
    for (const id of secondWave) bad.add(id);

    const done = await waitForState(hub, created.id, ['rolled-back'], 90_000);
    const why = describeRollout(done);
    expect(done.reason, why).toMatchObject({ wave: 1, gate: 'error-rate' });
    expect(done.reason!.message, why).toMatch(/error rate/i);
    expect(done.reason!.message, why).toMatch(/0\.05/);

    const [first, second, third] = done.waves;
    expect(first!.state, why).toBe('passed');
    expect(first!.gates.find((g) => g.gate === 'error-rate'), why).toMatchObject({ status: 'passed', threshold: 0.05 });
    expect(second!.state, why).toBe('halted');
    const failedGate = second!.gates.find((g) => g.gate === 'error-rate');
    expect(failedGate, why).toMatchObject({ status: 'failed', threshold: 0.05 });
    expect(failedGate!.observed! - (failedGate!.baseline ?? 0), why).toBeGreaterThan(0.05);
    // The third wave was never assigned.
    for (const d of third!.devices) expect(['pending', 'cancelled'], why).toContain(d.state);

    // Every device that switched is back on version 1, in its report and on its socket.
    const switched = [...first!.devices, ...second!.devices];
    for (const d of switched) expect(d.state, why).toBe('rolled-back');
    await waitForFleetVersion(fleet, agents, INDEX_MODEL.name, '1');
    for (const agent of agents) {
      expect(await reportedActive(hub, agent.deviceId, INDEX_MODEL.name)).toBe('1');
      expect(await servedVersion(agent, INDEX_MODEL.name)).toBe('1');
    }

    // Back on the cast version the bad inputs are answered again (past the requests already in flight).
    await load.answered(20);
    const before = load.stats.failures.length;
    await load.answered(40);
    const stats = await load.stop();
    load = undefined;
    expect(stats.failures.slice(before), JSON.stringify(stats.failures.slice(before, before + 3))).toEqual([]);
    // The failures seen were the lookup version's, on the second wave's devices only.
    const sockets = new Set(agents.filter((a) => bad.has(a.deviceId)).map((a) => a.socketPath));
    for (const f of stats.failures) expect(sockets.has(f.socketPath), JSON.stringify(f)).toBe(true);
  });
});
