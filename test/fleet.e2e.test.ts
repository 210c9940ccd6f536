import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinBinaryBody, type Device, type InferResponse, type Rollout } from '@edgefleet/shared';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { runDirect, sampleModel } from './support/models.js';
import { killAll } from './support/processes.js';
import { unixRequest } from './support/unix-http.js';

/**
 * The four everyday paths on real parts: a real hub process (aedes, SQLite, Fastify), three real agent
 * processes with their own state directories, real onnxruntime, real Unix sockets.
 */
describe('fleet end to end', () => {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let hub: Hub;
  const agents: AgentHandle[] = [];
  const model = sampleModel();
  const input = Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.sin(i) * 0.5);
  const shape = [1, 3, 16, 16];
  let expected: Float32Array;
  const inferJson = (socketPath: string) =>
    unixRequest(
      socketPath,
      'POST',
      '/v2/models/sample/infer',
      JSON.stringify({ inputs: [{ name: 'image', shape, datatype: 'FP32', data: Array.from(input) }] }),
      { 'content-type': 'application/json' },
    );

  beforeAll(async () => {
    expected = await runDirect(model, 'image', input, shape);
    const hubDir = await makeTempDir('hub');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path });
    for (let i = 0; i < 3; i++) {
      const dir = await makeTempDir(`agent${i}`);
      dirs.push(dir);
      const deviceId = await enrollAgent(hub, dir.path, `edge-${i}`);
      agents.push(await startAgent(dir.path, deviceId));
    }
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('sees every agent online with telemetry in the API', async () => {
    for (const agent of agents) {
      await eventually(async () => (await api<Device>(hub, 'GET', `/api/v1/devices/${agent.deviceId}`)).online, `${agent.deviceId} online`);
      const history = await eventually(async () => {
        const h = await api<{ points: unknown[] }>(hub, 'GET', `/api/v1/devices/${agent.deviceId}/telemetry?limit=5`);
        return h.points.length > 0 && h;
      }, `telemetry of ${agent.deviceId}`);
      expect(history.points.length).toBeGreaterThan(0);
    }
    const { devices } = await api<{ devices: Device[] }>(hub, 'GET', '/api/v1/devices');
    expect(devices).toHaveLength(3);
    const withTelemetry = devices.filter((d) => d.telemetry && d.telemetry.system.memTotalMb > 0);
    expect(withTelemetry).toHaveLength(3);
  });

  it('uploads a model, rolls it out to all three, and each reports it active', async () => {
    await api(hub, 'POST', '/api/v1/models/sample/versions?version=1.0.0', model, 201);
    const created = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: 'sample', version: '1.0.0', target: { all: true } }, 201);
    const done = await eventually(async () => {
      const r = await api<Rollout>(hub, 'GET', `/api/v1/rollouts/${created.id}`);
      // Where a rollout stops by itself: every wave passed, or a gate halted it (and perhaps rolled it back).
      return ['succeeded', 'halted', 'rolled-back', 'aborted'].includes(r.state) && r;
    }, 'rollout to finish', 60_000);
    expect(done.state).toBe('succeeded');
    expect(done.waves.flatMap((w) => w.devices).map((d) => d.state)).toEqual(['active', 'active', 'active']);
    for (const agent of agents) {
      const device = await eventually(async () => {
        const d = await api<Device>(hub, 'GET', `/api/v1/devices/${agent.deviceId}`);
        return d.models.some((m) => m.name === 'sample' && m.version === '1.0.0' && m.active) && d;
      }, `${agent.deviceId} reporting sample@1.0.0 active`);
      expect(device.models.find((m) => m.active)?.name).toBe('sample');
    }
  });

  it("answers on an agent's socket with the same outputs as a direct onnxruntime run, in JSON and binary", async () => {
    const agent = agents[0]!;
    const jsonRes = await inferJson(agent.socketPath);
    expect(jsonRes.status).toBe(200);
    const body = jsonRes.json<InferResponse>();
    expect(body.outputs[0]!.name).toBe('probs');
    expect(body.outputs[0]!.data).toEqual(Array.from(expected));

    const { body: binBody, headerLength } = joinBinaryBody(
      {
        inputs: [{ name: 'image', shape, datatype: 'FP32', parameters: { binary_data_size: input.byteLength } }],
        outputs: [{ name: 'probs', parameters: { binary_data: true } }],
      },
      [new Uint8Array(input.buffer)],
    );
    const binRes = await unixRequest(agent.socketPath, 'POST', '/v2/models/sample/infer', binBody, {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(headerLength),
    });
    expect(binRes.status).toBe(200);
    const outHeaderLength = Number(binRes.headers['inference-header-content-length']);
    const header = JSON.parse(binRes.body.subarray(0, outHeaderLength).toString()) as InferResponse;
    expect(header.outputs[0]!.parameters?.binary_data_size).toBe(expected.byteLength);
    const raw = binRes.body.subarray(outHeaderLength);
    const got = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    expect(Array.from(got)).toEqual(Array.from(expected));
  });

  it('comes back after the hub and an agent restart: the agent serves before the hub is back', async () => {
    const { httpPort, mqttPort, adminToken, dataDir } = hub;
    expect(await hub.proc.stop()).toBe(0);
    const agent = agents[1]!;
    expect(await agent.proc.stop()).toBe(0);

    // Hub is down: the restarted agent must load its active model from its own state and serve it.
    const restarted = await startAgent(agent.stateDir, agent.deviceId);
    agents[1] = restarted;
    await restarted.proc.waitForLine((l) => l.msg === 'model active' && l.model === 'sample', 30_000, 'model active');
    const res = await inferJson(restarted.socketPath);
    expect(res.status).toBe(200);
    expect(res.json<InferResponse>().outputs[0]!.data).toEqual(Array.from(expected));

    hub = await startHub({ dataDir, adminToken, httpPort, mqttPort });
    expect(hub.httpPort).toBe(httpPort);
    expect(hub.mqttPort).toBe(mqttPort);
    const { devices } = await api<{ devices: Device[] }>(hub, 'GET', '/api/v1/devices');
    expect(devices.map((d) => d.id).sort()).toEqual(agents.map((a) => a.deviceId).sort());
    const versions = await api<{ versions: Array<{ version: string }> }>(hub, 'GET', '/api/v1/models/sample/versions');
    expect(versions.versions.map((v) => v.version)).toEqual(['1.0.0']);
    for (const a of agents) {
      await eventually(async () => (await api<Device>(hub, 'GET', `/api/v1/devices/${a.deviceId}`)).online, `${a.deviceId} back online`);
    }
    const device = await api<Device>(hub, 'GET', `/api/v1/devices/${restarted.deviceId}`);
    expect(device.models.find((m) => m.active)).toMatchObject({ name: 'sample', version: '1.0.0' });
  });
});
