// Rollout switch: how long the hub takes to move N devices (default 1,000) to a new model version,
// and what the hub's CPU, RSS and event loop do meanwhile. Real hub process (packages/hub/dist/main.js)
// with aedes and SQLite; the devices are MQTT 3.1.1 connections in bench/rollout-devices.mjs (one
// separate process) that download the artifact from the hub's real route and report like an agent.
// Version 1 is rolled out first as a warm-up (not timed); then version 2 in one wave of 100% and
// version 3 in waves of 10% / 50% / 100% with no bake are timed from the POST until the rollout is
// `succeeded`. Target (issue 15): under 60 s on loopback.
//
// Environment: ROLLOUT_DEVICES (1000), ROLLOUT_TIMEOUT_SECONDS (600, per rollout), EF_BENCH_ROOT (the
// checkout whose hub and schemas are measured; default this repository), ROLLOUT_LEGACY_API=1 (for a
// hub from before staged rollouts: the request carries no waves or download limit, so both timed
// runs are one wave), BENCH_HUB_NODE_ARGS (node flags for the hub alone, e.g. --cpu-prof).
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkWorker, killChildrenOnExit, machineAtStart, positiveInt, round, runIfMain } from './bench-process.mjs';
import { enrollDevices, hubApi } from './hub-api.mjs';
import { checkOpenFilesLimit, startHub, stopProcess } from './hub-load-support.mjs';
import { rolloutEnd, rolloutEndWatcher } from './rollout-hub.mjs';
import { report } from './rollout-report.mjs';
import { benchRoot, importOnnxBuilder } from './rollout-root.mjs';
import { quantile, startSampler } from './rollout-sampler.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));

const DEVICES = positiveInt('ROLLOUT_DEVICES', 1000);
const TIMEOUT_MS = positiveInt('ROLLOUT_TIMEOUT_SECONDS', 600) * 1000;
const LEGACY_API = process.env.ROLLOUT_LEGACY_API === '1';
const TARGET_SECONDS = 60;
const MODEL = 'bench-switch';
/** Connections opened at once; the bench times rollouts, not the connect storm (hub-load does that). */
const CONNECT_CONCURRENCY = 200;
const token = randomBytes(24).toString('base64url');
const running = new Set();
let tempDir;

const WARM_UP = { name: 'warm-up (not timed)', version: '1', waves: [{ size: '100%' }] };
const TIMED_RUNS = [
  { name: 'one wave of 100%', version: '2', waves: [{ size: '100%' }] },
  { name: 'waves 10% / 50% / 100%, no bake', version: '3', waves: ['10%', '50%', '100%'].map((size) => ({ size, bakeSec: 0 })) },
];

/** The rollout request of a run: every device may download at once, so the time is the hub's, not a queue's. */
function rolloutRequest(run) {
  const req = { model: MODEL, version: run.version, target: { all: true } };
  if (LEGACY_API) return req;
  return { ...req, waves: run.waves, maxConcurrentDownloads: DEVICES };
}

/** The simulated-devices process and a request/answer call over its IPC channel. */
const devicesProcess = () => forkWorker(join(here, 'rollout-devices.mjs'), 'simulated devices', running);

/** Milliseconds from `t0` of each non-null time in `times`, summarised. */
function spread(times, t0) {
  const ms = times.filter((t) => t !== null).map((t) => t - t0);
  return { count: ms.length, p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), max: ms.length ? Math.max(...ms) : null };
}

/** Each wave as the hub reports it, times in ms from the POST. */
function waveSummary(rollout, t0) {
  const since = (iso) => (iso ? Date.parse(iso) - t0 : null);
  return rollout.waves.map((w) => ({
    index: w.index,
    state: w.state ?? null,
    size: w.spec?.size ?? null,
    devices: w.devices.length,
    startedMs: since(w.startedAt),
    endedMs: since(w.endedAt),
    gates: (w.gates ?? []).map((g) => `${g.gate} ${g.status}`),
  }));
}

/** The hub's ingest counters (cumulative) over a run: a message the hub dropped means a device spoke wrongly. */
function ingestDuring(before, after) {
  const keys = ['received', 'stored', 'duplicates', 'dropped', 'refused', 'storageErrors'];
  return Object.fromEntries(keys.map((k) => [k, (after?.[k] ?? 0) - (before?.[k] ?? 0)]));
}

/** One rollout from POST to its end, with the hub sampled throughout. */
async function rolloutRun(ctx, run, sha256) {
  const { call, watcher, hub, devices } = ctx;
  await devices.call('stats');
  const before = await call('GET', '/api/v1/health?reset=1');
  const stopSampler = await startSampler(hub.pid, devices.child.pid);
  const t0 = Date.now();
  let created, postMs, end, hubWindow;
  try {
    created = await call('POST', '/api/v1/rollouts', rolloutRequest(run));
    postMs = Date.now() - t0;
    end = await rolloutEnd(call, watcher, created.id, TIMEOUT_MS);
  } finally {
    // Stopped on failure too: its timer would otherwise keep the process alive after the error.
    hubWindow = await stopSampler();
  }
  const health = await call('GET', '/api/v1/health');
  const rollout = await call('GET', `/api/v1/rollouts/${created.id}`);
  if (end.state !== 'succeeded') {
    throw new Error(`rollout ${created.id} (${run.name}) ended ${end.state}: ${JSON.stringify(rollout.reason ?? null)} ${JSON.stringify(rollout.counts)}`);
  }
  const { unacked } = await devices.call('settle', { timeoutMs: 10_000 });
  const deviceStats = await devices.call('stats');
  const timings = await devices.call('timings', { sha256 });
  const rows = rollout.waves.flatMap((w) => w.devices);
  const seconds = (end.endedAt - t0) / 1000;
  return {
    name: run.name,
    rolloutId: created.id,
    request: rolloutRequest(run),
    seconds: round(seconds),
    devicesPerSecond: round(DEVICES / seconds, 1),
    endSeenBy: end.seenBy,
    postAnsweredMs: postMs,
    counts: rollout.counts,
    perDeviceMs: {
      assigned: spread(timings.map((t) => t.assignedAt), t0),
      activeOnDevice: spread(timings.map((t) => t.activeAt), t0),
      activeInHub: spread(rows.filter((r) => r.state === 'active').map((r) => Date.parse(r.updatedAt)), t0),
    },
    waves: waveSummary(rollout, t0),
    hub: { ...hubWindow, loopMs: health.eventLoopDelayMs, ingest: ingestDuring(before.ingest, health.ingest) },
    devices: { ...deviceStats, unackedEvents: unacked },
  };
}

async function uploadVersions(call) {
  const { buildConvNet } = await importOnnxBuilder();
  const shas = {};
  for (const run of [WARM_UP, ...TIMED_RUNS]) {
    // A ~100 KB conv net with a small golden input (3x32x32); each version its own weights, so its own sha256.
    const bytes = buildConvNet({ name: MODEL, channels: 3, size: 32, filters: [16, 32, 64], classes: 10, seed: Number(run.version) });
    const v = await call('POST', `/api/v1/models/${MODEL}/versions?version=${run.version}`, bytes);
    shas[run.version] = v.sha256;
  }
  return shas;
}

async function main() {
  const dir = (tempDir = await mkdtemp(join(tmpdir(), 'ef-bench-rollout-')));
  const started = Date.now();
  const result = {
    machine: machineAtStart(),
    devices: DEVICES,
    benchRoot,
    legacyApi: LEGACY_API,
    targetSeconds: TARGET_SECONDS,
  };
  let watcher;
  try {
    await checkOpenFilesLimit(DEVICES);
    const hubEnv = { EDGEFLEET_HUB_DATA_DIR: join(dir, 'hub'), EDGEFLEET_HUB_HOST: '127.0.0.1', EDGEFLEET_ADMIN_TOKEN: token, EDGEFLEET_HUB_HTTP_PORT: '0', EDGEFLEET_HUB_MQTT_PORT: '0', EDGEFLEET_AUTO_BUILD_VARIANTS: '0' };
    const hub = await startHub(hubEnv, running, benchRoot);
    const call = hubApi(hub.apiUrl, token);
    let t0 = performance.now();
    const enrolled = await enrollDevices(call, DEVICES);
    result.enrollSeconds = round((performance.now() - t0) / 1000, 1);
    log(`enrolled ${DEVICES} devices in ${result.enrollSeconds} s`);

    const devices = devicesProcess();
    await devices.call('init', { brokerUrl: hub.brokerUrl, apiUrl: hub.apiUrl, devices: enrolled });
    t0 = performance.now();
    const connected = await devices.call('connect', { concurrency: CONNECT_CONCURRENCY });
    if (connected.failed) throw new Error(`${connected.failed} of ${DEVICES} devices could not connect: ${connected.lastError}`);
    result.connectSeconds = round((performance.now() - t0) / 1000, 1);
    const shas = await uploadVersions(call);
    log(`connected in ${result.connectSeconds} s; models uploaded`);

    watcher = await rolloutEndWatcher(hub.apiUrl, token);
    const ctx = { call, watcher, hub, devices };
    const warm = await rolloutRun(ctx, WARM_UP, shas[WARM_UP.version]);
    result.warmUp = { seconds: warm.seconds, counts: warm.counts };
    log(`warm-up rollout succeeded in ${warm.seconds} s`);
    result.runs = [];
    for (const run of TIMED_RUNS) {
      const r = await rolloutRun(ctx, run, shas[run.version]);
      result.runs.push(r);
      log(`${run.name}: succeeded in ${r.seconds} s`);
    }

    await watcher.close();
    watcher = undefined;
    await devices.call('close');
    await stopProcess(devices.child);
    await stopProcess(hub.child);
    result.elapsedSeconds = round((Date.now() - started) / 1000, 0);
    result.machine.loadavgAtEnd = loadavg().map((l) => round(l));
    report(result);
    await mkdir(join(here, 'results'), { recursive: true });
    const file = join(here, 'results', 'rollout-switch.json');
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nresults written to ${file}`);
    return result;
  } finally {
    await watcher?.close();
    await Promise.all([...running].map((c) => stopProcess(c)));
    await rm(dir, { recursive: true, force: true });
  }
}

function log(text) {
  console.error(`[rollout-switch] ${text}`);
}

export { main as benchRolloutSwitch };

// Whatever ends this process, no hub or devices process outlives it.
killChildrenOnExit(running, () => tempDir);
runIfMain(import.meta.url, main);
