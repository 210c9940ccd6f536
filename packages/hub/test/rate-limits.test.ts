import type { EnrollResponse } from '@edgefleet/shared';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_ATTEMPT_LIMITS } from '../src/auth/attempt-limit.js';
import { DEFAULT_MQTT_AUTH_LIMIT } from '../src/broker/auth-rate-limit.js';
import { connectDevice, enrollDevice, startTestHub, type TestHub } from './hub-harness.js';

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
  let t: TestHub;
  beforeEach(async () => {
    t = await startTestHub();
  });
  afterEach(async () => {
    await t.stop();
  });

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
