// Hub load: N enrolled devices (default 10,000) send QoS 1 telemetry every 2 s from a separate process,
// then drop and reconnect all at once, then the hub is killed with SIGKILL mid-load. Prints ack latency,
// the hub's event-loop lag, CPU and RSS, the storm time, and acknowledged vs stored records.
// Real hub process (packages/hub/dist/main.js), real aedes, real SQLite; the devices are MQTT 3.1.1
// connections in bench/hub-load-client.mjs that send the hub the packets the agent sends.
//
// Environment: BENCH_DEVICES (10000), BENCH_LOAD_SECONDS (60, the measured steady window, after
// BENCH_WARMUP_SECONDS 10), BENCH_AFTER_SECONDS (10, load after the storm), BENCH_INTERVAL_MS (2000),
// BENCH_KILL (1: end with kill -9 mid-load and a restart; 0: a graceful stop), BENCH_HUB_NODE_ARGS.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkWorker, killChildrenOnExit, machineAtStart, positiveInt, round, runIfMain } from './bench-process.mjs';
import { enrollDevices, hubApi } from './hub-api.mjs';
import { report } from './hub-load-report.mjs';
import { checkOpenFilesLimit, countLost, machineStat, presenceCounter, procStat, startHub, stopProcess } from './hub-load-support.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));

const DEVICES = positiveInt('BENCH_DEVICES', 10_000);
const WARMUP_S = positiveInt('BENCH_WARMUP_SECONDS', 10);
const LOAD_S = positiveInt('BENCH_LOAD_SECONDS', 60);
const AFTER_S = positiveInt('BENCH_AFTER_SECONDS', 10);
const INTERVAL_MS = positiveInt('BENCH_INTERVAL_MS', 2000);
const KILL = process.env.BENCH_KILL !== '0';
/** After the last CONNACK, the storm window stays open this long so deferred presence/state writes are in it. */
const STORM_TAIL_MS = 2000;
const token = randomBytes(24).toString('base64url');
const running = new Set();
let tempDir;

/** How long presence may take to settle before the run gives up: generous, since a slow hub is a result. */
const settleTimeoutMs = () => Math.max(120_000, DEVICES * 20);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it returns a truthy value; fails naming `what` after `timeoutMs`. */
async function until(probe, what, timeoutMs = 60_000, everyMs = 100) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The load-generator process and a request/answer call over its IPC channel. */
const loadGenerator = () => forkWorker(join(here, 'hub-load-client.mjs'), 'load generator', running);

/**
 * Opens a measurement window; its close answers the hub's CPU (% of one core) and RSS, the load
 * generator's CPU, and how busy the whole machine was (it is shared: other work skews the numbers).
 */
async function measureWindow(hubPid, genPid) {
  const t0 = performance.now();
  const [h0, g0, m0] = await Promise.all([procStat(hubPid), procStat(genPid), machineStat()]);
  return async () => {
    const [h1, g1, m1] = await Promise.all([procStat(hubPid), procStat(genPid), machineStat()]);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (a, b) => round(((b.cpuSeconds - a.cpuSeconds) / seconds) * 100, 1);
    return {
      cpuPercent: cpu(h0, h1),
      rssMb: round(h1.rssMb, 0),
      peakRssMb: round(h1.peakRssMb, 0),
      loadGenCpuPercent: cpu(g0, g1),
      machineBusyPercent: round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 100, 1),
    };
  };
}

async function steadyPhase(gen, call, pid) {
  await call('GET', '/api/v1/health?reset=1');
  await gen.call('window');
  const end = await measureWindow(pid, gen.child.pid);
  await sleep(LOAD_S * 1000);
  const client = await gen.call('window');
  const hub = await end();
  const health = await call('GET', '/api/v1/health');
  return { seconds: LOAD_S, msgPerSecond: round(client.acked / LOAD_S, 0), ...client, hub: { ...hub, loopMs: health.eventLoopDelayMs, ingest: health.ingest } };
}

/**
 * Resolves with the time `probe()` first holds, polling every `everyMs` while `active()`; undefined if
 * it never did. A failing probe counts as not yet: this runs unawaited beside the storm.
 */
async function timeWhen(probe, active, everyMs) {
  while (active()) {
    if (await probe().catch(() => false)) return performance.now();
    await sleep(everyMs);
  }
  return undefined;
}

async function stormPhase(gen, call, pid, dbFile) {
  const presence = presenceCounter(dbFile);
  try {
    const drop = await gen.call('drop');
    await until(async () => (await call('GET', '/api/v1/health')).connections === 0, 'the hub to see every connection closed');
    // The drop's own work (wills, offline presence) must be done before the storm window opens.
    await until(() => presence.online() === 0, 'every device offline in the database', settleTimeoutMs(), 50);
    await call('GET', '/api/v1/health?reset=1');
    const end = await measureWindow(pid, gen.child.pid);
    const t0 = performance.now();
    let watching = true;
    const reconnect = gen.call('reconnect', { deadlineMs: settleTimeoutMs() });
    const hubConnected = timeWhen(async () => (await call('GET', '/api/v1/health')).connections >= DEVICES, () => watching, 100);
    const allOnline = timeWhen(async () => presence.online() >= DEVICES, () => watching, 50);
    const client = await reconnect;
    // Presence may be committed after the last CONNACK; the window waits for it (bounded) plus a tail.
    if (client.failed === 0) await Promise.race([Promise.all([hubConnected, allOnline]), sleep(30_000)]);
    await sleep(STORM_TAIL_MS);
    watching = false;
    const health = await call('GET', '/api/v1/health');
    const hub = await end();
    const [connectedAt, onlineAt] = await Promise.all([hubConnected, allOnline]);
    const since = (t) => (t === undefined ? null : round(t - t0, 0));
    return {
      devices: DEVICES,
      cutInFlight: drop.cut,
      lastConnackMs: client.ms,
      connectsIssuedMs: client.issueMs,
      failed: client.failed,
      retries: client.retries,
      lastError: client.failed || client.retries ? client.lastError : undefined,
      hubAllConnectedMs: since(connectedAt),
      allOnlineInDatabaseMs: since(onlineAt),
      hub: { ...hub, loopMs: health.eventLoopDelayMs },
    };
  } finally {
    presence.close();
  }
}

/**
 * Ends the load: kill -9 of the hub mid-load and a restart on the same ports (the durability case),
 * or a graceful stop that lets every publish be acknowledged first.
 */
async function endPhase(gen, hub, hubEnv) {
  if (!KILL) return { hub, end: { mode: 'graceful stop', unacked: (await gen.call('stopLoad', { settleMs: 30_000 })).unacked } };
  const end = { mode: 'kill -9 mid-load, then restart on the same ports' };
  hub.child.kill('SIGKILL');
  await hub.exited;
  end.unackedAtKill = (await gen.call('stopLoad', { settleMs: 1000 })).unacked;
  await gen.call('drop');
  const ports = { EDGEFLEET_HUB_HTTP_PORT: new URL(hub.apiUrl).port, EDGEFLEET_HUB_MQTT_PORT: new URL(hub.brokerUrl).port };
  const t0 = performance.now();
  const restarted = await startHub({ ...hubEnv, ...ports }, running);
  end.restartSeconds = round((performance.now() - t0) / 1000, 1);
  end.healthAfterRestart = (await hubApi(restarted.apiUrl, token)('GET', '/api/v1/health')).status;
  return { hub: restarted, end };
}

async function main() {
  const dir = (tempDir = await mkdtemp(join(tmpdir(), 'ef-bench-hub-load-')));
  const dataDir = join(dir, 'hub');
  const started = Date.now();
  const result = { machine: machineAtStart(), devices: DEVICES, intervalMs: INTERVAL_MS };
  const hubEnv = {
    EDGEFLEET_HUB_DATA_DIR: dataDir,
    EDGEFLEET_HUB_HOST: '127.0.0.1',
    EDGEFLEET_ADMIN_TOKEN: token,
    // Every record of the run stays, so acked can be compared with stored.
    EDGEFLEET_HUB_TELEMETRY_HISTORY: '1000000',
  };
  try {
    await checkOpenFilesLimit(DEVICES);
    let hub = await startHub({ ...hubEnv, EDGEFLEET_HUB_HTTP_PORT: '0', EDGEFLEET_HUB_MQTT_PORT: '0' }, running);
    const call = hubApi(hub.apiUrl, token);
    const t0 = performance.now();
    const devices = await enrollDevices(call, DEVICES, {
      onEnrolled: (n) => {
        if (n % 2000 === 0) log(`enrolled ${n} of ${DEVICES}`);
      },
    });
    result.enroll = { seconds: round((performance.now() - t0) / 1000, 1) };
    log(`enrolled ${DEVICES} devices in ${result.enroll.seconds} s`);

    const gen = loadGenerator();
    await gen.call('init', { brokerUrl: hub.brokerUrl, devices, intervalMs: INTERVAL_MS });
    const initial = await gen.call('connect', { concurrency: 500, deadlineMs: settleTimeoutMs() });
    if (initial.failed) throw new Error(`${initial.failed} of ${DEVICES} devices could not connect: ${initial.lastError}`);
    await until(async () => (await call('GET', '/api/v1/health')).connections >= DEVICES, 'the first connections', settleTimeoutMs());
    log(`connected in ${initial.ms} ms; warming up ${WARMUP_S} s`);

    await gen.call('startLoad');
    await sleep(WARMUP_S * 1000);
    result.steady = await steadyPhase(gen, call, hub.pid);
    log(`steady window done: ${result.steady.msgPerSecond} msg/s`);
    await gen.call('stopLoad', { settleMs: 10_000 });

    result.storm = await stormPhase(gen, call, hub.pid, join(dataDir, 'hub.db'));
    log(`storm done: last CONNACK after ${result.storm.lastConnackMs} ms`);

    await gen.call('startLoad');
    await gen.call('window');
    await sleep(AFTER_S * 1000);
    result.afterStorm = { seconds: AFTER_S, ...(await gen.call('window')) };
    result.afterStorm.msgPerSecond = round(result.afterStorm.acked / AFTER_S, 0);

    ({ hub, end: result.end } = await endPhase(gen, hub, hubEnv));
    const { devices: acked } = await gen.call('acked');
    await gen.call('close');
    await stopProcess(gen.child);
    await stopProcess(hub.child);
    result.durability = countLost(join(dataDir, 'hub.db'), acked);
    result.elapsedSeconds = round((Date.now() - started) / 1000, 0);
    result.machine.loadavgAtEnd = loadavg().map((l) => round(l));
    report(result);
    await mkdir(join(here, 'results'), { recursive: true });
    const file = join(here, 'results', `hub-load-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(file, JSON.stringify(result, null, 2));
    console.log(`\nresults written to ${file}`);
    if (result.durability.lost > 0) process.exitCode = 1;
    return result;
  } finally {
    await Promise.all([...running].map((c) => stopProcess(c)));
    await rm(dir, { recursive: true, force: true });
  }
}

function log(text) {
  console.error(`[hub-load] ${text}`);
}

export { main as benchHubLoad };

// Whatever ends this process, no hub or load generator outlives it.
killChildrenOnExit(running, () => tempDir);
runIfMain(import.meta.url, main);
