// What every simulated-device process of the benches (hub-load-client.mjs, rollout-devices.mjs) does
// the same way: one hand-encoded MQTT 3.1.1 connection per enrolled device with its Last Will, the
// CONNACK check, packet ids, an orderly DISCONNECT, and the IPC loop the parent bench drives it by.
// What a device says once connected, and what it does with what it receives, is each bench's own.
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { encodeConnect, PACKET, packetReader } from './mqtt-wire.mjs';

/** What a simulated device reports it is: a Raspberry Pi 4 class board. */
export const CAPABILITIES = {
  arch: 'arm64',
  platform: 'linux',
  cores: 4,
  memoryMb: 3800,
  cpuModel: 'Cortex-A72',
  cpuFlags: ['neon', 'asimd'],
  executionProviders: ['cpu'],
  accelerators: [],
  agentVersion: 'bench',
};
export const KEEPALIVE_S = 60;
/** A device whose CONNECT is unanswered this long counts as failed (mqtt.js's default is 30 s). */
const CONNECT_TIMEOUT_MS = 60_000;
/** DISCONNECT: the hub sees an orderly goodbye and sends no will. */
const DISCONNECT = Buffer.from([0xe0, 0x00]);

/**
 * The connection state every simulated device has; each bench adds its own fields. `shared` is the
 * measured checkout's @edgefleet/shared (for topics and the schema-checked will payload).
 */
export function deviceBase(shared, id, secret) {
  const will = { topic: shared.deviceTopic(id, 'status'), payload: shared.encodeMessage('status', { state: 'offline' }) };
  return {
    id,
    epoch: randomBytes(12).toString('base64url'),
    seq: 0,
    packetId: 0,
    socket: undefined,
    connected: false,
    connectPacket: encodeConnect({ clientId: id, username: id, password: secret, keepalive: KEEPALIVE_S, will }),
  };
}

/** `mqtt://host:port` as net.createConnection takes it. */
export function brokerAddress(brokerUrl) {
  const url = new URL(brokerUrl);
  return { host: url.hostname, port: Number(url.port || 1883) };
}

export function nextPacketId(d) {
  d.packetId = (d.packetId % 65535) + 1;
  return d.packetId;
}

/**
 * Opens `d`'s connection to `broker`; resolves true on an accepted CONNACK (after `onConnected`),
 * false if it is refused, closes or times out. Every other packet goes to `onPacket`; `onClosed`
 * runs whenever the socket closes. Errors are kept in `stats.lastError`.
 */
export function openConnection(d, broker, stats, { onConnected, onPacket, onClosed }) {
  return new Promise((resolve) => {
    const socket = createConnection(broker);
    socket.setNoDelay(true);
    d.socket = socket;
    const timer = setTimeout(() => {
      stats.lastError = `no CONNACK within ${CONNECT_TIMEOUT_MS} ms`;
      socket.destroy();
    }, CONNECT_TIMEOUT_MS);
    socket.on(
      'data',
      packetReader((type, flags, body) => {
        if (type !== PACKET.CONNACK) return onPacket(type, flags, body);
        clearTimeout(timer);
        if (body[1] !== 0) {
          stats.lastError = `CONNACK return code ${body[1]}`;
          socket.destroy();
          return;
        }
        d.connected = true;
        socket.cork();
        onConnected();
        socket.uncork();
        resolve(true);
      }),
    );
    socket.on('error', (err) => (stats.lastError = err.message));
    socket.on('close', () => {
      clearTimeout(timer);
      d.connected = false;
      onClosed();
      resolve(false);
    });
    socket.write(d.connectPacket);
  });
}

/** Waits until `stats.inflight` publishes are all acknowledged or `timeoutMs` passes; answers how many were not. */
export async function settleInflight(stats, timeoutMs) {
  const until = performance.now() + timeoutMs;
  while (stats.inflight > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  return stats.inflight;
}

export function disconnectAll(devices) {
  for (const d of devices) if (d.connected) d.socket.end(DISCONNECT);
}

/**
 * Answers the parent's IPC requests `{ id, cmd, ...args }` with `{ id, ok, result | error }` from
 * `commands`, and ends this process when the parent goes.
 */
export function serveCommands(commands) {
  process.on('message', async (msg) => {
    try {
      process.send({ id: msg.id, ok: true, result: await commands[msg.cmd](msg) });
    } catch (err) {
      process.send({ id: msg.id, ok: false, error: err.stack ?? String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
