import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError, createApiClient, rawJsonOf, resolveConnection } from '../src/cli/api-client.js';
import { emit, type CommandContext } from '../src/cli/format.js';

const resolve = (hub: string, token?: string) => resolveConnection({ flags: { hub, token }, env: {}, file: undefined, filePath: '/nowhere/fleetctl.json' });
const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return (err as Error).message;
  }
  throw new Error('expected a CliError');
};

describe('fleetctl connection settings a careless user gives', () => {
  it('keeps a base URL and a proxy path prefix, without trailing slashes', () => {
    expect(resolve('http://hub.example:8080/').hub).toBe('http://hub.example:8080');
    expect(resolve(' https://proxy.example/edgefleet/ ').hub).toBe('https://proxy.example/edgefleet');
  });

  it('refuses what would be dropped or doubled, saying what was expected', () => {
    expect(errorOf(() => resolve('hub.example:8080'))).toMatch(/must start with http:\/\/ or https:\/\/; expected e\.g\./);
    expect(errorOf(() => resolve('hub'))).toMatch(/is not a URL/);
    expect(errorOf(() => resolve('http://hub:8080/api/v1/'))).toMatch(/ends in \/api\/v1; give the hub's base URL \(fleetctl adds \/api\/v1\)/);
    expect(errorOf(() => resolve('http://hub:8080/?x=1'))).toMatch(/must not have a \?query/);
    const withPassword = errorOf(() => resolve('http://admin:s3cret@hub:8080'));
    expect(withPassword).toMatch(/must not carry a user or password/);
    expect(withPassword).not.toContain('s3cret');
  });

  it("drops a token's trailing newline and refuses one inside it without echoing the token", () => {
    expect(resolve('http://hub', 'tok-abc\n').token).toBe('tok-abc');
    const inner = errorOf(() => resolve('http://hub', 'tok-abc\nX-Evil: 1'));
    expect(inner).toMatch(/newlines, control or non-ASCII/);
    expect(inner).not.toContain('tok-abc');
    expect(errorOf(() => resolve('http://hub', '  '))).toMatch(/token is empty/);
  });
});

describe('fleetctl against a hub that answers badly', () => {
  let server: Server;
  let base: string;
  /** What the fake server answers next, by path. */
  const answers = new Map<string, (res: ServerResponse) => void>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const answer = answers.get(req.url ?? '');
      if (answer) answer(res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const client = (maxResponseBytes?: number) => createApiClient({ hub: base, token: 'tok' }, maxResponseBytes ? { maxResponseBytes } : {});
  const failure = async (p: Promise<unknown>): Promise<string> => {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    return (err as Error).message;
  };

  it('names an HTML page as not JSON and asks whether the URL is a hub', async () => {
    answers.set('/api/v1/devices', (res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html>login</html>'));
    expect(await failure(client().request('GET', '/devices'))).toBe(`GET /api/v1/devices answered 200 with a body that is not JSON (text/html); is ${base} an edgefleet hub?`);
  });

  it('reports a 500 without JSON by status, with control characters escaped', async () => {
    answers.set('/api/v1/health', (res) => res.writeHead(500).end('boom\x1b]0;pwned\x07'));
    expect(await failure(client().request('GET', '/health'))).toBe('GET /api/v1/health answered HTTP 500: boom\\x1b]0;pwned\\x07');
    answers.set('/api/v1/models', (res) => res.writeHead(500).end());
    expect(await failure(client().request('GET', '/models'))).toBe('GET /api/v1/models answered HTTP 500');
    answers.set('/api/v1/drift', (res) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'bad\x1b[2J', code: 'x' })));
    expect(await failure(client().request('GET', '/drift'))).toBe('bad\\x1b[2J (x)');
  });

  it('stops reading a huge answer, declared or streamed', async () => {
    answers.set('/api/v1/declared', (res) => res.writeHead(200, { 'content-length': String(4096) }).end('x'.repeat(4096)));
    expect(await failure(client(1024).request('GET', '/declared'))).toBe('GET /api/v1/declared answered more than 1024 bytes; is the hub URL right?');
    answers.set('/api/v1/streamed', (res) => {
      res.writeHead(200);
      for (let i = 0; i < 8; i++) res.write('y'.repeat(512));
      res.end();
    });
    expect(await failure(client(1024).request('GET', '/streamed'))).toMatch(/answered more than 1024 bytes/);
  });

  it("--json prints the hub's JSON text as it came, even numbers a parse would round", async () => {
    const text = '{"id":"ro-1","big":12345678901234567890,"name":"a\\u001b"}';
    answers.set('/api/v1/rollouts/ro-1', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(text));
    const data = await client().request<{ name: string }>('GET', '/rollouts/ro-1');
    expect(rawJsonOf(data)).toBe(text);
    const out: string[] = [];
    const ctx = (json: boolean): CommandContext => ({ client: async () => client(), json: () => json, write: (t) => out.push(t), stdout: process.stdout, sleep: async () => {} });
    emit(ctx(true), data, (d) => d.name);
    emit(ctx(false), data, (d) => `name ${d.name}`);
    expect(out).toEqual([`${text}\n`, 'name a\\x1b\n']);
  });
});
