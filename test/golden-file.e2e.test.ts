import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelVersion, Rollout } from '@edgefleet/shared';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { imageModel } from './support/image-model.js';
import { killAll } from './support/processes.js';

/** A model with image-sized inputs on real processes: its golden vector travels as a golden file, not in the manifest. */
describe('golden file end to end', () => {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let hub: Hub;
  let agent: AgentHandle;

  beforeAll(async () => {
    const hubDir = await makeTempDir('hub-golden');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path });
    const dir = await makeTempDir('agent-golden');
    dirs.push(dir);
    agent = await startAgent(dir.path, await enrollAgent(hub, dir.path, 'edge-golden'));
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('uploads a [1,3,640,640] model with a small manifest; the agent fetches its golden file, checks it and activates it', async () => {
    const version = await api<ModelVersion>(hub, 'POST', '/api/v1/models/detector/versions?version=1', imageModel(), 201);
    expect(JSON.stringify(version).length).toBeLessThan(8 * 1024);
    expect(version.manifest.manifest.golden.ref).toBeDefined();

    const created = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: 'detector', version: '1', target: { deviceIds: [agent.deviceId] } }, 201);
    const done = await eventually(async () => {
      const r = await api<Rollout>(hub, 'GET', `/api/v1/rollouts/${created.id}`);
      // Where a rollout stops by itself: every wave passed, or a gate halted it (and perhaps rolled it back).
      return ['succeeded', 'halted', 'rolled-back', 'aborted'].includes(r.state) && r;
    }, 'rollout to finish', 60_000);
    expect(done.state).toBe('succeeded');
    expect(done.waves[0]!.devices[0]).toMatchObject({ deviceId: agent.deviceId, state: 'active' });
  });
});
