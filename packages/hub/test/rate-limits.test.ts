import type { EnrollResponse } from '@edgefleet/shared';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ATTEMPT_LIMITS } from '../src/auth/attempt-limit.js';
import { DEFAULT_MQTT_AUTH_LIMIT } from '../src/broker/auth-rate-limit.js';
import { connectDevice, enrollDevice, useTestHub, type TestHub } from './hub-harness.js';

/** One CONNECT with the real mqtt client: the CONNACK return code (0 = accepted). */
function connackCode(t: TestHub, username: string, password: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(t.hub.brokerUrl, { protocolVersion: 4, clientId: `probe-${Math.random()}`, username, password, reconnectPeriod: 0, connectTimeout: 5000 });
    client.once('connect', () => {
      client.end(true);
      resolve(0);
    });
    client.once('error', (err: Error & { code?: number }) => {
      client.end(true);
      if (typeof err.code === 'number') resolve(err.code);
      else reject(err);
    });
  });
}

describe('rate limits on failed attempts, per source address', () => {
  const t = useTestHub({}, { each: true });

  const enroll = (token: string, remoteAddress = '127.0.0.1') =>
    t.hub.http.inject({ method: 'POST', url: '/api/v1/enroll', remoteAddress, headers: { host: new URL(t.hub.apiUrl).host }, payload: { token } });

  it('answers 429 with Retry-After to enrollment after too many bad tokens, also for a good token, and not to another address', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.enroll;
    for (let i = 0; i < maxFailures; i++) expect((await enroll(`efe_wrong-${i}`)).statusCode).toBe(401);
    const limited = await enroll('efe_wrong-again');
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'TOO_MANY_REQUESTS', error: expect.stringMatching(/too many failed attempts from 127\.0\.0\.1/) });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);

    const good = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 });
    expect((await enroll(good.body.token)).statusCode).toBe(429);
    // Another address is not affected, and the refused attempt did not use up the token.
    expect((await enroll(good.body.token, '10.1.2.3')).statusCode).toBe(201);
  });

  it('does not count successful enrollments: bulk enrollment from one address goes on', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.enroll;
    for (let i = 0; i < maxFailures + 5; i++) {
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 });
      expect((await enroll(tok.body.token)).statusCode).toBe(201);
    }
  });

  it('answers 429 to session logins after too many bad tokens', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.session;
    const login = (token: string) => t.hub.http.inject({ method: 'POST', url: '/api/v1/session', payload: { token } });
    for (let i = 0; i < maxFailures; i++) expect((await login(`wrong-${i}`)).statusCode).toBe(401);
    const limited = await login(t.adminToken);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'TOO_MANY_REQUESTS' });
    expect(limited.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
    expect(limited.headers['set-cookie']).toBeUndefined();
  });

  it('holds attempts sent all at once to the limit: unfinished ones count until they fail or succeed', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.session;
    const burst = await Promise.all(
      Array.from({ length: maxFailures * 4 }, (_, i) => t.hub.http.inject({ method: 'POST', url: '/api/v1/session', payload: { token: `wrong-${i}` } })),
    );
    const statuses = burst.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(maxFailures);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
    expect((await t.hub.http.inject({ method: 'POST', url: '/api/v1/session', payload: { token: t.adminToken } })).statusCode).toBe(429);
  });

  it('lets more good enrollments than the limit run at once from one address: they wait their turn, none is refused', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.enroll;
    const tokens = [];
    for (let i = 0; i < maxFailures * 2; i++) tokens.push((await t.api<{ token: string }>('POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 })).body.token);
    const answers = await Promise.all(tokens.map((token) => enroll(token)));
    expect(answers.map((r) => r.statusCode)).toEqual(tokens.map(() => 201));
  });

  it('counts an IPv6 /64 as one address: a host cannot take a fresh address for every guess', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.enroll;
    for (let i = 1; i <= maxFailures; i++) expect((await enroll(`efe_wrong-${i}`, `2001:db8:1:2::${i.toString(16)}`)).statusCode).toBe(401);
    expect((await enroll('efe_wrong-again', '2001:db8:1:2:ffff:ffff:ffff:ffff')).statusCode).toBe(429);
    expect((await enroll('efe_wrong-again', '2001:db8:1:3::1')).statusCode).toBe(401);
    // IPv4 clients of a dual-stack listener appear as IPv4-mapped addresses: each is still its own address.
    for (let i = 1; i <= maxFailures; i++) expect((await enroll(`efe_wrong-${i}`, '::ffff:10.0.0.1')).statusCode).toBe(401);
    expect((await enroll('efe_wrong-again', '::ffff:10.0.0.1')).statusCode).toBe(429);
    expect((await enroll('efe_wrong-again', '::ffff:10.0.0.2')).statusCode).toBe(401);
  });

  it('ignores X-Forwarded-For: a client cannot choose the address it is counted under', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.session;
    const login = (i: number) =>
      t.hub.http.inject({ method: 'POST', url: '/api/v1/session', headers: { 'x-forwarded-for': `10.9.0.${i}`, 'x-real-ip': `10.9.0.${i}` }, payload: { token: `wrong-${i}` } });
    for (let i = 0; i < maxFailures; i++) expect((await login(i)).statusCode).toBe(401);
    expect((await login(200)).statusCode).toBe(429);
  });

  it('limits bad bearer tokens on API routes as well: the login limit cannot be sidestepped', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.bearer;
    const get = (token: string, remoteAddress = '127.0.0.1') =>
      t.hub.http.inject({ method: 'GET', url: '/api/v1/devices', remoteAddress, headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < maxFailures; i++) expect((await get(`guess-${i}`)).statusCode).toBe(401);
    const limited = await get(t.adminToken);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'TOO_MANY_REQUESTS' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await get(t.adminToken, '10.1.2.3')).statusCode).toBe(200);
  });

  it('does not count a stale dashboard cookie: a reconnecting event stream cannot lock its operator out of logging in', async () => {
    const { maxFailures } = DEFAULT_ATTEMPT_LIMITS.session;
    for (let i = 0; i < maxFailures * 2; i++) {
      const res = await t.hub.http.inject({ method: 'GET', url: '/api/v1/devices', cookies: { edgefleet_session: `efs_stale-${i}` } });
      expect(res.statusCode).toBe(401);
    }
    expect((await t.hub.http.inject({ method: 'POST', url: '/api/v1/session', payload: { token: t.adminToken } })).statusCode).toBe(200);
  });

  it('accepts the Bearer scheme in any case (RFC 9110 §11.1)', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const res = await t.hub.http.inject({ method: 'GET', url: '/api/v1/devices', headers: { authorization: `${scheme} ${t.adminToken}` } });
      expect(res.statusCode, scheme).toBe(200);
    }
  });

  it('refuses MQTT CONNECT from an address with too many failed logins, before checking credentials', async () => {
    const dev: EnrollResponse = await enrollDevice(t);
    for (let i = 0; i < DEFAULT_MQTT_AUTH_LIMIT.maxFailures; i++) {
      expect(await connackCode(t, dev.deviceId, `efd_wrong-${i}`)).toBe(4); // bad username or password
    }
    // Even the right secret is refused now ("server unavailable"): the refusal looks nothing up.
    expect(await connackCode(t, dev.deviceId, dev.secret)).toBe(3);
    await expect(connectDevice(t, dev)).rejects.toThrow(/Server unavailable/i);
  });
});
