import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';

export interface TestBroker {
  url: string;
  port: number;
  /** Drops a client's TCP connection without a DISCONNECT, as a network failure would. */
  dropClient(clientId: string): void;
  close(): Promise<void>;
}

export async function startBroker(creds: { username: string; password: string }, port = 0): Promise<TestBroker> {
  const aedes = await Aedes.createBroker({
    authenticate(_client, username, password, done) {
      const ok = username === creds.username && password?.toString() === creds.password;
      done(ok ? null : (Object.assign(new Error('bad credentials'), { returnCode: 4 }) as AuthenticateError), ok);
    },
  });
  // Connected clients by id, with their sockets, to cut a connection the way a network failure would.
  const clients = new Map<string, Client>();
  aedes.on('client', (client) => clients.set(client.id, client));
  aedes.on('clientDisconnect', (client) => clients.delete(client.id));
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${actual}`,
    port: actual,
    dropClient(clientId) {
      clients.get(clientId)?.conn.destroy();
    },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const c of clients.values()) c.conn.destroy();
        server.close(() => aedes.close(() => resolve()));
      })),
  };
}
