import type { FastifyInstance } from 'fastify';
import { EdgefleetError } from '@edgefleet/shared';

// A web page can point a name it controls at 127.0.0.1 (DNS rebinding) and then talk to the loopback
// listener as if it were its own origin. The browser still sends the page's name as Host and its
// origin as Origin, so the listener answers only requests addressed to a loopback name.

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

function isLoopbackAuthority(authority: string, port: number): boolean {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority.toLowerCase());
  if (!m) return false;
  return LOOPBACK_HOSTS.has(m[1]!) && (m[2] === undefined || Number(m[2]) === port);
}

/** Why a request to the loopback listener on `port` is refused, or undefined when it may be served. Pure. */
export function loopbackRefusal(host: string | undefined, origin: string | undefined, port: number): string | undefined {
  const allowed = `127.0.0.1:${port}, localhost:${port} or [::1]:${port}`;
  if (host === undefined || !isLoopbackAuthority(host, port)) {
    return `Host "${host ?? ''}" is not this agent's loopback address; expected ${allowed} (requests through other names are refused against DNS rebinding)`;
  }
  if (origin === undefined) return undefined;
  const m = /^http:\/\/([^/]+)$/.exec(origin);
  if (!m || !isLoopbackAuthority(m[1]!, port)) {
    return `Origin "${origin}" may not use the agent's local API; expected no Origin or http:// with ${allowed}`;
  }
  return undefined;
}

/** Refuses (403) every request not addressed to a loopback name of the port the app listens on. */
export function guardLoopback(app: FastifyInstance): void {
  // The bound port is fixed once listening; reading it is a getsockname call, so not once per request.
  let port = 0;
  app.addHook('onRequest', async (req) => {
    if (port === 0) {
      const address = app.server.address();
      port = typeof address === 'object' && address ? address.port : 0;
    }
    const problem = loopbackRefusal(req.headers.host, req.headers.origin, port);
    if (problem) throw new EdgefleetError('FORBIDDEN', problem);
  });
}
