import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ApiToken, CreatedApiToken } from '@edgefleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStream } from './event-stream.js';
import { connectDevice, enrollDevice, eventually, startTestHub, useTestHub, type TestHub } from './hub-harness.js';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function createToken(t: TestHub, role: string, name = `${role}-token`, extra: Record<string, unknown> = {}) {
  const res = await t.api<CreatedApiToken>('POST', '/api/v1/tokens', { name, role, ...extra });
  expect(res.status).toBe(201);
  return res.body;
}

/** Logs in through the session route and answers the cookie (`name=value`). */
async function login(t: TestHub, token: string): Promise<string> {
  const res = await t.api<{ role: string }>('POST', '/api/v1/session', { token }, { authorization: '' });
  expect(res.status).toBe(200);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

describe('operator roles and API tokens', () => {
  const t = useTestHub();

  it('creates a token shown once, lists tokens without secrets and revokes them', async () => {
    const created = await createToken(t, 'viewer', 'ci reader');
    expect(created.token).toMatch(/^eft_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ name: 'ci reader', role: 'viewer', expiresAt: null });

    const list = await t.api<{ tokens: ApiToken[] }>('GET', '/api/v1/tokens');
    expect(list.status).toBe(200);
    const listed = list.body.tokens.find((x) => x.id === created.id)!;
    expect(listed).toEqual({ id: created.id, name: 'ci reader', role: 'viewer', createdAt: created.createdAt, expiresAt: null });
    // Neither the secret nor its digest leaves the hub after creation.
    expect(JSON.stringify(list.body)).not.toContain(created.token);
    expect(JSON.stringify(list.body)).not.toMatch(/[0-9a-f]{64}/);

    expect((await t.api('GET', '/api/v1/devices', undefined, bearer(created.token))).status).toBe(200);
    expect((await t.api('DELETE', `/api/v1/tokens/${created.id}`)).status).toBe(204);
    const after = await t.api('GET', '/api/v1/devices', undefined, bearer(created.token));
    expect(after.status).toBe(401);
    expect(after.body).toMatchObject({ code: 'UNAUTHORIZED' });
    expect((await t.api('DELETE', `/api/v1/tokens/${created.id}`)).status).toBe(404);
  });

  it('refuses a bad role, an unknown field or a bad name when creating a token', async () => {
    for (const body of [{ name: 'x', role: 'root' }, { name: 'x', role: 'viewer', extra: 1 }, { name: '', role: 'viewer' }, { name: 'x', role: 'viewer', ttlSeconds: 1 }]) {
      const res = await t.api('POST', '/api/v1/tokens', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });

  it('lets a viewer read but not write, an operator write but not manage tokens', async () => {
    const viewer = (await createToken(t, 'viewer')).token;
    const operator = (await createToken(t, 'operator')).token;
    const dev = await enrollDevice(t);

    expect((await t.api('GET', '/api/v1/devices', undefined, bearer(viewer))).status).toBe(200);
    expect((await t.api('GET', `/api/v1/devices/${dev.deviceId}/telemetry`, undefined, bearer(viewer))).status).toBe(200);
    expect((await t.api('GET', '/api/v1/models', undefined, bearer(viewer))).status).toBe(200);
    expect((await t.api('GET', '/api/v1/rollouts', undefined, bearer(viewer))).status).toBe(200);

    const writes: Array<[string, string, unknown]> = [
      ['POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 }],
      ['PUT', `/api/v1/devices/${dev.deviceId}/labels`, { labels: { a: 'b' } }],
      ['POST', `/api/v1/devices/${dev.deviceId}/revoke`, {}],
      ['POST', `/api/v1/devices/${dev.deviceId}/restore`, {}],
      ['POST', '/api/v1/models/m/versions?version=1', new Uint8Array([1, 2, 3])],
      ['POST', '/api/v1/rollouts', { model: 'm', version: '1', target: { devices: [dev.deviceId] } }],
    ];
    for (const [method, path, body] of writes) {
      const res = await t.api<{ code: string; error: string }>(method, path, body, bearer(viewer));
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.code).toBe('FORBIDDEN');
      expect(res.body.error).toMatch(/needs the operator role; this token has the viewer role/);
    }
    const device = await t.api<{ labels: Record<string, string>; revoked: boolean }>('GET', `/api/v1/devices/${dev.deviceId}`);
    expect(device.body).toMatchObject({ labels: {}, revoked: false });

    expect((await t.api('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 }, bearer(operator))).status).toBe(201);
    expect((await t.api('PUT', `/api/v1/devices/${dev.deviceId}/labels`, { labels: { a: 'b' } }, bearer(operator))).status).toBe(200);
    for (const [method, path, body] of [
      ['GET', '/api/v1/tokens', undefined],
      ['POST', '/api/v1/tokens', { name: 'escalate', role: 'admin' }],
      ['DELETE', '/api/v1/tokens/tok-000000000000', undefined],
    ] as const) {
      const res = await t.api(method, path, body, bearer(operator));
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    // An admin API token manages tokens like the first admin token.
    const admin = (await createToken(t, 'admin')).token;
    expect((await t.api('GET', '/api/v1/tokens', undefined, bearer(admin))).status).toBe(200);
  });

  it('guards every documented route that changes something: no answer below 401/403 without a token or with a viewer token', async () => {
    const viewer = (await createToken(t, 'viewer', 'route prober')).token;
    const doc = (await t.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/api/v1/openapi.json')).body;
    // Routes a caller without an operator token must reach: enrollment (its own token) and logging in/out.
    const open = new Set(['POST /api/v1/enroll', 'POST /api/v1/session', 'DELETE /api/v1/session']);
    const writes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .map((m) => m.toUpperCase())
        .filter((m) => m !== 'GET' && m !== 'HEAD' && !open.has(`${m} ${path}`))
        .map((m) => [m, path.replace(/\{[^}]+\}/g, 'x')] as const),
    );
    expect(writes.length).toBeGreaterThanOrEqual(8);
    for (const [method, path] of writes) {
      for (const [who, headers, status] of [['anonymous', { authorization: '' }, 401], ['viewer', bearer(viewer), 403]] as const) {
        const res = await t.hub.http.inject({ method, url: path, headers: { ...headers, 'content-type': 'application/json' }, payload: '{}' });
        expect(res.statusCode, `${who} ${method} ${path}: ${res.body}`).toBe(status);
      }
    }
  });

  it('refuses an expired API token', async () => {
    const created = await createToken(t, 'operator', 'short', { ttlSeconds: 3600 });
    expect(created.expiresAt).not.toBeNull();
    expect((await t.api('GET', '/api/v1/devices', undefined, bearer(created.token))).status).toBe(200);
    const db = new Database(join(t.dataDir, 'hub.db'));
    db.prepare('UPDATE api_tokens SET expires_at = ? WHERE id = ?').run(Date.now() - 1, created.id);
    db.close();
    expect((await t.api('GET', '/api/v1/devices', undefined, bearer(created.token))).status).toBe(401);
  });

  it("gives a dashboard session its token's role and ends it when that token is revoked", async () => {
    const viewer = await createToken(t, 'viewer', 'dashboard viewer');
    const res = await t.api<{ role: string }>('POST', '/api/v1/session', { token: viewer.token }, { authorization: '' });
    expect(res.body.role).toBe('viewer');
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const dev = await enrollDevice(t);
    const asCookie = { authorization: '', cookie, origin: new URL(t.hub.apiUrl).origin };
    expect((await t.api('GET', '/api/v1/devices', undefined, asCookie)).status).toBe(200);
    expect((await t.api('POST', `/api/v1/devices/${dev.deviceId}/revoke`, {}, asCookie)).status).toBe(403);

    expect((await t.api('DELETE', `/api/v1/tokens/${viewer.id}`)).status).toBe(204);
    expect((await t.api('GET', '/api/v1/devices', undefined, asCookie)).status).toBe(401);
    expect((await t.api('GET', '/api/v1/events', undefined, asCookie)).status).toBe(401);
  });

  it('closes an event stream already open when its token is revoked or its session logged out', async () => {
    const viewer = await createToken(t, 'viewer', 'watcher');
    const adminCookie = await login(t, t.adminToken);
    const streams = [
      await openEventStream(t, bearer(viewer.token)),
      await openEventStream(t, { cookie: await login(t, viewer.token) }),
      await openEventStream(t, { cookie: adminCookie }),
    ];
    const [byToken, bySession, byAdminSession] = streams;
    expect((await t.api('DELETE', `/api/v1/tokens/${viewer.id}`)).status).toBe(204);
    const logout = await t.api('DELETE', '/api/v1/session', undefined, { authorization: '', cookie: adminCookie, origin: new URL(t.hub.apiUrl).origin });
    expect(logout.status).toBe(200);
    // Events keep flowing; each one is a chance for the hub to notice, with no timer involved.
    await eventually(() => {
      t.hub.bus.emit('rollout', { rolloutId: 'r-probe', state: 'running', wave: 0, counts: {} });
      return byToken!.ended() && bySession!.ended() && byAdminSession!.ended();
    }, 'the revoked and logged-out streams to close');
    const still = await openEventStream(t, bearer(t.adminToken));
    t.hub.bus.emit('rollout', { rolloutId: 'r-after', state: 'running', wave: 0, counts: {} });
    await eventually(() => still.text().includes('r-after'), 'a valid stream to get the next event');
    still.close();
  });
});

describe('sessions end with their token', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-rotate-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps a session over a restart with the same admin token and ends it when the token is rotated', async () => {
    const first = await startTestHub({ dataDir, adminToken: 'efa_first-admin-token-for-the-rotation-test-0001' });
    let cookie: string;
    try {
      cookie = await login(first, first.adminToken);
      await first.restart();
      expect((await first.api('GET', '/api/v1/devices', undefined, { authorization: '', cookie })).status).toBe(200);
    } finally {
      await first.stop();
    }

    const rotated = await startTestHub({ dataDir, adminToken: 'efa_second-admin-token-for-the-rotation-test-002' });
    try {
      const old = await rotated.api<{ code: string }>('GET', '/api/v1/devices', undefined, { authorization: '', cookie });
      expect(old.status).toBe(401);
      expect(old.body.code).toBe('UNAUTHORIZED');
      expect((await rotated.api('GET', '/api/v1/devices', undefined, bearer('efa_first-admin-token-for-the-rotation-test-0001'))).status).toBe(401);
      const fresh = await login(rotated, rotated.adminToken);
      expect((await rotated.api('GET', '/api/v1/devices', undefined, { authorization: '', cookie: fresh })).status).toBe(200);
    } finally {
      await rotated.stop();
    }
  });
});

describe('CSRF: cookie-authenticated writes', () => {
  const t = useTestHub();
  let cookie: string;
  let self: { host: string; origin: string };
  beforeAll(async () => {
    cookie = await login(t, t.adminToken);
    const url = new URL(t.hub.apiUrl);
    self = { host: url.host, origin: url.origin };
  });

  const revokedNow = async (id: string) => (await t.api<{ revoked: boolean }>('GET', `/api/v1/devices/${id}`)).body.revoked;

  it('refuses the auto-submitted text/plain form from another port of the same host, and the device stays', async () => {
    const dev = await enrollDevice(t);
    const attacker = `http://${new URL(t.hub.apiUrl).hostname}:${Number(new URL(t.hub.apiUrl).port) + 1}`;
    // What a browser sends for <form method=post enctype=text/plain action=…/revoke> on that page.
    const form = await t.hub.http.inject({
      method: 'POST',
      url: `/api/v1/devices/${dev.deviceId}/revoke`,
      headers: { host: self.host, cookie, origin: attacker, referer: `${attacker}/evil.html`, 'content-type': 'text/plain' },
      payload: 'x=1',
    });
    expect(form.statusCode).toBe(403);
    expect(form.json()).toMatchObject({ code: 'FORBIDDEN', error: expect.stringMatching(/origin .* is not the hub's own origin/) });
    expect(await revokedNow(dev.deviceId)).toBe(false);

    // Same origin, but a form body: still refused (a form cannot send JSON).
    const sameOriginForm = await t.hub.http.inject({
      method: 'POST',
      url: `/api/v1/devices/${dev.deviceId}/revoke`,
      headers: { host: self.host, cookie, origin: self.origin, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'x=1',
    });
    expect(sameOriginForm.statusCode).toBe(403);
    expect(sameOriginForm.json().error).toMatch(/JSON body/);

    // Neither Origin nor Referer: refused.
    const bare = await t.hub.http.inject({ method: 'POST', url: `/api/v1/devices/${dev.deviceId}/revoke`, headers: { host: self.host, cookie } });
    expect(bare.statusCode).toBe(403);
    expect(bare.json().error).toMatch(/needs an Origin/);
    expect(await revokedNow(dev.deviceId)).toBe(false);
  });

  it("accepts the dashboard's own JSON write (Origin, or Referer when Origin is absent)", async () => {
    const dev = await enrollDevice(t);
    const ok = await t.hub.http.inject({
      method: 'PUT',
      url: `/api/v1/devices/${dev.deviceId}/labels`,
      headers: { host: self.host, cookie, origin: self.origin, 'content-type': 'application/json' },
      payload: { labels: { site: 'a' } },
    });
    expect(ok.statusCode).toBe(200);
    const byReferer = await t.hub.http.inject({
      method: 'POST',
      url: `/api/v1/devices/${dev.deviceId}/revoke`,
      headers: { host: self.host, cookie, referer: `${self.origin}/index.html` },
    });
    expect(byReferer.statusCode).toBe(200);
    expect(await revokedNow(dev.deviceId)).toBe(true);
  });

  it('does not apply to bearer-authenticated API calls', async () => {
    const dev = await enrollDevice(t);
    const res = await t.hub.http.inject({ method: 'POST', url: `/api/v1/devices/${dev.deviceId}/revoke`, headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(res.statusCode).toBe(200);
    expect(await revokedNow(dev.deviceId)).toBe(true);
  });
});

describe('revoke: a schema and an undo', () => {
  const t = useTestHub();

  it('refuses a text or non-empty body on revoke, even with a bearer token', async () => {
    const dev = await enrollDevice(t);
    const text = await t.hub.http.inject({
      method: 'POST',
      url: `/api/v1/devices/${dev.deviceId}/revoke`,
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'text/plain' },
      payload: 'x=1',
    });
    expect(text.statusCode).toBe(400);
    const extra = await t.api('POST', `/api/v1/devices/${dev.deviceId}/revoke`, { revoked: true });
    expect(extra.status).toBe(400);
    expect((await t.api<{ revoked: boolean }>('GET', `/api/v1/devices/${dev.deviceId}`)).body.revoked).toBe(false);
  });

  it('restores a revoked device: its own secret connects again', async () => {
    const dev = await enrollDevice(t);
    const revoked = await t.api<{ revoked: boolean }>('POST', `/api/v1/devices/${dev.deviceId}/revoke`, {});
    expect(revoked.body.revoked).toBe(true);
    await expect(connectDevice(t, dev)).rejects.toThrow(/Bad username or password|Not authorized/i);

    const restored = await t.api<{ revoked: boolean }>('POST', `/api/v1/devices/${dev.deviceId}/restore`);
    expect(restored.status).toBe(200);
    expect(restored.body.revoked).toBe(false);
    const client = await connectDevice(t, dev);
    client.end(true);
    expect((await t.api('POST', '/api/v1/devices/dev-000000000000/restore')).status).toBe(404);
  });
});
