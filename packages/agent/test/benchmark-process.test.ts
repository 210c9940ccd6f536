import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type MqttClient } from 'mqtt';
import { BENCHMARK_VERB, deviceTopic, encodeMessage, generateSigningKeyPair, signManifest, type DesiredMessage, type ModelAssignment } from '@edgefleet/shared';
import { AGENT_MAIN, killAll, startProcess, type RunningProcess } from '../../../test/support/processes.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { benchmarkStateDir } from '../src/benchmark/candidate-file.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { modelPath } from '../src/models/model-files.js';
import { writeIdentity } from '../src/store/identity-file.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { assignmentFor, mlp, sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const deviceId = 'dev-bench-proc';
const creds = { username: deviceId, password: 'bench-proc-secret' };

interface Seen {
  topic: string;
  body: Record<string, unknown>;
}

/** The built agent process: declared capabilities in `reported`, and a benchmark cmd answered while it serves. */
describe('edgefleet-agent run: capability declarations and the benchmark verb', () => {
  const keys = generateSigningKeyPair();
  const served = mlp(7);
  const candidate = mlp(8);
  let dir: { path: string; remove: () => Promise<void> };
  let broker: TestBroker;
  let artifacts: ArtifactServer;
  let hub: MqttClient;
  const seen: Seen[] = [];
  let agent: RunningProcess;
  let assignment: ModelAssignment;
  const socketPath = () => join(dir.path, 'agent.sock');

  beforeAll(async () => {
    dir = await tempDir('bench-proc');
    broker = await startBroker(creds);
    artifacts = await startArtifactServer(creds);
    artifacts.files.set(sha256Of(served), served);
    artifacts.files.set(sha256Of(candidate), candidate);
    await writeIdentity(dir.path, { deviceId, secret: creds.password, hubPublicKey: keys.publicKeyPem, brokerUrl: broker.url, apiUrl: artifacts.apiUrl });
    const runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    assignment = await assignmentFor({ name: 'clf', version: '1.0.0', bytes: served, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: dir.path });
    await runtime.stop();
    hub = connect(broker.url, { protocolVersion: 4, clientId: 'hub-side', ...creds, reconnectPeriod: 100 });
    hub.on('message', (topic, payload) => seen.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
    await hub.subscribeAsync(`ef/v1/dev/${deviceId}/#`, { qos: 1 });
  });

  afterAll(async () => {
    await killAll();
    await hub?.endAsync(true);
    await broker?.close();
    await artifacts?.close();
    await dir?.remove();
  });

  it('reports the declared capabilities in place of the probed ones, and clears a dead benchmark\'s download at start', async () => {
    // What a benchmark cut short by a crash leaves: a partial candidate download.
    const leftover = join(benchmarkStateDir(dir.path), 'models', `${'a'.repeat(64)}.onnx.part`);
    await mkdir(join(benchmarkStateDir(dir.path), 'models'), { recursive: true });
    await writeFile(leftover, 'partial');
    agent = startProcess('agent', [AGENT_MAIN, 'run', '--state-dir', dir.path, '--socket', socketPath(), '--execution-providers', 'cpu,cuda'], {
      EDGEFLEET_ACCELERATORS: 'hailo-8',
      EDGEFLEET_CPU_FLAGS: 'fp asimd',
    });
    await agent.waitForMsg('agent ready');
    const reported = await eventually(() => seen.find((s) => s.topic.endsWith('/reported')), 'reported');
    expect(reported.body.capabilities).toMatchObject({ accelerators: ['hailo-8'], cpuFlags: ['fp', 'asimd'], executionProviders: ['cpu', 'cuda'] });
    expect(existsSync(leftover)).toBe(false);
  });

  it('benchmarks an installed and a fetched candidate, keeps serving, and removes only the fetched file', async () => {
    const desired: DesiredMessage = { version: 1, models: [assignment] };
    await hub.publishAsync(deviceTopic(deviceId, 'desired'), JSON.stringify(desired), { qos: 1, retain: true });
    await agent.waitForLine((l) => l.msg === 'model active' && l.model === 'clf', 30_000, 'model active');
    // The deployment is over once `reported` says the document is applied: until then a benchmark is refused.
    await eventually(() => seen.find((s) => s.topic.endsWith('/reported') && s.body.desiredVersion === 1), 'reported desiredVersion 1');

    const installed = assignment.manifest;
    const fetched = signManifest({ ...installed.manifest, profile: 'int8-dynamic', sha256: sha256Of(candidate), size: candidate.byteLength }, keys.privateKeyPem);
    const args = { model: 'clf', version: '1.0.0', candidates: [installed, fetched], runs: 10, warmup: 2, expiresAt: Date.now() + 60_000 };
    await hub.publishAsync(deviceTopic(deviceId, 'cmd'), encodeMessage('cmd', { id: 'bench-proc-1', verb: BENCHMARK_VERB, args }), { qos: 1 });

    const answer = await eventually(() => seen.find((s) => s.topic.endsWith('/cmd/result') && s.body.id === 'bench-proc-1'), 'cmd/result');
    expect(answer.body).toMatchObject({
      v: 1,
      ok: true,
      result: {
        model: 'clf',
        version: '1.0.0',
        threads: expect.any(Number),
        measurements: [
          { profile: 'fp32', sha256: sha256Of(served), ok: true, runs: 10 },
          { profile: 'int8-dynamic', sha256: sha256Of(candidate), ok: true, runs: 10 },
        ],
      },
    });
    expect(existsSync(modelPath(dir.path, sha256Of(served)))).toBe(true);
    expect(existsSync(modelPath(dir.path, sha256Of(candidate)))).toBe(false);
    expect(await readdir(join(benchmarkStateDir(dir.path), 'models')).catch(() => [])).toEqual([]);
    expect((await unixRequest(socketPath(), 'GET', '/v2/models/clf/ready')).status).toBe(200);
    expect(await agent.stop()).toBe(0);
  });
});
