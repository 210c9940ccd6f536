import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollResponse, Rollout } from '@edgefleet/shared';
import { eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { tinyModel } from './support/models.js';
import { issueServerCert, makePrivateCa, type PrivateCa } from './support/private-ca.js';
import { AGENT_MAIN, killAll } from './support/processes.js';
import { hasTool } from './support/tools.js';
import { unixRequest } from './support/unix-http.js';

const run = promisify(execFile);

/** Runs a command and returns its exit code and output instead of throwing on failure. */
async function attempt(cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeout: timeoutMs, env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'warn' } });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Operator call over HTTPS that trusts only the test CA. */
function api<T>(hub: Hub, ca: string, method: string, path: string, body?: unknown, expectStatus?: number): Promise<T> {
  const bytes = body instanceof Uint8Array;
  const payload = body === undefined ? undefined : bytes ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${hub.adminToken}` };
    if (payload) headers['content-type'] = bytes ? 'application/octet-stream' : 'application/json';
    const req = request(`${hub.apiUrl}${path}`, { method, headers, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const ok = expectStatus === undefined ? (res.statusCode ?? 0) < 300 : res.statusCode === expectStatus;
        if (!ok) reject(new Error(`${method} ${path} answered ${res.statusCode}: ${text}`));
        else resolve((text ? JSON.parse(text) : undefined) as T);
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe.skipIf(!hasTool('openssl', 'openssl') || !hasTool('curl', 'curl') || !hasTool('mosquitto_sub', 'mosquitto-clients'))(
  'a hub with a private CA: HTTPS, MQTTS and an agent that pins the CA',
  () => {
    let hub: Hub;
    let ca: PrivateCa;
    let wrongCa: PrivateCa;
    let caPem: string;
    let certFiles: { certFile: string; keyFile: string };
    let agent: AgentHandle;
    let identity: EnrollResponse;
    const dirs: Array<{ remove: () => Promise<void> }> = [];
    const tempDir = async (name: string) => {
      const dir = await makeTempDir(name);
      dirs.push(dir);
      return dir.path;
    };
    const enroll = async (stateDir: string, caFile: string, at: Hub = hub) => {
      const { token } = await api<{ token: string }>(at, caPem, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 }, 201);
      return attempt(process.execPath, [AGENT_MAIN, 'enroll', '--hub', at.apiUrl, '--token', token, '--ca', caFile, '--state-dir', stateDir]);
    };
    const mqttsArgs = (file: string, who: EnrollResponse) => [
      '-h', '127.0.0.1', '-p', String(hub.mqttPort), '-V', 'mqttv311', '--cafile', file,
      '-u', who.deviceId, '-P', who.secret, '-i', `outside-${who.deviceId}`,
    ];

    beforeAll(async () => {
      const pki = await tempDir('pki');
      ca = await makePrivateCa(pki, 'fleet-ca');
      wrongCa = await makePrivateCa(pki, 'other-ca');
      certFiles = await issueServerCert(ca, pki, 'hub');
      caPem = await readFile(ca.caFile, 'utf8');
      hub = await startHub({
        dataDir: await tempDir('hub'),
        env: { EDGEFLEET_HUB_TLS_CERT: certFiles.certFile, EDGEFLEET_HUB_TLS_KEY: certFiles.keyFile, EDGEFLEET_HUB_TLS_CA: ca.caFile },
      });
      const stateDir = await tempDir('agent');
      const enrolled = await enroll(stateDir, ca.caFile);
      expect(enrolled.code, enrolled.out).toBe(0);
      identity = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8')) as EnrollResponse;
      agent = await startAgent(stateDir, identity.deviceId);
    }, 120_000);

    afterAll(async () => {
      await killAll();
      await Promise.all(dirs.map((d) => d.remove()));
    });

    it('serves health to curl --cacert with the CA, and curl refuses it with another CA', async () => {
      expect(hub.apiUrl).toMatch(/^https:/);
      const ok = await attempt('curl', ['--silent', '--show-error', '--fail', '--cacert', ca.caFile, `${hub.apiUrl}/api/v1/health`]);
      expect(ok.code, ok.out).toBe(0);
      expect(JSON.parse(ok.out)).toMatchObject({ status: expect.any(String) });
      const wrong = await attempt('curl', ['--silent', '--show-error', '--fail', '--cacert', wrongCa.caFile, `${hub.apiUrl}/api/v1/health`]);
      // 60: the peer certificate cannot be authenticated with the given CA certificates.
      expect(wrong.code).toBe(60);
    });

    it('stores the pinned CA and the TLS endpoints in the identity file, mode 0600', async () => {
      expect(identity.apiUrl).toBe(hub.apiUrl);
      expect(identity.brokerUrl).toMatch(/^mqtts:\/\//);
      expect(identity.hubCaPem?.trim()).toBe(caPem.trim());
      expect((await stat(join(agent.stateDir, 'identity.json'))).mode & 0o777).toBe(0o600);
    });

    it('enrolls over HTTPS only with the right CA: a wrong --ca fails and writes no identity', async () => {
      const stateDir = await tempDir('agent-wrong-ca');
      const res = await enroll(stateDir, wrongCa.caFile);
      expect(res.code).not.toBe(0);
      expect(res.out).toMatch(/cannot reach the hub .*certificate/i);
      await expect(stat(join(stateDir, 'identity.json'))).rejects.toThrow(/ENOENT/);
    });

    it('connects the agent over MQTTS, downloads the model over HTTPS and activates it', async () => {
      await eventually(async () => (await api<{ online: boolean }>(hub, caPem, 'GET', `/api/v1/devices/${identity.deviceId}`)).online, 'the agent online');
      await api(hub, caPem, 'POST', '/api/v1/models/demo-classifier/versions?version=1.0.0', tinyModel(), 201);
      const rollout = await api<Rollout>(hub, caPem, 'POST', '/api/v1/rollouts', { model: 'demo-classifier', version: '1.0.0', target: { all: true } }, 201);
      await eventually(
        async () => (await api<Rollout>(hub, caPem, 'GET', `/api/v1/rollouts/${rollout.id}`)).state === 'succeeded',
        'the rollout over HTTPS to succeed',
        60_000,
      );
      const ready = await unixRequest(agent.socketPath, 'GET', '/v2/models/demo-classifier/ready');
      expect(ready.status).toBe(200);
    });

    it("lets mosquitto_sub --cafile read the device's retained desired state, and refuses another CA", async () => {
      const sub = await attempt('mosquitto_sub', [...mqttsArgs(ca.caFile, identity), '-t', `ef/v1/dev/${identity.deviceId}/desired`, '-C', '1', '-W', '10']);
      expect(sub.code, sub.out).toBe(0);
      const desired = JSON.parse(sub.out) as { models: Array<{ manifest: { manifest: { model: string } } }> };
      expect(desired.models[0]!.manifest.manifest.model).toBe('demo-classifier');

      const wrong = await attempt('mosquitto_sub', [...mqttsArgs(wrongCa.caFile, identity), '-t', `ef/v1/dev/${identity.deviceId}/desired`, '-C', '1', '-W', '5']);
      expect(wrong.code).not.toBe(0);
      expect(wrong.out).toMatch(/certificate verify failed|tls|ssl/i);
    });

    it('keeps an agent that pins another CA off the hub, with no fallback to plain MQTT', async () => {
      const stateDir = await tempDir('agent-pinned-other');
      const enrolled = await enroll(stateDir, ca.caFile);
      expect(enrolled.code, enrolled.out).toBe(0);
      const own = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8')) as EnrollResponse;
      await writeFile(join(stateDir, 'identity.json'), JSON.stringify({ ...own, hubCaPem: await readFile(wrongCa.caFile, 'utf8') }), { mode: 0o600 });
      const other = await startAgent(stateDir, own.deviceId);
      await other.proc.waitForLine((l) => l.msg === 'hub connection error' && /certificate/i.test(String(l.err)), 30_000, 'a refused TLS handshake');
      expect(other.proc.lines.some((l) => l.msg === 'connected to hub')).toBe(false);
      expect((await api<{ online: boolean }>(hub, caPem, 'GET', `/api/v1/devices/${own.deviceId}`)).online).toBe(false);
      await other.proc.stop();

      // The same identity edited to a plain URL is refused at start, naming the file.
      await writeFile(join(stateDir, 'identity.json'), JSON.stringify({ ...own, brokerUrl: own.brokerUrl.replace('mqtts:', 'mqtt:') }), { mode: 0o600 });
      const plain = await attempt(process.execPath, [AGENT_MAIN, 'run', '--state-dir', stateDir, '--socket', join(stateDir, 'agent.sock')]);
      expect(plain.code).not.toBe(0);
      expect(plain.out).toMatch(/identity\.json pins a hub CA but its brokerUrl .* is not mqtts:\/\//);
    });

    it('pins the --ca file when the hub hands out no CA, and connects with it', async () => {
      const bare = await startHub({
        dataDir: await tempDir('hub-no-ca'),
        env: { EDGEFLEET_HUB_TLS_CERT: certFiles.certFile, EDGEFLEET_HUB_TLS_KEY: certFiles.keyFile },
      });
      const stateDir = await tempDir('agent-flag-ca');
      const enrolled = await enroll(stateDir, ca.caFile, bare);
      expect(enrolled.code, enrolled.out).toBe(0);
      const own = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8')) as EnrollResponse;
      expect(own.brokerUrl).toMatch(/^mqtts:\/\//);
      expect(own.hubCaPem?.trim()).toBe(caPem.trim());
      const pinned = await startAgent(stateDir, own.deviceId);
      await eventually(async () => (await api<{ online: boolean }>(bare, caPem, 'GET', `/api/v1/devices/${own.deviceId}`)).online, 'the agent online');
      await pinned.proc.stop();
      await bare.proc.stop();
    });
  },
);
