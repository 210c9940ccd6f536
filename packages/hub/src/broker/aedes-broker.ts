import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { parseDeviceTopic, TOPIC_TABLE } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { Broker, BrokerPolicy } from './broker.js';
import { connectionCap, readProcessLimits } from './connection-cap.js';

export interface AedesBrokerOptions {
  host: string;
  port: number;
  maxConnections: number;
  policy: BrokerPolicy;
  log: Logger;
}

const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;

function authError(message: string, returnCode = BAD_USERNAME_OR_PASSWORD): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * Embedded aedes on a plain TCP listener. The authenticated username is kept per client object
 * (never the client id) and every policy decision keys on it.
 *
 * Invalid payloads are acknowledged and dropped rather than refused: an `authorizePublish` error
 * makes aedes close the connection, and an agent would then replay the same record from its outbox
 * forever. Dropping = clearing `retain` before aedes stores it, and `authorizeForward` never
 * forwards agent→hub kinds to clients (no device may subscribe to them anyway), so nothing invalid
 * is delivered or retained.
 */
export function createAedesBroker(opts: AedesBrokerOptions): Broker {
  const { policy, log } = opts;
  const usernames = new WeakMap<Client, string>();
  /** Connected clients, so a revoked device's connections can be closed without aedes internals. */
  const connected = new Set<Client>();
  let aedes: Aedes | null = null;
  let server: Server | null = null;
  let port = 0;

  async function build(): Promise<Aedes> {
    const broker = await Aedes.createBroker({
      authenticate(client, username, password, done) {
        if (!username || !password || !policy.authenticate(username, password)) {
          log.info({ username, clientId: client.id }, 'mqtt connect refused: bad credentials');
          return done(authError('bad username or password'), false);
        }
        // aedes hands a session over by client id: another device's id would kick that device off.
        if (client.id !== username && policy.isDeviceId(client.id)) {
          log.warn({ username, clientId: client.id }, "mqtt connect refused: client id is another device's id");
          return done(authError(`client id ${client.id} belongs to another device`, IDENTIFIER_REJECTED), false);
        }
        usernames.set(client, username);
        done(null, true);
      },
      authorizePublish(client, packet, done) {
        const deviceId = client ? usernames.get(client) : undefined;
        if (!deviceId) return done(new Error('publish from an unauthenticated client'));
        policy.inbound(deviceId, packet.topic, packet.payload as Buffer, (verdict) => {
          if (verdict.refuse) return done(new Error(verdict.refuse));
          if (verdict.drop) packet.retain = false;
          done(null);
        });
      },
      authorizeSubscribe(client, sub, done) {
        const deviceId = usernames.get(client);
        if (deviceId && policy.canSubscribe(deviceId, sub.topic)) return done(null, sub);
        log.info({ deviceId, topic: sub.topic }, 'mqtt subscribe refused');
        done(null, null);
      },
      authorizeForward(_client, packet) {
        const parsed = parseDeviceTopic(packet.topic);
        if (parsed && TOPIC_TABLE[parsed.kind].direction === 'agent-to-hub') return null;
        return packet;
      },
    });
    broker.on('client', (client) => {
      const id = usernames.get(client);
      if (!id) return;
      connected.add(client);
      policy.connected(id);
    });
    broker.on('clientDisconnect', (client) => {
      const id = usernames.get(client);
      if (!id) return;
      connected.delete(client);
      policy.disconnected(id);
    });
    broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
    broker.on('connectionError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt connection error'));
    return broker;
  }

  return {
    get port() {
      return port;
    },
    get connections() {
      return connected.size;
    },
    async start() {
      aedes = await build();
      const a = aedes;
      server = createServer((socket) => a.handle(socket));
      const { cap, fdLimit } = connectionCap(opts.maxConnections, readProcessLimits());
      server.maxConnections = cap;
      if (cap < opts.maxConnections) log.warn({ configured: opts.maxConnections, fdLimit, maxConnections: cap }, 'connection cap lowered below the fd limit');
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(opts.port, opts.host, () => {
          server!.off('error', reject);
          resolve();
        });
      });
      port = (server.address() as AddressInfo).port;
      log.info({ host: opts.host, port, maxConnections: server.maxConnections, fdLimit }, 'broker listening');
    },
    async stop() {
      const a = aedes;
      const s = server;
      aedes = null;
      server = null;
      if (a) await new Promise<void>((resolve) => a.close(() => resolve()));
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    publish(topic, payload, { retain }) {
      const a = aedes;
      if (!a) return Promise.reject(new Error('broker is not running'));
      return new Promise((resolve, reject) => {
        a.publish({ cmd: 'publish', topic, payload, qos: 1, retain, dup: false }, (err) => (err ? reject(err) : resolve()));
      });
    },
    disconnectDevice(deviceId) {
      for (const client of connected) {
        if (usernames.get(client) === deviceId) client.close();
      }
    },
  };
}
