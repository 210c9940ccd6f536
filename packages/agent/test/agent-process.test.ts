import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { chmod, chown, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type MqttClient } from 'mqtt';
import { deviceTopic, generateSigningKeyPair, goldenInputs, type DesiredMessage } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { killAll, startProcess, type RunningProcess } from '../../../test/support/processes.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { writeIdentity } from '../src/store/identity-file.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { assignmentFor, mlp, sha256Of } from './support/manifests.js';
import { startNotifySocket } from './support/notify-socket.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const AGENT_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const deviceId = 'dev-proc1';
const creds = { username: deviceId, password: 'proc-secret' };

interface Seen {
  topic: string;
  body: Record<string, unknown>;
}

/** The built agent process against a real broker and artifact server, with a fake NOTIFY_SOCKET. */
describe('edgefleet-agent run', () => {
  const keys = generateSigningKeyPair();
  const model = mlp(7);
  let dir: { path: string; remove: () => Promise<void> };
  let broker: TestBroker;
  let artifacts: ArtifactServer;
  let observer: MqttClient;
  const seen: Seen[] = [];
  let notify: Awaited<ReturnType<typeof startNotifySocket>>;
  let agent: RunningProcess;
  const socketPath = () => join(dir.path, 'agent.sock');

  function infer() {
    const [input] = goldenInputs(readSignature(decodeModel(model)).inputs);
    return unixRequest(
      socketPath(),
      'POST',
      '/v2/models/clf/infer',
      JSON.stringify({ inputs: [{ name: input!.name, shape: input!.shape, datatype: input!.datatype, data: input!.values }] }),
      { 'content-type': 'application/json' },
    );
  }

  function startAgent(): RunningProcess {
    return startProcess('agent', [AGENT_MAIN, 'run', '--state-dir', dir.path, '--socket', socketPath()], {
      EDGEFLEET_TELEMETRY_INTERVAL_MS: '200',
      NOTIFY_SOCKET: join(dir.path, 'notify.sock'),
    });
  }

  beforeAll(async () => {
    dir = await tempDir('proc');
    broker = await startBroker(creds);
    artifacts = await startArtifactServer(creds);
    artifacts.files.set(sha256Of(model), model);
    await writeIdentity(dir.path, { deviceId, secret: creds.password, hubPublicKey: keys.publicKeyPem, brokerUrl: broker.url, apiUrl: artifacts.apiUrl });
    notify = await startNotifySocket(join(dir.path, 'notify.sock'));
    observer = connect(broker.url, { protocolVersion: 4, clientId: 'observer', ...creds, reconnectPeriod: 100 });
    observer.on('message', (topic, payload) => seen.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
    await observer.subscribeAsync(`ef/v1/dev/${deviceId}/#`, { qos: 1 });
  });

  afterAll(async () => {
    await killAll();
    await observer?.endAsync(true);
    await notify?.close();
    await broker?.close();
    await artifacts?.close();
    await dir?.remove();
  });

  it('gets ready, tells systemd, and reports to the hub', async () => {
    agent = startAgent();
    const ready = await agent.waitForMsg('agent ready');
    expect(ready.socketPath).toBe(socketPath());
    await eventually(() => notify.messages.includes('READY=1'), 'READY=1 on NOTIFY_SOCKET');
    const live = await unixRequest(socketPath(), 'GET', '/v2/health/live');
    expect(live.status).toBe(200);
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'online'), 'status online');
    await eventually(() => seen.find((s) => s.topic.endsWith('/reported')), 'reported');
    const telemetry = await eventually(() => {
      const t = seen.filter((s) => s.topic.endsWith('/telemetry'));
      return t.length >= 2 && t;
    }, 'telemetry');
    expect(Number(telemetry[1]!.body.seq)).toBeGreaterThan(Number(telemetry[0]!.body.seq));
  });

  it('deploys a desired model, serves it on the socket, and reports it active', async () => {
    const runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    const assignment = await assignmentFor({ name: 'clf', version: '1.0.0', bytes: model, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: dir.path, rolloutId: 'r-1' });
    await runtime.stop();
    const desired: DesiredMessage = { version: 1, models: [assignment] };
    await observer.publishAsync(deviceTopic(deviceId, 'desired'), JSON.stringify(desired), { qos: 1, retain: true });
    const active = await agent.waitForLine((l) => l.msg === 'model active' && l.model === 'clf', 30_000, 'model active');
    expect(active).toMatchObject({ version: '1.0.0', sha256: sha256Of(model) });
    await eventually(() => seen.find((s) => s.topic.endsWith('/events') && s.body.phase === 'active' && s.body.rolloutId === 'r-1'), 'active event');
    await eventually(
      () => seen.find((s) => s.topic.endsWith('/reported') && s.body.desiredVersion === 1 && JSON.stringify(s.body.models).includes('"active":true')),
      'reported with the active model',
    );
    expect((await infer()).status).toBe(200);
  });

  it('stops on SIGTERM with exit 0 and an offline status', async () => {
    expect(await agent.stop()).toBe(0);
    await eventually(() => seen.filter((s) => s.topic.endsWith('/status')).at(-1)?.body.state === 'offline', 'status offline');
  });

  it('serves its active model after a restart while the hub is unreachable', async () => {
    await broker.close();
    agent = startAgent();
    await agent.waitForLine((l) => l.msg === 'model active' && l.model === 'clf', 30_000, 'model active after restart');
    await agent.waitForMsg('agent ready');
    const meta = await unixRequest(socketPath(), 'GET', '/v2/models/clf');
    expect(meta.status).toBe(200);
    expect(await agent.stop('SIGINT')).toBe(0);
  });

  it('refuses a second agent on the same state directory, naming the lock and the pid that holds it', async () => {
    agent = startAgent();
    await agent.waitForMsg('agent ready');
    const second = startProcess('agent-2', [AGENT_MAIN, 'run', '--state-dir', dir.path, '--socket', join(dir.path, 'agent-2.sock')], {});
    expect(await second.exited).toBe(1);
    const output = second.rawOutput.join('\n');
    expect(output).toContain(join(dir.path, 'agent.lock'));
    expect(output).toContain(`pid ${agent.pid}`);
    expect(existsSync(join(dir.path, 'agent-2.sock'))).toBe(false);
    // The first agent is undisturbed.
    expect((await infer()).status).toBe(200);
    expect(await agent.stop()).toBe(0);
  });

  it('names a corrupt agent.db, moves it aside, and still serves its verified model while the hub is unreachable', async () => {
    const dbPath = join(dir.path, 'agent.db');
    await rm(`${dbPath}-wal`, { force: true });
    await rm(`${dbPath}-shm`, { force: true });
    await writeFile(dbPath, randomBytes(32 * 1024));
    agent = startAgent();
    const named = await agent.waitForLine((l) => l.level === 50 && String(l.msg).includes(dbPath), 30_000, 'an error naming agent.db');
    expect(existsSync(String(named.movedTo))).toBe(true);
    await agent.waitForLine((l) => l.msg === 'model active' && l.model === 'clf', 30_000, 'model active from its kept manifest');
    await agent.waitForMsg('agent ready');
    expect((await infer()).status).toBe(200);
    expect(await agent.stop()).toBe(0);
  });
});

/**
 * The unit's hardening, reproduced where it can be without systemd as PID 1 (DESIGN.md, "systemd"):
 * an unprivileged user (nobody, via setpriv), UMask=0077, StateDirectory 0700 owned by that user, the
 * socket in a RuntimeDirectory (0750). The agent still readies, makes its socket 0660 for group
 * edgefleet's local apps, and says STOPPING=1 on SIGTERM.
 */
describe('edgefleet-agent run as the unit runs it (unprivileged, umask 077)', () => {
  const NOBODY = 65534;
  let dir: { path: string; remove: () => Promise<void> };
  let notify: Awaited<ReturnType<typeof startNotifySocket>>;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test runs the agent as nobody through setpriv and chowns its directories: expected to run as root (as CI does)');
    dir = await tempDir('unit');
    await chmod(dir.path, 0o755);
    for (const [name, mode] of [['state', 0o700], ['run', 0o750]] as const) {
      await mkdir(join(dir.path, name), { mode });
      await chown(join(dir.path, name), NOBODY, NOBODY);
    }
    const keys = generateSigningKeyPair();
    // Nothing listens on port 1: the agent serves from its state dir while the hub is unreachable.
    await writeIdentity(join(dir.path, 'state'), { deviceId: 'dev-unit1', secret: 's', hubPublicKey: keys.publicKeyPem, brokerUrl: 'mqtt://127.0.0.1:1', apiUrl: 'http://127.0.0.1:1' });
    for (const entry of await readdir(join(dir.path, 'state'))) await chown(join(dir.path, 'state', entry), NOBODY, NOBODY);
    notify = await startNotifySocket(join(dir.path, 'notify.sock'));
    // The fake NOTIFY_SOCKET is bound by root; systemd's own accepts any sender in the unit.
    await chmod(join(dir.path, 'notify.sock'), 0o666);
  });

  afterAll(async () => {
    await killAll();
    await notify?.close();
    await dir?.remove();
  });

  it('readies as nobody, makes agent.sock 0660, and sends STOPPING=1 on SIGTERM', async () => {
    const socket = join(dir.path, 'run', 'agent.sock');
    const privileges = `umask 077 && exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups "$@"`;
    const agent = startProcess(
      'agent-unit',
      ['-c', privileges, 'sh', process.execPath, AGENT_MAIN, 'run', '--state-dir', join(dir.path, 'state'), '--socket', socket],
      { NOTIFY_SOCKET: join(dir.path, 'notify.sock') },
      { command: 'sh' },
    );
    await agent.waitForMsg('agent ready');
    await eventually(() => notify.messages.includes('READY=1'), 'READY=1 on NOTIFY_SOCKET');
    const info = await stat(socket);
    expect(info.mode & 0o777).toBe(0o660);
    expect(info.uid).toBe(NOBODY);
    expect((await unixRequest(socket, 'GET', '/v2/health/live')).status).toBe(200);
    expect(await agent.stop()).toBe(0);
    // systemd-notify is a child of its own; it may deliver after the agent has exited.
    await eventually(() => notify.messages.includes('STOPPING=1'), 'STOPPING=1 on NOTIFY_SOCKET');
  });
});
