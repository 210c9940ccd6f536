import type { HubHealth } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { useTestHub } from './hub-harness.js';

describe('GET /api/v1/health', () => {
  const t = useTestHub();
  const anonymous = (path: string) => fetch(`${t.hub.apiUrl}${path}`);

  it('answers public liveness only without credentials', async () => {
    const res = await anonymous('/api/v1/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('refuses ?reset=1 without credentials: nobody outside can wipe the event-loop measurement', async () => {
    const res = await anonymous('/api/v1/health?reset=1');
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('refuses a bad bearer token instead of quietly answering less', async () => {
    const res = await t.api('GET', '/api/v1/health', undefined, { authorization: 'Bearer wrong' });
    expect(res.status).toBe(401);
  });

  it('lets a session cookie read the numbers but not reset them: any page on another port of the same host can make a browser send that GET', async () => {
    const login = await t.api('POST', '/api/v1/session', { token: t.adminToken }, { authorization: '' });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const res = await t.api<{ code: string; error: string }>('GET', '/api/v1/health?reset=1', undefined, { authorization: '', cookie });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN');
    expect(res.body.error).toMatch(/Authorization: Bearer/);
  });

  it('gives an operator (bearer or session) the counters, connections, storage and event-loop numbers, and lets it reset', async () => {
    const res = await t.api<HubHealth>('GET', '/api/v1/health?reset=1');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      connections: 0,
      ingest: { received: 0, storageErrors: 0 },
      storage: { errorsSinceSuccess: 0, lastError: null, lastErrorAt: null },
      eventLoopDelayMs: { p50: expect.any(Number), p99: expect.any(Number), max: expect.any(Number) },
    });

    const login = await t.api('POST', '/api/v1/session', { token: t.adminToken }, { authorization: '' });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const viaSession = await t.api<HubHealth>('GET', '/api/v1/health', undefined, { authorization: '', cookie });
    expect(viaSession.status).toBe(200);
    expect(viaSession.body.ingest).toBeDefined();
  });
});
