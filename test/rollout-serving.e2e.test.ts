import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from './support/fleet.js';
import { killAll } from './support/processes.js';
import { binaryInfer, jsonInfer, startInferenceLoad, type InferenceLoad, type InferCall } from './support/inference-load.js';
import {
  createRollout,
  describeRollout,
  devicesOf,
  restartAgent,
  rolloutAction,
  servedVersion,
  startFleet,
  uploadVersion,
  waitForFleetVersion,
  waitForRollout,
  waitForState,
  type Fleet,
} from './support/rollout-fleet.js';
import { SERVING_MODEL, servingModel } from './support/rollout-models.js';
import { unixRequest } from './support/unix-http.js';

const MODEL = SERVING_MODEL.name;

/** Alternates JSON and binary requests with inputs that vary per request. */
function servingCall(i: number): InferCall {
  const data = Float32Array.from({ length: SERVING_MODEL.features }, (_, k) => Math.sin(i * 0.7 + k));
  const shape = [1, SERVING_MODEL.features];
  return i % 2 === 0
    ? jsonInfer(MODEL, { name: SERVING_MODEL.input, shape, datatype: 'FP32', data: Array.from(data) })
    : binaryInfer(MODEL, { name: SERVING_MODEL.input, shape, data }, SERVING_MODEL.output);
}

/**
 * Serving through rollouts (acceptance 5 and 6): three real agents under a steady load of socket
 * requests — three concurrent clients each, JSON and binary — through a shadow phase and a switch, a
 * rollback, a switch deferred by a local update lock, and a rollout with one agent offline. Not one
 * request may fail.
 */
describe('rollout serving end to end', () => {
  let fleet: Fleet;
  let load: InferenceLoad | undefined;
  /** The shadowed rollout of version 2, rolled back by the next test. */
  let switchedRolloutId: string;

  const startLoad = (agents: readonly AgentHandle[]) => startInferenceLoad(agents.map((a) => ({ socketPath: a.socketPath, clients: 3, call: servingCall })));
  const expectNoFailures = () => {
    const failures = load!.stats.failures;
    expect(failures, `${failures.length} failed of ${load!.stats.requests}: ${JSON.stringify(failures.slice(0, 5))}`).toEqual([]);
  };

  beforeAll(async () => {
    fleet = await startFleet({ agents: 3, namePrefix: 'serve' });
    await uploadVersion(fleet.hub, MODEL, '1', servingModel(1));
    const first = await createRollout(fleet.hub, { model: MODEL, version: '1', target: { all: true } });
    await waitForState(fleet.hub, first.id, ['succeeded']);
    await waitForFleetVersion(fleet, fleet.agents, MODEL, '1');
    load = startLoad(fleet.agents);
    await load.answered(30);
  }, 120_000);

  afterAll(async () => {
    await load?.stop();
    await killAll();
    await fleet?.removeDirs();
  });

  it('switches after a shadow phase that reports agreement on every device, with no failed request', async () => {
    await uploadVersion(fleet.hub, MODEL, '2', servingModel(2));
    const created = await createRollout(fleet.hub, { model: MODEL, version: '2', target: { all: true }, shadow: { sampleRate: 1, minSamples: 20 } });
    switchedRolloutId = created.id;
    const done = await waitForState(fleet.hub, created.id, ['succeeded'], 60_000);
    const why = describeRollout(done);
    for (const d of devicesOf(done)) {
      expect(d.state, why).toBe('active');
      expect(d.shadow, why).not.toBeNull();
      expect(d.shadow!.samples, why).toBeGreaterThanOrEqual(20);
      expect(d.shadow!.agreement, why).toBeGreaterThanOrEqual(0);
      expect(d.shadow!.agreement, why).toBeLessThanOrEqual(1);
      expect(d.shadow!.candidateP50Ms, why).toBeGreaterThan(0);
    }
    await waitForFleetVersion(fleet, fleet.agents, MODEL, '2');
    await load!.answered(30);
    expect(load!.stats.versions['2'] ?? 0).toBeGreaterThan(0);
    expectNoFailures();
  });

  it('rolls the fleet back to the previous version on request, with no failed request', async () => {
    const requested = await rolloutAction(fleet.hub, switchedRolloutId, 'rollback');
    expect(['rolling-back', 'rolled-back']).toContain(requested.state);
    const done = await waitForState(fleet.hub, switchedRolloutId, ['rolled-back'], 60_000);
    for (const d of devicesOf(done)) expect(d.state, describeRollout(done)).toBe('rolled-back');
    await waitForFleetVersion(fleet, fleet.agents, MODEL, '1');
    await load!.answered(30);
    expectNoFailures();
  });

  it('defers a switch while a local application holds the update lock, and switches once it is released', async () => {
    const [locked, ...others] = fleet.agents as [AgentHandle, ...AgentHandle[]];
    const acquired = await unixRequest(locked.socketPath, 'POST', '/v2/edgefleet/update-locks', JSON.stringify({ reason: 'critical job', ttlSec: 300 }), {
      'content-type': 'application/json',
    });
    expect(acquired.status, acquired.body.toString()).toBe(201);
    const lock = acquired.json<{ id: string; reason: string }>();
    expect(lock.reason).toBe('critical job');

    await uploadVersion(fleet.hub, MODEL, '3', servingModel(3));
    const created = await createRollout(fleet.hub, { model: MODEL, version: '3', target: { all: true } });
    const deferred = await waitForRollout(
      fleet.hub,
      created.id,
      (r) => devicesOf(r).every((d) => (d.deviceId === locked.deviceId ? d.state === 'deferred' : d.state === 'active')),
      `${locked.deviceId} deferred and the others active`,
      30_000,
    );
    expect(deferred.state, describeRollout(deferred)).toBe('running');
    expect(await servedVersion(locked, MODEL)).toBe('1');
    await waitForFleetVersion(fleet, others, MODEL, '3');

    const released = await unixRequest(locked.socketPath, 'DELETE', `/v2/edgefleet/update-locks/${lock.id}`);
    expect(released.status, released.body.toString()).toBe(200);
    const done = await waitForState(fleet.hub, created.id, ['succeeded'], 30_000);
    expect(devicesOf(done).map((d) => d.state), describeRollout(done)).toEqual(['active', 'active', 'active']);
    await waitForFleetVersion(fleet, fleet.agents, MODEL, '3');
    await load!.answered(30);
    expectNoFailures();
  });

  it('completes a wave without an offline device, which times out and converges when it returns', async () => {
    // The offline agent's clients stop first: requests to a stopped agent are not what is measured.
    expectNoFailures();
    await load!.stop();
    const [online1, online2, offline] = fleet.agents as [AgentHandle, AgentHandle, AgentHandle];
    load = startLoad([online1, online2]);
    expect(await offline.proc.stop()).toBe(0);

    await uploadVersion(fleet.hub, MODEL, '4', servingModel(4));
    const created = await createRollout(fleet.hub, { model: MODEL, version: '4', target: { all: true }, deviceTimeoutSec: 8 });
    const done = await waitForState(fleet.hub, created.id, ['succeeded'], 60_000);
    const why = describeRollout(done);
    expect(done.waves[0]!.state, why).toBe('passed');
    const rowOf = (id: string) => devicesOf(done).find((d) => d.deviceId === id)!;
    expect(rowOf(offline.deviceId).state, why).toBe('timed-out');
    expect(rowOf(online1.deviceId).state, why).toBe('active');
    expect(rowOf(online2.deviceId).state, why).toBe('active');
    await waitForFleetVersion(fleet, [online1, online2], MODEL, '4');

    const back = await restartAgent(fleet, offline.deviceId);
    await waitForRollout(fleet.hub, created.id, (r) => devicesOf(r).every((d) => d.state === 'active'), `${offline.deviceId} converging to active`, 30_000);
    await waitForFleetVersion(fleet, [back], MODEL, '4');
    await load!.answered(30);
    expectNoFailures();
  });
});
