import { createServer, type AddressInfo, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

// aedes is the hub's dependency; the agent's tests borrow it from there to run a real broker in-process.
const AEDES_PATH = fileURLToPath(new URL('../../../hub/node_modules/aedes/aedes.js', import.meta.url));

interface AedesClientLike {
  id: string;
  conn: { destroy(): void };
}
interface AedesLike {
  handle: (socket: unknown) => void;
  clients: Record<string, AedesClientLike>;
  close(cb?: () => void): void;
}

export interface TestBroker {
  url: string;
  port: number;
  /** Drops a client's TCP connection without a DISCONNECT, as a network failure would. */
  dropClient(clientId: string): void;
  close(): Promise<void>;
}

export async function startBroker(creds: { username: string; password: string }, port = 0): Promise<TestBroker> {
  const { Aedes } = (await import(AEDES_PATH)) as { Aedes: { createBroker(opts: unknown): Promise<AedesLike> } };
  const aedes = await Aedes.createBroker({
    authenticate(_client: unknown, username: string | undefined, password: Buffer | undefined, done: (err: Error | null, ok: boolean) => void) {
      const ok = username === creds.username && password?.toString() === creds.password;
      done(ok ? null : Object.assign(new Error('bad credentials'), { returnCode: 4 }), ok);
    },
  });
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${actual}`,
    port: actual,
    dropClient(clientId) {
      aedes.clients[clientId]?.conn.destroy();
    },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const c of Object.values(aedes.clients)) c.conn.destroy();
        server.close(() => aedes.close(() => resolve()));
      })),
  };
}
