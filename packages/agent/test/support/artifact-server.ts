import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

/** A real HTTP server standing in for the hub's artifact route: Basic auth, Range, and scripted cut-offs. */
export interface ArtifactServer {
  apiUrl: string;
  requests: SeenRequest[];
  files: Map<string, Uint8Array>;
  /** Cut the connection after this many body bytes, once per entry (consumed in order). */
  cutAfter: number[];
  /** Answer 200 with the whole file even when a Range is asked for. */
  ignoreRange: boolean;
  /** Answer this many requests with 503 before serving again. */
  unavailable: number;
  /** Run before the body of a served file is sent, once per entry (consumed in order). */
  beforeBody: Array<() => Promise<void>>;
  close(): Promise<void>;
}

export async function startArtifactServer(creds: { username: string; password: string }): Promise<ArtifactServer> {
  const expectedAuth = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
  const state: Omit<ArtifactServer, 'apiUrl' | 'close'> = { requests: [], files: new Map(), cutAfter: [], ignoreRange: false, unavailable: 0, beforeBody: [] };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    state.requests.push({ path, range: req.headers.range, authorization: req.headers.authorization });
    if (req.headers.authorization !== expectedAuth) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"device credentials required","code":"UNAUTHORIZED"}');
      return;
    }
    if (state.unavailable > 0) {
      state.unavailable--;
      res.writeHead(503).end('{"error":"busy","code":"UNAVAILABLE"}');
      return;
    }
    const m = /^\/api\/v1\/artifacts\/([0-9a-f]{64})$/.exec(path);
    const file = m ? state.files.get(m[1]!) : undefined;
    if (!file) {
      res.writeHead(404).end('{"error":"no such artifact","code":"NOT_FOUND"}');
      return;
    }
    const hook = state.beforeBody.shift();
    if (hook) void hook().then(() => send(req, res, file));
    else send(req, res, file);
  }

  function send(req: IncomingMessage, res: ServerResponse, file: Uint8Array): void {
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !state.ignoreRange) {
      start = Number(range[1]);
      if (start >= file.byteLength) {
        res.writeHead(416, { 'content-range': `bytes */${file.byteLength}` }).end();
        return;
      }
      res.writeHead(206, {
        'content-length': file.byteLength - start,
        'content-range': `bytes ${start}-${file.byteLength - 1}/${file.byteLength}`,
        'accept-ranges': 'bytes',
      });
    } else {
      res.writeHead(200, { 'content-length': file.byteLength, 'accept-ranges': 'bytes' });
    }
    const body = file.subarray(start);
    const cut = state.cutAfter.shift();
    if (cut === undefined) {
      res.end(body);
      return;
    }
    // Send exactly `cut` bytes, then drop the connection as a flaky network would.
    res.write(body.subarray(0, cut), () => res.socket?.destroy());
  }

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    apiUrl: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
