import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type MqttClient } from 'mqtt';
import { deviceTopic, generateSigningKeyPair, type Capabilities, type DesiredMessage } from '@edgefleet/shared';
import { AGENT_MAIN, killAll, startProcess, type RunningProcess } from '../../../test/support/processes.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { writeIdentity } from '../src/store/identity-file.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { assignmentFor, mlp, sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const deviceId = 'dev-providers';
const creds = { username: deviceId, password: 'providers-secret' };

/**
 * The built agent asked for cuda first on this machine, whose onnxruntime-node lists cuda without its
 * libraries: the session falls back to cpu, the agent warns naming cuda and onnxruntime's message,
 * keeps serving, and `reported` says which provider really works.
 */
describe('edgefleet-agent run with EDGEFLEET_EXECUTION_PROVIDERS=cuda,cpu', () => {
  const keys = generateSigningKeyPair();
  const served = mlp(11);
  let dir: { path: string; remove: () => Promise<void> };
  let broker: TestBroker;
  let artifacts: ArtifactServer;
  let hub: MqttClient;
  const reported: Capabilities[] = [];
  let agent: RunningProcess;

  beforeAll(async () => {
    dir = await tempDir('providers-proc');
    broker = await startBroker(creds);
    artifacts = await startArtifactServer(creds);
    artifacts.files.set(sha256Of(served), served);
    await writeIdentity(dir.path, { deviceId, secret: creds.password, hubPublicKey: keys.publicKeyPem, brokerUrl: broker.url, apiUrl: artifacts.apiUrl });
    hub = connect(broker.url, { protocolVersion: 4, clientId: 'hub-side', ...creds, reconnectPeriod: 100 });
    hub.on('message', (topic, payload) => {
      if (topic.endsWith('/reported')) reported.push((JSON.parse(payload.toString()) as { capabilities: Capabilities }).capabilities);
    });
    await hub.subscribeAsync(`ef/v1/dev/${deviceId}/#`, { qos: 1 });
  });

  afterAll(async () => {
    await killAll();
    await hub?.endAsync(true);
    await broker?.close();
    await artifacts?.close();
    await dir?.remove();
  });

  it('falls back to cpu with a logged reason, serves, and reports cpu as the usable provider', async () => {
    const runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    const assignment = await assignmentFor({ name: 'clf', version: '1.0.0', bytes: served, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: dir.path });
    await runtime.stop();
    agent = startProcess('agent', [AGENT_MAIN, 'run', '--state-dir', dir.path, '--socket', join(dir.path, 'agent.sock')], { EDGEFLEET_EXECUTION_PROVIDERS: 'cuda,cpu' });
    await agent.waitForMsg('agent ready');
    const desired: DesiredMessage = { version: 1, models: [assignment] };
    await hub.publishAsync(deviceTopic(deviceId, 'desired'), JSON.stringify(desired), { qos: 1, retain: true });

    const warning = await agent.waitForLine((l) => l.provider === 'cuda' && typeof l.msg === 'string' && l.msg.includes('falling back'), 30_000, 'cuda fallback warning');
    expect(warning).toMatchObject({ level: 40, using: 'cpu' });
    expect(warning.msg).toMatch(/^execution provider cuda failed; falling back to cpu: .*(shared library|Cuda)/i);
    await agent.waitForLine((l) => l.msg === 'model active' && l.model === 'clf', 30_000, 'model active');
    expect((await unixRequest(join(dir.path, 'agent.sock'), 'GET', '/v2/models/clf/ready')).status).toBe(200);

    const caps = await eventually(() => reported.find((c) => c.usableExecutionProviders !== undefined), 'reported with usable providers', 20_000);
    expect(caps.usableExecutionProviders).toEqual(['cpu']);
    expect(caps.providerFallbacks).toEqual([{ provider: 'cuda', reason: expect.stringMatching(/shared library|cuda/i) }]);
    // The same variable is still the declared list the hub plans from (capability declarations).
    expect(caps.executionProviders).toEqual(['cuda', 'cpu']);
    expect(agent.lines.filter((l) => l.provider === 'cuda' && l.level === 40)).toHaveLength(1);
    expect(await agent.stop()).toBe(0);
  });
});
