import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Device, EnrollmentToken, InferResponse, ModelVersion, Rollout } from '@edgefleet/shared';
import { eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { runDirect, sampleModel } from './support/models.js';
import { AGENT_MAIN, killAll, REPO_ROOT } from './support/processes.js';
import { unixRequest } from './support/unix-http.js';

const run = promisify(execFile);
const FLEETCTL = `${REPO_ROOT}packages/hub/dist/cli/fleetctl.js`;

/**
 * Acceptance 4 of issue 18: an operator with only fleetctl (the built bin) brings a device up and
 * rolls a model out to it. A real hub process, a real agent process, real onnxruntime; every
 * fleetctl answer is read as the JSON it prints.
 */
describe('fleetctl end to end', () => {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let hub: Hub;
  let agent: AgentHandle;
  let modelFile: string;
  const model = sampleModel();

  /** fleetctl --json with the hub and token from the environment (so the token is on no command line), no config file. */
  async function fleetctl<T>(...args: string[]): Promise<T> {
    const { stdout } = await run(process.execPath, [FLEETCTL, '--json', ...args], {
      env: { ...process.env, EDGEFLEET_HUB_URL: hub.apiUrl, EDGEFLEET_TOKEN: hub.adminToken, XDG_CONFIG_HOME: join(hub.dataDir, 'no-config') },
    });
    return JSON.parse(stdout) as T;
  }

  beforeAll(async () => {
    const hubDir = await makeTempDir('fleetctl-hub');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path });
    modelFile = join(hubDir.path, 'sample.onnx');
    await writeFile(modelFile, model);
  }, 60_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('creates an enrollment token, pushes a model, rolls it out and watches it to the end; the agent then serves it', async () => {
    const token = await fleetctl<EnrollmentToken>('tokens', 'create', '--ttl', '600', '--label', 'site=lab');
    expect(token.token.length).toBeGreaterThan(10);

    const agentDir = await makeTempDir('fleetctl-agent');
    dirs.push(agentDir);
    const enrolled = await run(process.execPath, [AGENT_MAIN, 'enroll', '--hub', hub.apiUrl, '--token', token.token, '--name', 'edge-ctl', '--state-dir', agentDir.path], {
      env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'warn' },
    });
    const deviceId = /(dev-[A-Za-z0-9_-]+)/.exec(enrolled.stdout)?.[1];
    expect(deviceId, `enroll printed: ${enrolled.stdout}`).toBeDefined();
    agent = await startAgent(agentDir.path, deviceId!);

    const listed = await eventually(async () => {
      const res = await fleetctl<{ devices: Device[] }>('devices', 'list', '--label', 'site=lab', '--online');
      return res.devices.length === 1 && res;
    }, 'the agent listed online by fleetctl');
    expect(listed.devices[0]).toMatchObject({ id: deviceId, name: 'edge-ctl', labels: { site: 'lab' } });

    const pushed = await fleetctl<ModelVersion>('models', 'push', modelFile, '--name', 'sample', '--version', '1.0.0');
    expect(pushed).toMatchObject({ name: 'sample', version: '1.0.0', size: model.byteLength });
    const models = await fleetctl<{ models: Array<{ name: string; latest: string }> }>('models', 'list');
    expect(models.models).toContainEqual(expect.objectContaining({ name: 'sample', latest: '1.0.0' }));

    const created = await fleetctl<Rollout>('rollouts', 'create', '--model', 'sample', '--version', '1.0.0', '--target', 'label', 'site=lab');
    expect(created).toMatchObject({ model: 'sample', version: '1.0.0', target: { labels: { site: 'lab' } } });
    // --watch exits 0 only when the rollout succeeded (execFile rejects on any other exit code).
    const watched = await fleetctl<Rollout>('rollouts', 'status', created.id, '--watch', '--interval', '0.2');
    expect(watched.state).toBe('succeeded');
    expect(watched.waves.flatMap((w) => w.devices)).toEqual([expect.objectContaining({ deviceId, state: 'active' })]);

    const running = await eventually(async () => {
      const d = await fleetctl<Device>('devices', 'show', deviceId!);
      return d.models.some((m) => m.name === 'sample' && m.version === '1.0.0' && m.active) && d;
    }, 'the agent reporting sample@1.0.0 active');
    expect(running.online).toBe(true);
    const { devices } = await fleetctl<{ devices: Device[] }>('devices', 'list');
    expect(devices.find((d) => d.id === deviceId)?.models).toContainEqual(expect.objectContaining({ name: 'sample', version: '1.0.0', active: true }));

    const input = Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.cos(i) * 0.5);
    const shape = [1, 3, 16, 16];
    const res = await unixRequest(agent.socketPath, 'POST', '/v2/models/sample/infer', JSON.stringify({ inputs: [{ name: 'image', shape, datatype: 'FP32', data: Array.from(input) }] }), {
      'content-type': 'application/json',
    });
    expect(res.status).toBe(200);
    expect(res.json<InferResponse>().outputs[0]!.data).toEqual(Array.from(await runDirect(model, 'image', input, shape)));
  }, 60_000);

  it('reports API errors as "fleetctl: <message> (<code>)" with exit code 1, and usage errors with 2', async () => {
    const failed = await fleetctl('rollouts', 'status', 'no-such-rollout').then(
      () => undefined,
      (err: { code: number; stderr: string; stdout: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/^fleetctl: .+ \([A-Z_]+\)\n$/);
    expect(failed?.stderr).not.toContain(hub.adminToken);
    const usage = await fleetctl('rollouts', 'create').then(
      () => undefined,
      (err: { code: number }) => err,
    );
    expect(usage?.code).toBe(2);
  });
});
