// Process and storage helpers for bench/hub-load.mjs: the hub as a child process, /proc sampling, and
// the acked-vs-stored check against the hub's SQLite file.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const STOP_TIMEOUT_MS = 20_000;

/**
 * Starts packages/hub/dist/main.js (of `hubRoot`, by default this repository) with `env` and resolves,
 * once it logs "hub ready", with its URLs. Its log is read (the hub must never block on a full pipe)
 * and only the tail is kept, for errors.
 */
export async function startHub(env, running, hubRoot = root) {
  // BENCH_HUB_NODE_ARGS reach the hub alone (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` with BENCH_KILL=0).
  const nodeArgs = (process.env.BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(hubRoot, 'packages/hub/dist/main.js')], {
    env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = once(child, 'exit').then(([code, signal]) => {
    running.delete(child);
    return code ?? signal;
  });
  const tail = [];
  const ready = new Promise((resolve, reject) => {
    const onLine = (text) => {
      tail.push(text);
      if (tail.length > 40) tail.shift();
      if (!text.includes('"hub ready"')) return;
      try {
        resolve(JSON.parse(text));
      } catch {}
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    void exited.then((code) => reject(new Error(`hub exited (${code}) before it was ready:\n${tail.join('\n')}`)));
  });
  const line = await ready;
  // A crash mid-run otherwise surfaces only as failed requests; show why the hub ended.
  void exited.then((code) => {
    if (code !== 0 && code !== 'SIGKILL' && code !== 'SIGTERM') console.error(`hub exited (${code}); its last log lines:\n${tail.join('\n')}`);
  });
  return { child, pid: child.pid, apiUrl: line.apiUrl, brokerUrl: line.brokerUrl, exited, tail };
}

/**
 * Fails early, naming the limit, when this process (whose limit the hub and the load generator
 * inherit) cannot hold `connections` sockets plus some files.
 */
export async function checkOpenFilesLimit(connections) {
  const limits = await readFile('/proc/self/limits', 'utf8');
  const soft = /Max open files\s+(\d+|unlimited)/.exec(limits)?.[1];
  if (soft === undefined || soft === 'unlimited' || Number(soft) >= connections + 1000) return;
  throw new Error(`open-files limit ${soft} is too low for ${connections} connections: raise it (e.g. \`ulimit -n ${connections + 5000}\`, or run under \`prlimit --nofile=${connections + 5000}\`)`);
}

/** SIGTERM, then SIGKILL if the process has not exited within the stop timeout. */
export async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** CPU seconds (user + system) and RSS of a process, from /proc. */
export async function procStat(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)[1]);
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024, cpuSeconds: ticks / 100 };
}

/** Machine-wide CPU ticks from /proc/stat: busy (everything but idle and iowait) and total. */
export async function machineStat() {
  const [, ...fields] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/);
  const ticks = fields.slice(0, 8).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3] - ticks[4], total };
}

function openReadOnly(dbFile) {
  const Database = createRequire(join(root, 'packages/hub/package.json'))('better-sqlite3');
  return new Database(dbFile, { readonly: true, fileMustExist: true });
}

/**
 * Counts devices marked online in the running hub's database, read-only beside it (WAL lets a reader
 * in without blocking the hub's writes): when presence is committed, without asking the hub for work.
 */
export function presenceCounter(dbFile) {
  const db = openReadOnly(dbFile);
  const count = db.prepare('SELECT count(*) FROM devices WHERE online = 1').pluck();
  return { online: () => count.get(), close: () => db.close() };
}

/**
 * Compares what the load generator saw acknowledged with the telemetry rows in the stopped hub's
 * database (opened read-only). Keys on (device, epoch, seq) when the table has an epoch column.
 */
export function countLost(dbFile, ackedDevices) {
  const db = openReadOnly(dbFile);
  try {
    const hasEpoch = db.prepare('PRAGMA table_info(telemetry)').all().some((c) => c.name === 'epoch');
    const stored = new Map();
    let storedRows = 0;
    const rows = db.prepare(`SELECT device_id, ${hasEpoch ? 'epoch' : "''"}, seq FROM telemetry`).raw();
    for (const [deviceId, epoch, seq] of rows.iterate()) {
      storedRows++;
      let keys = stored.get(deviceId);
      if (!keys) stored.set(deviceId, (keys = new Set()));
      keys.add(`${epoch ?? ''}:${seq}`);
    }
    let acked = 0;
    let lost = 0;
    const lostSample = [];
    for (const d of ackedDevices) {
      const keys = stored.get(d.id);
      for (const seq of d.acked) {
        acked++;
        if (keys?.has(`${hasEpoch ? d.epoch : ''}:${seq}`)) continue;
        lost++;
        if (lostSample.length < 10) lostSample.push({ deviceId: d.id, seq });
      }
    }
    return { acked, stored: storedRows, lost, keyedOnEpoch: hasEpoch, ...(lost ? { lostSample } : {}) };
  } finally {
    db.close();
  }
}
