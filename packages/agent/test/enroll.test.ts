import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@edgefleet/shared';
import { enroll } from '../src/cli/enroll.js';
import { readIdentity } from '../src/store/identity-file.js';
import { startEnrollServer } from './support/fake-enroll.js';
import { silentLogger, tempDir } from './support/temp.js';

const AGENT_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const run = promisify(execFile);
const answer = { deviceId: 'dev-abc123', secret: 's'.repeat(43), hubPublicKey: generateSigningKeyPair().publicKeyPem, brokerUrl: 'mqtt://127.0.0.1:1883' };

describe('enroll', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  it('stores the identity with mode 0600 and sends name and labels', async () => {
    const hub = await startEnrollServer('tok-1', answer);
    const dir = await tempDir('enroll');
    cleanup.push(hub.close, dir.remove);
    const stateDir = join(dir.path, 'state');
    const identity = await enroll({ hubUrl: hub.url, token: 'tok-1', name: 'edge-1', labels: { site: 'a' }, stateDir, logLevel: 'silent' }, silentLogger);
    expect(identity.deviceId).toBe('dev-abc123');
    expect(hub.requests).toEqual([{ token: 'tok-1', name: 'edge-1', labels: { site: 'a' } }]);
    expect((await stat(join(stateDir, 'identity.json'))).mode & 0o777).toBe(0o600);
    expect(await readIdentity(stateDir)).toEqual({ ...answer, apiUrl: hub.url });
  });

  it('fails with TOKEN_INVALID on a refused token and writes nothing', async () => {
    const hub = await startEnrollServer('tok-1', answer);
    const dir = await tempDir('enroll');
    cleanup.push(hub.close, dir.remove);
    await expect(enroll({ hubUrl: hub.url, token: 'wrong', labels: {}, stateDir: dir.path, logLevel: 'silent' }, silentLogger)).rejects.toMatchObject({
      code: 'TOKEN_INVALID',
      message: expect.stringMatching(/HTTP 401 TOKEN_INVALID/),
    });
    await expect(readFile(join(dir.path, 'identity.json'))).rejects.toThrow(/ENOENT/);
  });

  it('as a CLI: prints the device id and exits 0, or explains and exits non-zero', async () => {
    const hub = await startEnrollServer('tok-2', answer);
    const dir = await tempDir('enroll');
    cleanup.push(hub.close, dir.remove);
    const args = [AGENT_MAIN, 'enroll', '--hub', hub.url, '--token', 'tok-2', '--state-dir', dir.path];
    const ok = await run(process.execPath, args, { env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'warn' } });
    expect(ok.stdout.trim()).toBe('dev-abc123');

    // The token is single-use: the second attempt is refused.
    const failed = await run(process.execPath, args, { env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'silent' } }).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/enrollment refused .* HTTP 401 TOKEN_INVALID/);
  });

  it('gives up on a hub that accepts the connection and never answers, naming the hub URL', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const hubUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const dir = await tempDir('enroll');
    cleanup.push(dir.remove, () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    await expect(enroll({ hubUrl, token: 'tok', labels: {}, stateDir: dir.path, logLevel: 'silent', timeoutMs: 300 }, silentLogger)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: `the hub at ${hubUrl}/api/v1/enroll did not answer within 0.3 s (--timeout); check the URL and that the hub is up`,
    });
    expect(sockets.length).toBeGreaterThan(0);
    await expect(readFile(join(dir.path, 'identity.json'))).rejects.toThrow(/ENOENT/);

    // The CLI flag reaches the call: the process ends with the message instead of hanging.
    const failed = await run(process.execPath, [AGENT_MAIN, 'enroll', '--hub', hubUrl, '--token', 'tok', '--state-dir', dir.path, '--timeout', '0.3'], {
      env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'silent' },
    }).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain(`the hub at ${hubUrl}/api/v1/enroll did not answer within 0.3 s`);
  });
});
