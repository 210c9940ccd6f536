import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollResponse, Rollout } from '@edgefleet/shared';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { runDirect, tinyModel } from './support/models.js';
import { killAll, REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const run = promisify(execFile);

/** Runs a command and returns its exit code and output instead of throwing on failure. */
async function attempt(cmd: string, args: string[], timeoutMs = 15_000): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeout: timeoutMs });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** The infer example from the README, with its socket path pointed at the test agent. */
async function readmeInferExample(socketPath: string): Promise<string[]> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /<!-- infer-example -->\s*```sh\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no infer example block');
  const command = block[1]!.replace(/\\\n\s*/g, ' ').trim();
  const args = [...command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  expect(args[0]).toBe('curl');
  return args.slice(1).map((a) => (a === '/run/edgefleet/agent.sock' ? socketPath : a));
}

describe.skipIf(!hasTool('curl', 'curl'))('curl --unix-socket against the agent', () => {
  let hub: Hub;
  let agent: AgentHandle;
  const dirs: Array<{ remove: () => Promise<void> }> = [];

  beforeAll(async () => {
    const hubDir = await makeTempDir('hub');
    const agentDir = await makeTempDir('agent');
    dirs.push(hubDir, agentDir);
    hub = await startHub({ dataDir: hubDir.path });
    agent = await startAgent(agentDir.path, await enrollAgent(hub, agentDir.path, 'curl-box'));
    await api(hub, 'POST', '/api/v1/models/demo-classifier/versions?version=1.0.0', tinyModel(), 201);
    const rollout = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: 'demo-classifier', version: '1.0.0', target: { all: true } }, 201);
    await eventually(async () => (await api<Rollout>(hub, 'GET', `/api/v1/rollouts/${rollout.id}`)).state === 'succeeded', 'rollout');
  }, 90_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it("runs the README's infer example and gets the direct onnxruntime result", async () => {
    const args = await readmeInferExample(agent.socketPath);
    const { stdout } = await run('curl', ['--silent', '--show-error', '--fail-with-body', ...args]);
    const body = JSON.parse(stdout) as { model_name: string; outputs: Array<{ name: string; data: number[] }> };
    expect(body.model_name).toBe('demo-classifier');
    const request = JSON.parse(args[args.indexOf('-d') + 1]!) as { inputs: Array<{ data: number[] }> };
    const expected = await runDirect(tinyModel(), 'input', Float32Array.from(request.inputs[0]!.data), [1, 4]);
    expect(body.outputs[0]!.data).toEqual(Array.from(expected));
  });

  it('answers health and metrics over the socket', async () => {
    const live = await run('curl', ['--silent', '--fail', '--unix-socket', agent.socketPath, 'http://localhost/v2/health/live']);
    expect(live.stdout).toBeDefined();
    const metrics = await run('curl', ['--silent', '--fail', '--unix-socket', agent.socketPath, 'http://localhost/metrics']);
    expect(metrics.stdout).toMatch(/demo-classifier/);
  });
});

describe.skipIf(!hasTool('mosquitto_sub', 'mosquitto-clients'))('mosquitto clients with a device identity', () => {
  let hub: Hub;
  let a: EnrollResponse;
  let b: EnrollResponse;
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  const base = () => ['-h', '127.0.0.1', '-p', String(hub.mqttPort), '-V', 'mqttv311'];
  const as = (who: EnrollResponse) => ['-u', who.deviceId, '-P', who.secret, '-i', `outside-${who.deviceId}`];

  beforeAll(async () => {
    const hubDir = await makeTempDir('hub');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path });
    const identities: EnrollResponse[] = [];
    for (const name of ['box-a', 'box-b']) {
      const dir = await makeTempDir(name);
      dirs.push(dir);
      await enrollAgent(hub, dir.path, name);
      identities.push(JSON.parse(await readFile(join(dir.path, 'identity.json'), 'utf8')) as EnrollResponse);
    }
    [a, b] = identities as [EnrollResponse, EnrollResponse];
    // A retained desired document for device A, written by a rollout (no agent needs to run for that).
    await api(hub, 'POST', '/api/v1/models/demo-classifier/versions?version=1.0.0', tinyModel(), 201);
    await api(hub, 'POST', '/api/v1/rollouts', { model: 'demo-classifier', version: '1.0.0', target: { deviceIds: [a.deviceId] } }, 201);
  }, 90_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  const desiredOf = async (who: EnrollResponse) => {
    const res = await attempt('mosquitto_sub', [...base(), ...as(who), '-t', `ef/v1/dev/${who.deviceId}/desired`, '-C', '1', '-W', '10']);
    expect(res.code).toBe(0);
    return JSON.parse(res.out) as { version: number; models: Array<{ manifest: { manifest: { model: string } } }> };
  };

  it('reads its own retained desired state', async () => {
    const desired = await desiredOf(a);
    expect(desired.models[0]!.manifest.manifest.model).toBe('demo-classifier');
  });

  it('publishes a telemetry record on its own tree that the hub stores', async () => {
    const record = {
      v: 1,
      seq: 9_000_000,
      ts: Date.now(),
      system: { cpuPercent: 12.5, memUsedMb: 100, memTotalMb: 1000, temperatureC: null, diskUsedPercent: 10, agentRssMb: 50, loadAvg1: 0.1 },
      models: [],
    };
    const res = await attempt('mosquitto_pub', [...base(), ...as(a), '-q', '1', '-t', `ef/v1/dev/${a.deviceId}/telemetry`, '-m', JSON.stringify(record)]);
    expect(res.code).toBe(0);
    await eventually(async () => {
      const h = await api<{ points: Array<{ seq: number }> }>(hub, 'GET', `/api/v1/devices/${a.deviceId}/telemetry?limit=10`);
      return h.points.some((p) => p.seq === 9_000_000);
    }, 'the published record in the API');
  });

  it("is refused on another device's topics", async () => {
    // -E: exit once the SUBACK arrives; -d prints it. MQTT 3.1.1 refuses a subscription with return code 128.
    const sub = await attempt('mosquitto_sub', [...base(), ...as(a), '-t', `ef/v1/dev/${b.deviceId}/desired`, '-E', '-d']);
    expect(sub.out).toMatch(/SUBACK/);
    expect(sub.out).toMatch(/Subscribed \(mid: \d+\): 128/);

    const record = { v: 1, seq: 1, ts: Date.now(), system: { cpuPercent: 1, memUsedMb: 1, memTotalMb: 1, temperatureC: null, diskUsedPercent: 1, agentRssMb: 1, loadAvg1: 0 }, models: [] };
    await attempt('mosquitto_pub', [...base(), ...as(a), '-q', '1', '-t', `ef/v1/dev/${b.deviceId}/telemetry`, '-m', JSON.stringify(record)]);
    const hist = await api<{ points: unknown[] }>(hub, 'GET', `/api/v1/devices/${b.deviceId}/telemetry?limit=10`);
    expect(hist.points).toHaveLength(0);
  });

  it('may not publish its own desired state', async () => {
    const before = await desiredOf(a);
    const forged = { version: before.version + 100, models: [] };
    const res = await attempt('mosquitto_pub', [...base(), ...as(a), '-q', '1', '-r', '-t', `ef/v1/dev/${a.deviceId}/desired`, '-m', JSON.stringify(forged)]);
    expect(res.code).not.toBe(0);
    expect((await desiredOf(a)).version).toBe(before.version);
  });

  it('is refused with wrong credentials', async () => {
    const res = await attempt('mosquitto_sub', [...base(), '-u', a.deviceId, '-P', 'wrong-secret', '-t', `ef/v1/dev/${a.deviceId}/desired`, '-C', '1', '-W', '3']);
    expect(res.code).not.toBe(0);
    expect(res.out).toMatch(/not authori[sz]ed|refused|bad user name or password/i);
  });
});
