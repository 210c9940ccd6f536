import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '@edgefleet/shared';
import { api } from './support/fleet.js';
import { watchDesired, type DesiredWatch } from './support/desired-watch.js';
import { killAll } from './support/processes.js';
import {
  createRollout,
  describeRollout,
  devicesOf,
  restartHub,
  startFleet,
  uploadVersion,
  waitForFleetVersion,
  waitForRollout,
  waitForState,
  type Fleet,
} from './support/rollout-fleet.js';
import { BULKY_MODEL, bulkyModel } from './support/rollout-models.js';
import { startThrottleProxy, type ThrottleProxy } from './support/throttle-proxy.js';

/**
 * A hub that dies mid-rollout (acceptance 3 and 4). The devices download through a throttling proxy
 * that stands in for a slow link (the hub hands its URL out as the public URL), so the hub can be
 * killed while they are still downloading; the proxy stays up across the hub's restarts and can keep
 * the artifact URL unreachable after the hub is back.
 */
describe('rollout recovery end to end', () => {
  let fleet: Fleet;
  let proxy: ThrottleProxy;
  const watches: DesiredWatch[] = [];
  /** SIGKILL; the downloads through the link drop with the hub, and the link stays down until brought back. */
  const killHub = async () => {
    await fleet.hub.proc.stop('SIGKILL');
    proxy.setLink(false);
  };

  beforeAll(async () => {
    // ~1 MB at 160 KB/s: about six seconds per device, time enough to see all of them downloading.
    proxy = await startThrottleProxy(160 * 1024);
    fleet = await startFleet({ agents: 3, namePrefix: 'recover', hubEnv: { EDGEFLEET_HUB_PUBLIC_URL: proxy.url } });
    proxy.upstreamPort = fleet.hub.httpPort;
  }, 120_000);

  afterAll(async () => {
    await Promise.all(watches.map((w) => w.close()));
    await killAll();
    await proxy?.close();
    await fleet?.removeDirs();
  });

  it('ends succeeded with every device active after the hub dies during slow downloads and the devices fail transiently', async () => {
    await uploadVersion(fleet.hub, BULKY_MODEL.name, '1', bulkyModel(1));
    const created = await createRollout(fleet.hub, { model: BULKY_MODEL.name, version: '1', target: { all: true } });
    await waitForRollout(
      fleet.hub,
      created.id,
      (r) => devicesOf(r).every((d) => d.state === 'downloading' && (d.progress ?? 0) > 0),
      'every device downloading',
      30_000,
    );

    await killHub();
    // The pause: every agent has found the hub gone twice before it comes back.
    await Promise.all(
      fleet.agents.map((a) =>
        a.proc.waitForLine((l) => l.msg === 'download interrupted; will resume' && Number(l.attempt) >= 2, 30_000, 'a second interrupted download attempt'),
      ),
    );
    await restartHub(fleet);
    // The artifact URL stays unreachable until each agent's download runs out of attempts: a transient
    // failure (`failed`, retryable) that the hub hears about while the devices keep retrying — the case
    // that used to end the rollout "failed" while every device went on to run the new version.
    await Promise.all(
      fleet.agents.map((a) =>
        a.proc.waitForLine((l) => l.msg === 'deployment failed' && l.model === BULKY_MODEL.name && l.code === 'UNAVAILABLE', 60_000, 'a transient download failure'),
      ),
    );
    const retrying = await waitForRollout(fleet.hub, created.id, (r) => devicesOf(r).every((d) => d.state === 'retrying'), 'every device retrying', 30_000);
    expect(retrying.state, describeRollout(retrying)).toBe('running');
    proxy.setLink(true);

    const done = await waitForState(fleet.hub, created.id, ['succeeded'], 60_000);
    const why = describeRollout(done);
    expect(devicesOf(done).map((d) => d.state), why).toEqual(['active', 'active', 'active']);
    for (const d of devicesOf(done)) expect(d.error, why).toBeNull();
    await waitForFleetVersion(fleet, fleet.agents, BULKY_MODEL.name, '1');
  }, 120_000); // an agent gives a download up after about 31 s of back-off and tries again 10 s later

  it('continues a rollout after SIGKILLs mid-bake and mid-download without assigning any device twice', async () => {
    const { agents } = fleet;
    for (const agent of agents) watches.push(await watchDesired(agent.stateDir));
    const versionsBefore = new Map<string, number>();
    for (const agent of agents) versionsBefore.set(agent.deviceId, (await api<Device>(fleet.hub, 'GET', `/api/v1/devices/${agent.deviceId}`)).desiredVersion);

    await uploadVersion(fleet.hub, BULKY_MODEL.name, '2', bulkyModel(2));
    const created = await createRollout(fleet.hub, {
      model: BULKY_MODEL.name,
      version: '2',
      target: { all: true },
      waves: [{ size: 1, bakeSec: 4 }, { size: '100%' }],
    });

    // First kill: the first wave is done and baking.
    await waitForRollout(fleet.hub, created.id, (r) => r.waves[0]!.state === 'baking', 'the first wave baking', 30_000);
    await killHub();
    await restartHub(fleet);
    proxy.setLink(true);

    // Second kill: the bake ended after the restart and the second wave's devices are downloading.
    await waitForRollout(
      fleet.hub,
      created.id,
      (r) => r.waves[1]!.devices.every((d) => d.state === 'downloading' && (d.progress ?? 0) > 0),
      'the second wave downloading',
      30_000,
    );
    await killHub();
    await restartHub(fleet);
    proxy.setLink(true);

    const done = await waitForState(fleet.hub, created.id, ['succeeded'], 60_000);
    const why = describeRollout(done);
    expect(done.waves.map((w) => w.state), why).toEqual(['passed', 'passed']);
    expect(devicesOf(done).map((d) => d.state), why).toEqual(['active', 'active', 'active']);
    await waitForFleetVersion(fleet, agents, BULKY_MODEL.name, '2');

    // Assigned once: one desired document of this rollout per device on the wire (retained copies
    // republished after each restart carry the same version), and the hub's count moved by one.
    for (const watch of watches) {
      expect(watch.versionsOf(created.id), `${watch.deviceId} desired documents: ${JSON.stringify(watch.seen.map((d) => d.version))}`).toHaveLength(1);
      const device = await api<Device>(fleet.hub, 'GET', `/api/v1/devices/${watch.deviceId}`);
      expect(device.desiredVersion).toBe(versionsBefore.get(watch.deviceId)! + 1);
      expect(watch.versionsOf(created.id)).toEqual([device.desiredVersion]);
    }
  }, 90_000);
});
