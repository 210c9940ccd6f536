import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMlp } from '@edgefleet/shared/onnx';
import { hasTool } from '../../../test/support/tools.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { createUpdateLock, type UpdateLock, type UpdateLockInfo } from '../src/local-api/update-lock.js';
import { startLocalApiRig, type LocalApiRig } from './support/local-api-rig.js';
import { eventually } from './support/temp.js';

const LOCKS = '/v2/edgefleet/update-locks';

interface Reply {
  status: number;
  json: () => any;
}

// A local application would use curl; when the box has none, Node's http over the same socket.
const curl = hasTool('curl', 'curl');
const execFileAsync = promisify(execFile);

async function call(socketPath: string, method: string, path: string, body?: string): Promise<Reply> {
  if (!curl) {
    const res = await unixRequest(socketPath, method, path, body, body === undefined ? {} : { 'content-type': 'application/json' });
    return { status: res.status, json: () => res.json() };
  }
  const args = ['-sS', '--unix-socket', socketPath, '-X', method, '-w', '\n%{http_code}'];
  if (body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', body);
  // Async: the server answering is in this very process.
  const { stdout } = await execFileAsync('curl', [...args, `http://localhost${path}`]);
  const cut = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, cut);
  return { status: Number(stdout.slice(cut + 1)), json: () => JSON.parse(text) };
}

describe('update locks over the local API', () => {
  let rig: LocalApiRig;
  let lock: UpdateLock;
  const api = (method: string, path: string, body?: string) => call(rig.socketPath, method, path, body);

  beforeAll(async () => {
    lock = createUpdateLock();
    rig = await startLocalApiRig('update-lock-api', { mlp: buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 }) }, { tcpPort: 0, updateLock: lock });
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it('lists the extension in GET /v2', async () => {
    expect((await api('GET', '/v2')).json().extensions).toEqual(['binary_tensor_data', 'edgefleet_update_locks']);
  });

  it('takes a lock that the registry the agent waits on holds, lists it, and releases it', async () => {
    const before = Date.now();
    const res = await api('POST', LOCKS, JSON.stringify({ reason: 'nightly calibration', ttlSec: 120 }));
    expect(res.status).toBe(201);
    const info = res.json() as UpdateLockInfo;
    expect(info).toEqual({ id: expect.any(String), reason: 'nightly calibration', acquiredAt: expect.any(Number), expiresAt: info.acquiredAt + 120_000 });
    expect(info.acquiredAt).toBeGreaterThanOrEqual(before);
    expect(lock.held()).toEqual([info]);
    expect((await api('GET', LOCKS)).json()).toEqual({ locks: [info] });

    const waiting = lock.waitUntilFree(Date.now() + 60_000);
    const del = await api('DELETE', `${LOCKS}/${info.id}`);
    expect(del.status).toBe(200);
    expect(del.json()).toEqual({ released: true });
    await expect(waiting).resolves.toBe(true);
    expect((await api('GET', LOCKS)).json()).toEqual({ locks: [] });

    const again = await api('DELETE', `${LOCKS}/${info.id}`);
    expect(again.status).toBe(404);
    expect(again.json().error).toMatch(`no update lock "${info.id}" is held`);
  });

  it('takes the defaults from an empty body: no reason, 300 s', async () => {
    const res = await api('POST', LOCKS);
    expect(res.status).toBe(201);
    const info = res.json() as UpdateLockInfo;
    expect(info.reason).toBe('');
    expect(info.expiresAt - info.acquiredAt).toBe(300_000);
    expect(lock.release(info.id)).toBe(true);
  });

  it('refuses bad bodies with a 400 naming the field', async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"ttlSec":0}', /ttlSec must be an integer from 1 to 3600, got 0/],
      ['{"ttlSec":3601}', /ttlSec must be an integer from 1 to 3600, got 3601/],
      ['{"ttlSec":1.5}', /ttlSec must be an integer/],
      ['{"ttlSec":"60"}', /ttlSec must be an integer from 1 to 3600, got "60"/],
      ['{"ttlSec":null}', /ttlSec must be an integer/],
      [JSON.stringify({ reason: 'x'.repeat(257) }), /reason must be at most 256 characters, got 257/],
      ['{"reason":5}', /reason must be a string, got 5/],
      ['{"reason":"ok","owner":"me"}', /unknown field\(s\) "owner"/],
      ['[1]', /must be a JSON object/],
      ['null', /must be a JSON object/],
      ['{"reason":', /not valid JSON/],
    ];
    for (const [body, message] of cases) {
      const res = await api('POST', LOCKS, body);
      expect(res.status, body).toBe(400);
      expect(res.json().error, body).toMatch(message);
    }
    expect(lock.held()).toEqual([]);
  });

  it('an unknown id is a 404 in the API error shape', async () => {
    const res = await api('DELETE', `${LOCKS}/not-a-lock`);
    expect(res.status).toBe(404);
    expect(Object.keys(res.json())).toEqual(['error']);
  });

  it('a lock expires after its TTL', async () => {
    const res = await api('POST', LOCKS, JSON.stringify({ reason: 'short', ttlSec: 1 }));
    expect(res.status).toBe(201);
    const waiting = lock.waitUntilFree(Date.now() + 30_000);
    await expect(waiting).resolves.toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual((res.json() as UpdateLockInfo).expiresAt);
    await eventually(async () => (await api('GET', LOCKS)).json().locks.length === 0, 'the expired lock to leave the list');
  });

  it('works on the loopback TCP listener too, which refuses other origins', async () => {
    const base = `http://127.0.0.1:${rig.api.tcpPort()}${LOCKS}`;
    const res = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'tcp' }) });
    expect(res.status).toBe(201);
    const info = (await res.json()) as UpdateLockInfo;
    expect(((await (await fetch(base)).json()) as { locks: UpdateLockInfo[] }).locks).toEqual([info]);
    const forged = await fetch(base, { method: 'POST', headers: { origin: 'https://example.com' }, body: '{}' });
    expect(forged.status).toBe(403);
    expect((await fetch(`${base}/${info.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(lock.held()).toEqual([]);
  });
});

describe('the local API without an update lock registry', () => {
  let rig: LocalApiRig;
  beforeAll(async () => {
    rig = await startLocalApiRig('update-lock-none', { mlp: buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 }) });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it('neither lists the extension nor serves its routes', async () => {
    expect((await call(rig.socketPath, 'GET', '/v2')).json().extensions).toEqual(['binary_tensor_data']);
    expect((await call(rig.socketPath, 'POST', LOCKS, '{}')).status).toBe(404);
  });
});
