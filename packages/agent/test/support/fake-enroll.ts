import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EnrollRequest, EnrollResponse } from '@edgefleet/shared';

/** A real HTTP server answering POST /api/v1/enroll like the hub: one valid token, single use. */
export async function startEnrollServer(validToken: string, answer: Omit<EnrollResponse, 'apiUrl'> & { apiUrl?: string }) {
  const requests: EnrollRequest[] = [];
  let used = false;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/v1/enroll') {
        res.writeHead(404).end('{"error":"not found","code":"NOT_FOUND"}');
        return;
      }
      const parsed = JSON.parse(body) as EnrollRequest;
      requests.push(parsed);
      if (parsed.token !== validToken || used) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"enrollment token is expired, used or unknown","code":"TOKEN_INVALID"}');
        return;
      }
      used = true;
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ apiUrl: url, ...answer }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
