// The device side of bench/rollout-switch.mjs, forked into its own process so that its CPU is not
// counted against the hub. One MQTT 3.1.1 connection per enrolled device that does what an agent does
// on the wire for a deployment, without onnxruntime: it subscribes to its retained `desired`; on a new
// assignment it downloads the artifact from the hub's real route (HTTP Basic with its id and secret),
// checks the sha256 and size against the signed manifest, publishes QoS 1 `events` records through
// downloading → verifying → loading → health-check → active (or `ready` when the assignment says
// activate: false, then active once a later document says true), then a retained `reported` with the
// new version active. Every payload is built with shared's encoder, which validates it against the
// schema the hub checks, so the hub drops nothing.
// The parent drives it with IPC requests `{ id, cmd, ...args }` and gets `{ id, ok, result | error }`.
import { createHash } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { brokerAddress, CAPABILITIES, deviceBase, disconnectAll, KEEPALIVE_S, nextPacketId as nextId, openConnection, serveCommands, settleInflight } from './device-connection.mjs';
import { encodeField, encodePuback, encodePublish, encodeSubscribe, PACKET, PINGREQ } from './mqtt-wire.mjs';
import { importShared } from './rollout-root.mjs';

const shared = await importShared();
const { decodeMessage, deviceTopic, encodeMessage } = shared;

/** Download attempts before the device gives up on an assignment (the agent's own budget is larger). */
const DOWNLOAD_ATTEMPTS = 5;
/** What the agent does after the digest check and before the switch; instant here (no onnxruntime). */
const PHASES_AFTER_VERIFY = ['loading', 'health-check'];

let broker = { host: '127.0.0.1', port: 1883 };
let apiUrl = '';
let devices = [];
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const stats = { downloads: 0, downloadedBytes: 0, downloadRetries: 0, failed: 0, invalidDesired: 0, eventsPublished: 0, inflight: 0, lastError: undefined };

const round = (v) => +v.toFixed(2);

/** A QoS 1 publish; `tracked` ones count as in flight until their PUBACK. */
function publish(d, topicField, payload, { retain = false, tracked = false } = {}) {
  if (!d.connected) return;
  const id = nextId(d);
  if (tracked) {
    d.pending.add(id);
    stats.inflight++;
  }
  d.socket.write(encodePublish(topicField, id, payload, retain));
}

function publishEvent(d, assignment, phase, extra = {}) {
  const m = assignment.manifest.manifest;
  const record = { v: 1, epoch: d.epoch, seq: ++d.seq, ts: Date.now(), type: 'deployment', model: m.model, version: m.version, sha256: m.sha256, phase, ...extra };
  if (assignment.rolloutId) record.rolloutId = assignment.rolloutId;
  stats.eventsPublished++;
  publish(d, d.topics.events, encodeMessage('events', record), { tracked: true });
}

function publishReported(d) {
  const models = [...d.installed.values()].flat();
  const reported = { capabilities: CAPABILITIES, models, desiredVersion: d.desiredVersion, ts: Date.now() };
  publish(d, d.topics.reported, encodeMessage('reported', reported), { retain: true });
}

/** GET /api/v1/artifacts/{sha256} as the device, retried on network errors and 5xx; answers the bytes. */
async function download(d, sha256) {
  const auth = `Basic ${Buffer.from(`${d.id}:${d.secret}`).toString('base64')}`;
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${apiUrl}/api/v1/artifacts/${sha256}`, { headers: { authorization: auth } });
      if (res.ok) return Buffer.from(await res.arrayBuffer());
      const body = await res.text();
      if (res.status < 500 || attempt >= DOWNLOAD_ATTEMPTS) throw new Error(`artifact ${sha256}: HTTP ${res.status} ${body}`);
    } catch (err) {
      if (attempt >= DOWNLOAD_ATTEMPTS || err.message.startsWith('artifact ')) throw err;
    }
    stats.downloadRetries++;
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
}

/** Runs one assignment up to the switch (or `ready`), as the agent's reconcile does. */
async function deploy(d, assignment, desiredVersion) {
  const m = assignment.manifest.manifest;
  const job = { sha256: m.sha256, stage: 'preparing', assignment, desiredVersion };
  d.jobs.set(m.model, job);
  timing(d, m.sha256).assignedAt ??= Date.now();
  publishEvent(d, assignment, 'downloading', { progress: 0 });
  try {
    const bytes = await download(d, m.sha256);
    stats.downloads++;
    stats.downloadedBytes += bytes.length;
    publishEvent(d, assignment, 'verifying');
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== m.sha256 || bytes.length !== m.size) throw new Error(`artifact digest ${digest} (${bytes.length} bytes) does not match the manifest's ${m.sha256} (${m.size} bytes)`);
  } catch (err) {
    stats.failed++;
    stats.lastError = `${d.id}: ${err.message}`;
    if (d.jobs.get(m.model) === job) d.jobs.delete(m.model);
    publishEvent(d, assignment, 'failed', { code: 'DOWNLOAD_FAILED', message: err.message.slice(0, 1000) });
    return;
  }
  if (d.jobs.get(m.model) !== job) return; // a newer document replaced this assignment meanwhile
  for (const phase of PHASES_AFTER_VERIFY) publishEvent(d, assignment, phase);
  if (job.assignment.activate === false) {
    job.stage = 'ready';
    publishEvent(d, assignment, 'ready');
    return;
  }
  switchTo(d, job);
}

/** Makes the job's version the active one: `active` event, then the retained `reported` that says so. */
function switchTo(d, job) {
  const m = job.assignment.manifest.manifest;
  const previous = (d.installed.get(m.model) ?? []).find((i) => i.active && i.sha256 !== m.sha256);
  // The agent keeps the previous version on disk (inactive) so a rollback is a switch.
  const models = [{ name: m.model, version: m.version, sha256: m.sha256, profile: m.profile, active: true }];
  if (previous) models.push({ ...previous, active: false });
  d.installed.set(m.model, models);
  d.jobs.delete(m.model);
  d.desiredVersion = Math.max(d.desiredVersion, job.desiredVersion);
  timing(d, m.sha256).activeAt = Date.now();
  publishEvent(d, job.assignment, 'active', { progress: 1 });
  publishReported(d);
}

function timing(d, sha256) {
  let t = d.timings.get(sha256);
  if (!t) d.timings.set(sha256, (t = {}));
  return t;
}

/** A `desired` document: start what is new, switch what was only prepared, skip what is already done. */
function onDesired(d, payload) {
  const decoded = decodeMessage('desired', payload);
  if (!decoded.ok) {
    stats.invalidDesired++;
    stats.lastError = `${d.id}: ${decoded.error}`;
    return;
  }
  const doc = decoded.value;
  let settled = true;
  for (const assignment of doc.models) {
    const m = assignment.manifest.manifest;
    const job = d.jobs.get(m.model);
    if (job?.sha256 === m.sha256) {
      settled = false;
      job.assignment = assignment;
      job.desiredVersion = doc.version;
      if (job.stage === 'ready' && assignment.activate !== false) switchTo(d, job);
      continue;
    }
    if ((d.installed.get(m.model) ?? []).some((i) => i.active && i.sha256 === m.sha256)) continue;
    settled = false;
    void deploy(d, assignment, doc.version);
  }
  if (settled && doc.version > d.desiredVersion) {
    d.desiredVersion = doc.version;
    publishReported(d);
  }
}

function onPublish(d, flags, body) {
  const qos = (flags >> 1) & 3;
  const topicLen = body.readUInt16BE(0);
  const topic = body.toString('utf8', 2, 2 + topicLen);
  let at = 2 + topicLen;
  if (qos > 0) {
    d.socket.write(encodePuback(body.readUInt16BE(at)));
    at += 2;
  }
  if (topic === d.topics.desired) onDesired(d, body.subarray(at));
}

function onPuback(d, body) {
  if (d.pending.delete(body.readUInt16BE(0))) stats.inflight--;
}

/** Opens `d`'s connection; resolves true on an accepted CONNACK, false if it is refused, closes or times out. */
function open(d) {
  return openConnection(d, broker, stats, {
    onConnected() {
      publish(d, d.topics.status, encodeMessage('status', { state: 'online', ts: Date.now() }), { retain: true });
      publishReported(d);
      d.socket.write(encodeSubscribe(nextId(d), [d.topics.desired]));
    },
    onPacket(type, flags, body) {
      if (type === PACKET.PUBACK) onPuback(d, body);
      else if (type === PACKET.PUBLISH) onPublish(d, flags, body);
    },
    onClosed() {
      stats.inflight -= d.pending.size;
      d.pending.clear();
    },
  });
}

async function openAll(concurrency) {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < devices.length) if (!(await open(devices[next++]))) failed++;
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, devices.length) }, worker));
  return { ms: round(performance.now() - t0), failed, lastError: stats.lastError };
}

/** Keeps the connections inside the broker's keep-alive: the devices are quiet between rollouts. */
const pinger = setInterval(() => {
  for (const d of devices) if (d.connected) d.socket.write(PINGREQ);
}, (KEEPALIVE_S * 1000) / 3);

const commands = {
  init(args) {
    broker = brokerAddress(args.brokerUrl);
    apiUrl = args.apiUrl;
    devices = args.devices.map(({ id, secret }) => {
      const topic = (kind) => deviceTopic(id, kind);
      return {
        ...deviceBase(shared, id, secret),
        secret,
        pending: new Set(),
        desiredVersion: 0,
        /** model name → installed versions as `reported` lists them */
        installed: new Map(),
        /** model name → the assignment being prepared */
        jobs: new Map(),
        /** sha256 → { assignedAt, activeAt } (ms since epoch): when the desired document arrived, when it switched */
        timings: new Map(),
        topics: {
          status: encodeField(topic('status')),
          reported: encodeField(topic('reported')),
          events: encodeField(topic('events')),
          desired: topic('desired'),
        },
      };
    });
    return { devices: devices.length };
  },
  connect: (args) => openAll(args.concurrency),
  /** Per device, when the assignment of `sha256` arrived and when it switched (null: not yet). */
  timings(args) {
    return devices.map((d) => {
      const t = d.timings.get(args.sha256);
      return { id: d.id, assignedAt: t?.assignedAt ?? null, activeAt: t?.activeAt ?? null };
    });
  },
  /** Counters since the last call, and how many events still await their PUBACK. */
  stats() {
    const result = { ...stats, connected: devices.filter((d) => d.connected).length, loopMs: { p99: round(loop.percentile(99) / 1e6), max: round(loop.max / 1e6) } };
    Object.assign(stats, { downloads: 0, downloadedBytes: 0, downloadRetries: 0, failed: 0, invalidDesired: 0, eventsPublished: 0, lastError: undefined });
    loop.reset();
    return result;
  },
  /** Waits until every event is acknowledged (or `timeoutMs` passes); answers how many were not. */
  async settle(args) {
    return { unacked: await settleInflight(stats, args.timeoutMs) };
  },
  close() {
    clearInterval(pinger);
    disconnectAll(devices);
    return {};
  },
};

serveCommands(commands);
