import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { overflowAnswer } from '../src/http/client-errors.js';
import { useTestHub } from './hub-harness.js';

/** Sends raw bytes and returns the status and JSON body of the answer, read until the server closes. */
function rawRequest(port: number, text: string): Promise<{ status: number; contentType: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const answer = Buffer.concat(chunks).toString();
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      const contentType = /^content-type:\s*(.*)$/im.exec(head)?.[1] ?? '';
      let parsed: unknown = body;
      try {
        parsed = JSON.parse(body);
      } catch {
        /* keep the text: the assertion shows it */
      }
      resolve({ status, contentType, body: parsed });
    });
  });
}

describe('errors raised before routing keep the {error, code} shape', () => {
  const t = useTestHub();
  let port: number;
  beforeAll(() => {
    port = Number(new URL(t.hub.apiUrl).port);
  });

  it('answers a too long path segment with 414 URI_TOO_LONG', async () => {
    const res = await t.hub.http.inject({ method: 'GET', url: `/api/v1/devices/${'d'.repeat(300)}`, headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(res.statusCode).toBe(414);
    expect(res.json()).toEqual({ code: 'URI_TOO_LONG', error: expect.stringMatching(/longer than 200 characters/) });
  });

  it('still routes the longest valid model name (128 characters)', async () => {
    const res = await t.api('GET', `/api/v1/models/${'m'.repeat(128)}/versions`);
    expect(res.status).not.toBe(414);
  });

  it('answers headers over the limit with 431 HEADERS_TOO_LARGE as JSON', async () => {
    const res = await rawRequest(port, `GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(res.contentType).toMatch(/application\/json/);
    expect(res.body).toEqual({ code: 'HEADERS_TOO_LARGE', error: expect.stringMatching(/header fields exceed/) });
  });

  it('answers a URI over the limit with 414 URI_TOO_LONG as JSON', async () => {
    const res = await rawRequest(port, `GET /api/v1/health?${'q'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(res.status).toBe(414);
    expect(res.body).toEqual({ code: 'URI_TOO_LONG', error: expect.stringMatching(/request URI is longer/) });
  });

  it('answers a request that is not HTTP with 400 BAD_REQUEST, and keeps serving', async () => {
    const res = await rawRequest(port, 'HELLO\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'BAD_REQUEST' });
    expect((await t.api('GET', '/api/v1/health')).status).toBe(200);
  });

  it('tells a long request line from long headers by where the line ends', () => {
    const line = (uri: number) => Buffer.from(`GET /${'a'.repeat(uri)} HTTP/1.1\r\nHost: x\r\n`);
    expect(overflowAnswer(line(20_000), 16_384).code).toBe('URI_TOO_LONG');
    expect(overflowAnswer(line(100), 16_384).code).toBe('HEADERS_TOO_LARGE');
    // A packet from the middle of the request says nothing about the request line.
    expect(overflowAnswer(Buffer.from('a'.repeat(5000)), 16_384).code).toBe('HEADERS_TOO_LARGE');
    expect(overflowAnswer(undefined).code).toBe('HEADERS_TOO_LARGE');
  });
});

describe('security headers', () => {
  const t = useTestHub();

  it('sends the dashboard with a CSP that allows only its own scripts and styles, no framing and nosniff', async () => {
    const res = await t.hub.http.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    const csp = String(res.headers['content-security-policy']);
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values.join(' ')]));
    expect(directives.get('default-src')).toBe("'self'");
    expect(directives.get('script-src')).toBe("'self'");
    expect(directives.get('style-src')).toBe("'self'");
    expect(directives.get('frame-ancestors')).toBe("'none'");
    expect(directives.get('object-src')).toBe("'none'");
    // Plain HTTP: no upgrade of the dashboard's own requests to an https:// nobody serves, no HSTS.
    expect(directives.has('upgrade-insecure-requests')).toBe(false);
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('sends nosniff and no-framing on API answers and errors too', async () => {
    const ok = await t.api('GET', '/api/v1/health');
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    const missing = await t.api('GET', '/api/v1/nothing-here');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-content-type-options')).toBe('nosniff');
    expect(missing.headers.get('x-frame-options')).toBe('DENY');
  });
});
