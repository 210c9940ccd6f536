import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { enrollDevice, useTestHub } from './hub-harness.js';

describe('enrollment and devices', () => {
  const t = useTestHub();

  it('requires the admin token for operator routes', async () => {
    const res = await t.api('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 }, { authorization: 'Bearer wrong' });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('enrolls a device once per token, with the token labels and the hub endpoints', async () => {
    const tok = await t.api<{ token: string; expiresAt: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60, labels: { site: 'north' } });
    expect(tok.status).toBe(201);
    // Prefixed, so a token never begins with '-' and cannot be read as a command-line option.
    expect(tok.body.token).toMatch(/^efe_[A-Za-z0-9_-]{43}$/);
    const ok = await t.api<Record<string, string>>('POST', '/api/v1/enroll', { token: tok.body.token, name: 'cam-1', labels: { role: 'cam' } });
    expect(ok.status).toBe(201);
    expect(ok.body.deviceId).toMatch(/^dev-[0-9a-f]+$/);
    expect(ok.body.secret).toMatch(/^efd_/);
    expect(Buffer.from(ok.body.secret!.slice(4), 'base64url')).toHaveLength(32);
    expect(ok.body.hubPublicKey).toBe(t.hub.hubPublicKey);
    expect(ok.body.brokerUrl).toBe(t.hub.brokerUrl);
    expect(ok.body.apiUrl).toBe(t.hub.apiUrl);

    const reused = await t.api('POST', '/api/v1/enroll', { token: tok.body.token });
    expect(reused.status).toBe(401);
    expect(reused.body).toMatchObject({ code: 'TOKEN_INVALID' });

    const device = await t.api<{ name: string; labels: Record<string, string>; online: boolean }>('GET', `/api/v1/devices/${ok.body.deviceId}`);
    expect(device.body).toMatchObject({ name: 'cam-1', labels: { site: 'north', role: 'cam' }, online: false });
  });

  it("keeps the token's labels over labels the device asks for", async () => {
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60, labels: { site: 'north', tier: 'prod' } });
    const ok = await t.api<{ deviceId: string }>('POST', '/api/v1/enroll', { token: tok.body.token, labels: { site: 'south', role: 'cam' } });
    expect(ok.status).toBe(201);
    const device = await t.api<{ labels: Record<string, string> }>('GET', `/api/v1/devices/${ok.body.deviceId}`);
    expect(device.body.labels).toEqual({ site: 'north', tier: 'prod', role: 'cam' });
  });

  it('answers a malformed Host header on enroll with 400 naming the header, and keeps the token', async () => {
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    const res = await t.hub.http.inject({ method: 'POST', url: '/api/v1/enroll', headers: { host: '[not-a-host' }, payload: { token: tok.body.token } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'BAD_REQUEST', error: expect.stringMatching(/Host header/) });
    const ok = await t.api('POST', '/api/v1/enroll', { token: tok.body.token });
    expect(ok.status).toBe(201);
  });

  it('refuses a Host header that is more than host[:port] and builds URLs only from a checked one', async () => {
    for (const host of ['x@evil.example', 'evil.example/path', 'hub.example:8080/x?y', 'a b', 'hub.example:99999', '[zz::1]', 'hub.example#frag']) {
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
      const res = await t.hub.http.inject({ method: 'POST', url: '/api/v1/enroll', headers: { host }, payload: { token: tok.body.token } });
      expect(res.statusCode, host).toBe(400);
      expect(res.json(), host).toMatchObject({ code: 'BAD_REQUEST', error: expect.stringMatching(/Host header/) });
    }
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    const ok = await t.hub.http.inject({ method: 'POST', url: '/api/v1/enroll', headers: { host: '[::1]:8080' }, payload: { token: tok.body.token } });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toMatchObject({ apiUrl: 'http://[::1]:8080', brokerUrl: expect.stringMatching(/^mqtts?:\/\/\[::1\]:\d+$/) });
  });

  it("refuses a device name that is another device's id or shaped like one, and keeps the token", async () => {
    const other = await enrollDevice(t);
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    for (const name of [other.deviceId, 'dev-0123456789ab', 'DEV-ABCDEF']) {
      const res = await t.api<{ code: string; error: string }>('POST', '/api/v1/enroll', { token: tok.body.token, name });
      expect(res.status, name).toBe(400);
      expect(res.body.error).toMatch(/looks like a device id/);
    }
    const ok = await t.api<{ deviceId: string }>('POST', '/api/v1/enroll', { token: tok.body.token, name: 'dev-cam' });
    expect(ok.status).toBe(201);
  });

  it('refuses a name that only looks different from a device id (spaces, invisible or control characters)', async () => {
    const other = await enrollDevice(t);
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    for (const name of [`${other.deviceId} `, ` ${other.deviceId}`, `${other.deviceId}\u200b`, `\u202e${other.deviceId}`, `cam\n${other.deviceId}`, `cam\u0000`, ' ']) {
      const res = await t.api<{ code: string; error: string }>('POST', '/api/v1/enroll', { token: tok.body.token, name });
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
    }
    const ok = await t.api<{ deviceId: string }>('POST', '/api/v1/enroll', { token: tok.body.token, name: 'Kamera Süd 2' });
    expect(ok.status).toBe(201);
  });

  it('refuses an expired or unknown token', async () => {
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    const db = new Database(join(t.dataDir, 'hub.db'));
    db.prepare('UPDATE enrollment_tokens SET expires_at = ? WHERE used_at IS NULL').run(Date.now() - 1);
    db.close();
    const expired = await t.api('POST', '/api/v1/enroll', { token: tok.body.token });
    expect(expired.status).toBe(401);
    expect(expired.body).toMatchObject({ code: 'TOKEN_INVALID' });
    const unknown = await t.api('POST', '/api/v1/enroll', { token: 'nope' });
    expect(unknown.status).toBe(401);
  });

  it('answers validation errors as 400 BAD_REQUEST', async () => {
    const res = await t.api('POST', '/api/v1/enroll', { name: 'x' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('filters devices by label and sets labels', async () => {
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    const dev = await t.api<{ deviceId: string }>('POST', '/api/v1/enroll', { token: tok.body.token, labels: { site: 'south' } });
    const south = await t.api<{ devices: Array<{ id: string }> }>('GET', '/api/v1/devices?label=site=south');
    expect(south.body.devices.map((d) => d.id)).toEqual([dev.body.deviceId]);
    const put = await t.api<{ labels: Record<string, string> }>('PUT', `/api/v1/devices/${dev.body.deviceId}/labels`, { labels: { site: 'east' } });
    expect(put.body.labels).toEqual({ site: 'east' });
    const none = await t.api<{ devices: unknown[] }>('GET', '/api/v1/devices?label=site=south&online=false');
    expect(none.body.devices).toHaveLength(0);
    const missing = await t.api('GET', '/api/v1/devices/dev-nope');
    expect(missing.status).toBe(404);
  });

  it('serves the OpenAPI document and a session cookie for the dashboard', async () => {
    const doc = await t.api<{ paths: Record<string, unknown> }>('GET', '/api/v1/openapi.json');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/enroll', '/api/v1/rollouts', '/api/v1/models/{name}/versions']));
    const bad = await t.api('POST', '/api/v1/session', { token: 'wrong' }, { authorization: '' });
    expect(bad.status).toBe(401);
    const ok = await t.api('POST', '/api/v1/session', { token: t.adminToken }, { authorization: '' });
    expect(ok.status).toBe(200);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const list = await t.api('GET', '/api/v1/devices', undefined, { authorization: '', cookie: cookie.split(';')[0]! });
    expect(list.status).toBe(200);
  });

  it('ends the session on logout: the old cookie no longer works', async () => {
    const ok = await t.api('POST', '/api/v1/session', { token: t.adminToken }, { authorization: '' });
    const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
    expect((await t.api('GET', '/api/v1/devices', undefined, { authorization: '', cookie })).status).toBe(200);
    // A browser sends its Origin with the logout, as with every cookie-authenticated write.
    const refused = await t.api('DELETE', '/api/v1/session', undefined, { authorization: '', cookie, origin: 'http://127.0.0.1:1' });
    expect(refused.status).toBe(403);
    const out = await t.api('DELETE', '/api/v1/session', undefined, { authorization: '', cookie, origin: new URL(t.hub.apiUrl).origin });
    expect(out.status).toBe(200);
    // Replaying the old cookie (as a copied or stolen one would be) is refused.
    const after = await t.api('GET', '/api/v1/devices', undefined, { authorization: '', cookie });
    expect(after.status).toBe(401);
  });

  it('streams hub events over SSE to an authenticated client', async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.hub.apiUrl}/api/v1/events`, { headers: { authorization: `Bearer ${t.adminToken}` }, signal: controller.signal });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 60 });
    await t.api('POST', '/api/v1/enroll', { token: tok.body.token });
    while (!text.includes('event: device')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toMatch(/event: device\ndata: \{"id":"dev-[0-9a-f]+",/);
    controller.abort();
    const unauth = await fetch(`${t.hub.apiUrl}/api/v1/events`);
    expect(unauth.status).toBe(401);
  });
});
