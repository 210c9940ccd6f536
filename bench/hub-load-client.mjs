// The device side of bench/hub-load.mjs, forked into its own process so that its CPU is not counted
// against the hub. One MQTT 3.1.1 connection per enrolled device, behaving like an agent on the wire:
// a Last Will, retained `status` + `reported` and the `desired`/`cmd` subscriptions on every connect,
// then QoS 1 telemetry records with a per-device epoch and seq (schema-checked by shared's encoder).
// The parent drives it with IPC requests `{ id, cmd, ...args }` and gets `{ id, ok, result | error }`.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { deviceTopic, encodeMessage } from '@edgefleet/shared';
import { brokerAddress, CAPABILITIES, deviceBase, disconnectAll, KEEPALIVE_S, nextPacketId as nextId, openConnection, serveCommands, settleInflight } from './device-connection.mjs';
import { encodeField, encodePuback, encodePublish, encodeSubscribe, PACKET, PINGREQ } from './mqtt-wire.mjs';

const SYSTEM = { cpuPercent: 12.5, memUsedMb: 310, memTotalMb: 3800, temperatureC: 48.2, diskUsedPercent: 41, agentRssMb: 62, loadAvg1: 0.4 };
const MODELS = [{ name: 'detector', version: '3', requests: 1200, errors: 0, latencyMs: { p50: 8.1, p90: 9.7, p99: 14.2 } }];
/** How often the scheduler runs; each run publishes every record that fell due since the last one. */
const TICK_MS = 5;

let broker = { host: '127.0.0.1', port: 1883 };
let intervalMs = 2000;
let devices = [];
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

const load = { timer: undefined, start: 0, scheduled: 0, skipped: 0, notConnected: 0 };
const stats = { published: 0, failed: 0, inflight: 0, latencies: [], lastError: undefined };

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const round = (v) => +v.toFixed(2);
const lagMs = (ns) => round(Math.max(0, ns / 1e6 - 10));

/** Retained `status` + `reported` and the `desired`/`cmd` subscriptions, as the agent sends on every connect. */
function onConnected(d) {
  const s = d.socket;
  s.write(encodePublish(d.topics.status, nextId(d), encodeMessage('status', { state: 'online', ts: Date.now() }), true));
  const reported = { capabilities: CAPABILITIES, models: [], desiredVersion: 0, ts: Date.now() };
  s.write(encodePublish(d.topics.reported, nextId(d), encodeMessage('reported', reported), true));
  s.write(encodeSubscribe(nextId(d), [d.topics.desired, d.topics.cmd]));
}

function onPuback(d, body) {
  const p = d.pending.get(body.readUInt16BE(0));
  if (!p) return; // status/reported acknowledgements are not timed
  d.pending.delete(body.readUInt16BE(0));
  stats.inflight--;
  stats.latencies.push(performance.now() - p.t0);
  d.acked.push(p.seq);
}

/** Opens `d`'s connection; resolves true on an accepted CONNACK, false if it is refused, closes or times out. */
function open(d) {
  d.lastSend = performance.now();
  return openConnection(d, broker, stats, {
    onConnected: () => onConnected(d),
    onPacket(type, flags, body) {
      if (type === PACKET.PUBACK) onPuback(d, body);
      else if (type === PACKET.PUBLISH && (flags & 0x06) === 0x02) {
        // A QoS 1 delivery from the hub (desired/cmd): acknowledge it as the agent would.
        const topicLen = body.readUInt16BE(0);
        d.socket.write(encodePuback(body.readUInt16BE(2 + topicLen)));
      }
    },
    onClosed() {
      // Publishes cut off by the close were never acknowledged; they stop counting as in flight.
      stats.inflight -= d.pending.size;
      d.cut += d.pending.size;
      d.pending.clear();
    },
  });
}

function publishTelemetry(d) {
  const seq = ++d.seq;
  const payload = encodeMessage('telemetry', { v: 1, epoch: d.epoch, seq, ts: Date.now(), system: SYSTEM, models: MODELS });
  const id = nextId(d);
  d.pending.set(id, { seq, t0: performance.now() });
  stats.published++;
  stats.inflight++;
  d.lastSend = performance.now();
  d.socket.write(encodePublish(d.topics.telemetry, id, payload));
}

/** Round-robin over the devices at N records per interval: each device once per interval, staggered evenly. */
function tick() {
  const rate = devices.length / intervalMs;
  let due = Math.floor((performance.now() - load.start) * rate) - load.scheduled;
  // A stalled generator does not burst more than one round to catch up; the rest is counted as skipped.
  if (due > devices.length) {
    load.skipped += due - devices.length;
    load.scheduled += due - devices.length;
    due = devices.length;
  }
  for (; due > 0; due--) {
    const d = devices[load.scheduled % devices.length];
    load.scheduled++;
    if (d.connected) publishTelemetry(d);
    else load.notConnected++;
  }
}

/** Keeps quiet connections inside the broker's keep-alive while telemetry is paused. */
const pinger = setInterval(() => {
  const quietSince = performance.now() - (KEEPALIVE_S * 1000) / 3;
  for (const d of devices) {
    if (!d.connected || d.lastSend > quietSince) continue;
    d.socket.write(PINGREQ);
    d.lastSend = performance.now();
  }
}, 5_000);

/** The agent's reconnect back-off: 1 s doubling per failed attempt up to 30 s, ±20 % jitter. */
const backoffMs = (failures) => Math.min(30_000, 1000 * 2 ** failures) * (0.8 + Math.random() * 0.4);

/**
 * Opens every connection with at most `concurrency` devices connecting at once (all at once when it is
 * N). A refused or reset attempt is retried after the agent's back-off until `deadlineMs` has passed,
 * so the time reported is until every device is connected, as with real agents.
 */
async function openAll(concurrency, deadlineMs) {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  let retries = 0;
  let lastConnack = t0;
  let issuedAt = t0;
  const connectOne = async (d) => {
    for (let attempt = 0; ; attempt++) {
      if (await open(d)) return true;
      const wait = backoffMs(attempt);
      if (performance.now() + wait - t0 > deadlineMs) return false;
      retries++;
      await new Promise((r) => setTimeout(r, wait));
    }
  };
  const worker = async () => {
    while (next < devices.length) {
      const d = devices[next++];
      if (next === devices.length) issuedAt = performance.now();
      if (await connectOne(d)) lastConnack = performance.now();
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, devices.length) }, worker));
  return { ms: round(lastConnack - t0), issueMs: round(issuedAt - t0), failed, retries, lastError: stats.lastError };
}

function windowStats() {
  const sorted = stats.latencies.sort((a, b) => a - b);
  const result = {
    acked: sorted.length,
    published: stats.published,
    skipped: load.skipped,
    notConnected: load.notConnected,
    ackMs: { p50: round(percentile(sorted, 0.5)), p99: round(percentile(sorted, 0.99)), max: round(sorted.at(-1) ?? 0) },
    loadGenLoopMs: { p99: lagMs(loop.percentile(99)), max: lagMs(loop.max) },
  };
  stats.latencies = [];
  stats.published = 0;
  load.skipped = 0;
  load.notConnected = 0;
  loop.reset();
  return result;
}

const commands = {
  init(args) {
    broker = brokerAddress(args.brokerUrl);
    intervalMs = args.intervalMs;
    devices = args.devices.map(({ id, secret }) => {
      const topic = (kind) => deviceTopic(id, kind);
      return {
        ...deviceBase({ deviceTopic, encodeMessage }, id, secret),
        acked: [],
        cut: 0,
        pending: new Map(),
        lastSend: 0,
        topics: { status: encodeField(topic('status')), reported: encodeField(topic('reported')), telemetry: encodeField(topic('telemetry')), desired: topic('desired'), cmd: topic('cmd') },
      };
    });
    return { devices: devices.length };
  },
  connect: (args) => openAll(args.concurrency, args.deadlineMs),
  startLoad() {
    load.start = performance.now();
    load.scheduled = 0;
    load.timer = setInterval(tick, TICK_MS);
    return {};
  },
  window: () => windowStats(),
  async stopLoad(args) {
    clearInterval(load.timer);
    load.timer = undefined;
    // Waits until no publish awaits its PUBACK, or the settle time passes.
    return { unacked: await settleInflight(stats, args.settleMs) };
  },
  /** Network loss for every device at once: sockets destroyed, no DISCONNECT, so the broker sends the wills. */
  async drop() {
    const before = devices.reduce((n, d) => n + d.cut, 0);
    const closed = devices.map((d) => (d.socket && !d.socket.destroyed ? new Promise((r) => d.socket.once('close', r)) : undefined));
    for (const d of devices) d.socket?.destroy();
    await Promise.all(closed);
    return { cut: devices.reduce((n, d) => n + d.cut, 0) - before };
  },
  reconnect: (args) => openAll(devices.length, args.deadlineMs),
  /** Acknowledged seqs per device, for the parent's acked-vs-stored check. */
  acked: () => ({ devices: devices.map((d) => ({ id: d.id, epoch: d.epoch, acked: d.acked })) }),
  close() {
    clearInterval(load.timer);
    clearInterval(pinger);
    disconnectAll(devices);
    return {};
  },
};

serveCommands(commands);
