import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHub, type BuiltHub } from '../src/app.js';
import { DEFAULT_CONFIG } from '../src/config.js';
import { databaseDigest } from './database-digest.js';

/**
 * Random and malformed requests to every route of the hub's API, through inject() on an app that
 * never listens: no 5xx, and a rejected request leaves the database exactly as it was.
 */
const ADMIN = 'p'.repeat(43);
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** Routes kept out of the OpenAPI document (SSE, the document itself, the dashboard's files). */
const HIDDEN_ROUTES = [{ method: 'GET', path: '/api/v1/openapi.json' }, { method: 'GET', path: '/' }];

interface RouteRef {
  method: string;
  path: string;
}

/** Every documented route, as `{method, path}` with `{param}` placeholders. */
function documentedRoutes(hub: BuiltHub): RouteRef[] {
  const doc = hub.http.swagger() as { paths: Record<string, Record<string, unknown>> };
  const routes: RouteRef[] = [...HIDDEN_ROUTES];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) routes.push({ method: method.toUpperCase(), path });
  }
  return routes;
}

const segment = fc.oneof(
  fc.constantFrom('dev-000000000000', 'demo', '1.0.0', 'x', '..', '%2e%2e', 'a'.repeat(300), '0', '-1', 'null', '%00', 'ünï', '{}'),
  fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent),
  fc.stringMatching(/^[0-9a-f]{64}$/),
);

const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({
    token: fc.oneof(fc.string(), fc.constant(ADMIN)),
    name: fc.string(),
    labels: fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string(), fc.integer())),
    ttlSeconds: fc.oneof(fc.integer(), fc.double(), fc.constant(1e308)),
    model: fc.string(),
    version: fc.string(),
    target: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.record({ labels: fc.dictionary(fc.string(), fc.string()) }), fc.record({ devices: fc.array(fc.string()) })),
    role: fc.string(),
  }, { requiredKeys: [] }),
);

const body = fc.oneof(
  fc.constant(undefined),
  jsonValue.map((v) => ({ payload: JSON.stringify(v), type: 'application/json' })),
  fc.uint8Array({ maxLength: 2048 }).map((b) => ({ payload: Buffer.from(b), type: 'application/octet-stream' })),
  fc.string({ maxLength: 200 }).map((s) => ({ payload: s, type: fc.sample(fc.constantFrom('text/plain', 'application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1'), 1)[0]! })),
);

const auth = fc.constantFrom<Record<string, string>>(
  { authorization: `Bearer ${ADMIN}` },
  { authorization: `Bearer ${ADMIN}` },
  {},
  { authorization: 'Bearer nope' },
  { authorization: 'Basic ZGV2LTA6eA==' },
  { cookie: 'edgefleet_session=garbage' },
);

const query = fc.oneof(
  fc.constant(''),
  fc.dictionary(fc.constantFrom('labels', 'online', 'reset', 'limit', 'state', 'x'), fc.string({ maxLength: 20 }), { maxKeys: 3 }).map((q) => `?${new URLSearchParams(q)}`),
);

describe('hub HTTP API under random and malformed requests', () => {
  let dataDir: string;
  let hub: BuiltHub;
  let db: Database.Database;
  let routes: RouteRef[];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-props-'));
    hub = await buildHub({ ...DEFAULT_CONFIG, dataDir, host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: ADMIN }, { log: pino({ level: 'silent' }) });
    db = new Database(join(dataDir, 'hub.db'), { readonly: true, fileMustExist: true });
    routes = documentedRoutes(hub);
  });

  afterAll(async () => {
    db?.close();
    await hub?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('documents the routes it is about to try', () => {
    const paths = routes.map((r) => `${r.method} ${r.path}`);
    for (const expected of ['POST /api/v1/enroll', 'GET /api/v1/devices', 'POST /api/v1/models/{name}/versions', 'POST /api/v1/rollouts', 'GET /api/v1/artifacts/{sha256}']) {
      expect(paths).toContain(expected);
    }
  });

  it('answers every request below 500, and a rejected one changes nothing stored', async () => {
    const request = fc.record({
      route: fc.constantFrom(...routes),
      method: fc.oneof(fc.constant(null), fc.constantFrom(...METHODS)),
      params: fc.array(segment, { minLength: 4, maxLength: 4 }),
      query,
      body,
      auth,
      range: fc.option(fc.constantFrom('bytes=0-10', 'bytes=5-', 'bytes=-3', 'items=0-1', 'bytes=9-1', 'bytes=abc', 'bytes=0-1,3-4'), { nil: undefined }),
      origin: fc.option(fc.constantFrom('http://evil.example', 'null', 'http://localhost:80'), { nil: undefined }),
      // Many source addresses, so the per-address limits on bad credentials do not turn later runs into 429s.
      remoteAddress: fc.ipV4(),
    });
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let i = 0;
        const url = r.route.path.replace(/\{[^}]+\}/g, () => r.params[i++ % r.params.length]!) + r.query;
        const headers: Record<string, string> = { ...r.auth };
        if (r.body) headers['content-type'] = r.body.type;
        if (r.range) headers.range = r.range;
        if (r.origin) headers.origin = r.origin;
        const before = databaseDigest(db);
        const res = await hub.http.inject({ method: r.method ?? (r.route.method as 'GET'), url, headers, remoteAddress: r.remoteAddress, ...(r.body ? { payload: r.body.payload } : {}) });
        expect(res.statusCode, `${r.method ?? r.route.method} ${url} → ${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500);
        if (res.statusCode >= 400) {
          expect(databaseDigest(db), `${r.method ?? r.route.method} ${url} was rejected (${res.statusCode}) but changed stored state`).toBe(before);
          if (res.headers['content-type']?.toString().startsWith('application/json')) {
            const parsed = res.json() as { error?: unknown; code?: unknown };
            expect(typeof parsed.error, `error body of ${url}: ${res.body}`).toBe('string');
            expect(typeof parsed.code, `error code of ${url}: ${res.body}`).toBe('string');
          }
        }
      }),
      { numRuns: 400 },
    );
    const health = await hub.http.inject({ method: 'GET', url: '/api/v1/health', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(health.statusCode).toBe(200);
  });
});
