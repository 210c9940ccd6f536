import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { parseDeviceTopic, TOPIC_TABLE } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { createAuthRateLimit, DEFAULT_MQTT_AUTH_LIMIT, type AuthRateLimit } from './auth-rate-limit.js';
import type { Broker, BrokerPolicy } from './broker.js';
import { connectionCap, readProcessLimits } from './connection-cap.js';
import { createConnectionAdmission, type ConnectionAdmission } from './connection-admission.js';
import { createPacketSizeGuard } from './packet-size-guard.js';
import { indexRetained, type RetainedPersistence } from './retained-index.js';

export interface AedesBrokerOptions {
  host: string;
  port: number;
  maxConnections: number;
  /** Largest MQTT packet accepted (remaining length, bytes); a bigger one closes its connection. Default 1 MiB. */
  maxPacketBytes?: number;
  policy: BrokerPolicy;
  log: Logger;
  /** Failed logins per source address; past the limit a CONNECT is refused before any lookup. */
  authLimit?: AuthRateLimit;
  /** MQTTS with this PEM certificate (chain) and key; plain MQTT when absent. */
  tls?: { cert: string; key: string };
}

/** Above every device kind's payload limit (the largest is 256 KB), so those are dropped and counted, not cut off. */
export const DEFAULT_MAX_PACKET_BYTES = 1024 * 1024;

/**
 * Pending connections the kernel queues before accept (capped by net.core.somaxconn). Node's 511
 * overflowed in a 10,000-device reconnect storm: refused SYNs come back only after a 1 s, 3 s… retry.
 */
const LISTEN_BACKLOG = 4096;

/** Connections in their CONNECT handshake at once, and how long one may hold its slot (see connection-admission.ts). */
const HANDSHAKES = { limit: 256, slotMs: 500 };

const IDENTIFIER_REJECTED = 2;
const SERVER_UNAVAILABLE = 3;
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
  const authLimit = opts.authLimit ?? createAuthRateLimit(DEFAULT_MQTT_AUTH_LIMIT);
  let aedes: Aedes | null = null;
  let server: Server | null = null;
  let port = 0;

  async function build(): Promise<Aedes> {
    const broker = await Aedes.createBroker({
      authenticate(client, username, password, done) {
        const address = (client.conn as { remoteAddress?: string }).remoteAddress ?? 'unknown';
        if (authLimit.blocked(address)) {
          log.debug({ address, clientId: client.id }, 'mqtt connect refused: too many failed logins from this address');
          return done(authError('too many failed logins from this address: retry later', SERVER_UNAVAILABLE), false);
        }
        if (!username || !password || !policy.authenticate(username, password)) {
          authLimit.failed(address);
          log.info({ username, clientId: client.id, address }, 'mqtt connect refused: bad credentials');
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
    // The handshake is over once CONNACK went out and queued packets ran: admit the next socket.
    broker.on('clientReady', (client) => admission?.settle(client.conn as Socket));
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
    // aedes types its persistence as `any`.
    indexRetained((broker as unknown as { persistence: RetainedPersistence }).persistence);
    return broker;
  }

  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  let admission: ConnectionAdmission<Socket> | null = null;

  /** Hands a connection to aedes behind the packet size guard, a bounded number of handshakes at a time. */
  function accept(a: Aedes, socket: Socket): void {
    admission ??= createConnectionAdmission<Socket>(HANDSHAKES, (s) => guardAndHandle(a, s));
    admission.admit(socket);
  }

  function guardAndHandle(a: Aedes, socket: Socket): void {
    const guard = createPacketSizeGuard(maxPacketBytes);
    const settle = () => admission?.settle(socket);
    socket.once('close', settle);
    // With aedes reading through 'readable', 'data' fires for each chunk it reads, before it parses it.
    // Attached in the same tick as aedes' own listener: alone, a 'data' listener would start the flow.
    socket.on('data', (chunk: Buffer) => {
      const size = guard.push(chunk);
      if (size === null) return;
      log.warn({ remote: socket.remoteAddress, size, maxPacketBytes }, 'mqtt packet over the size limit: connection closed');
      socket.destroy();
    });
    a.handle(socket);
  }

  /** TCP, or TLS when configured: aedes reads MQTT from whichever stream the server hands it. */
  function listener(a: Aedes): Server {
    if (!opts.tls) return createServer((socket) => accept(a, socket));
    const tlsServer = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, (socket) => accept(a, socket));
    // A client that does not trust the certificate (or speaks plain MQTT) fails here, before aedes sees it.
    tlsServer.on('tlsClientError', (err, socket) => log.debug({ remote: socket.remoteAddress, err: err.message }, 'mqtts handshake failed'));
    return tlsServer;
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
      server = listener(a);
      const { cap, fdLimit } = connectionCap(opts.maxConnections, readProcessLimits());
      server.maxConnections = cap;
      if (cap < opts.maxConnections) log.warn({ configured: opts.maxConnections, fdLimit, maxConnections: cap }, 'connection cap lowered below the fd limit');
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen({ port: opts.port, host: opts.host, backlog: LISTEN_BACKLOG }, () => {
          server!.off('error', reject);
          resolve();
        });
      });
      port = (server.address() as AddressInfo).port;
      log.info({ host: opts.host, port, tls: opts.tls !== undefined, maxConnections: server.maxConnections, fdLimit }, 'broker listening');
    },
    async stop() {
      const a = aedes;
      const s = server;
      aedes = null;
      server = null;
      admission?.stop();
      admission = null;
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
