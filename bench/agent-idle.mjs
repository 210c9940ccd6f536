// The agent's idle footprint with one small model loaded, measured with the unit's flags: the node
// flags and Environment= lines of deploy/systemd/edgefleet-agent.service's ExecStart are parsed and
// used to start the agent, so the number is what a device running the unit would see. A real hub on
// loopback rolls one conv net out to the agent; RSS and its breakdown are read from /proc.
//
// Knobs (for trying measures without editing the unit):
//   BENCH_UNIT_FILE     another unit file to parse (default deploy/systemd/edgefleet-agent.service)
//   BENCH_NODE_FLAGS    extra node flags, space-separated, appended after the unit's
//   BENCH_AGENT_ENV     extra environment, "K=V K2=V2", applied after the unit's Environment= lines
//   BENCH_AGENT_MAIN    "bundle" (default: what the unit runs; built into the temp dir with
//                       scripts/build-agent-bundle.mjs), "dist" (packages/agent/dist/main.js), or a path
//   BENCH_IDLE_SECONDS  how long the agent idles before the reading (default 20)
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildConvNet } from '../packages/shared/dist/onnx/index.js';
import { runIfMain } from './bench-process.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const UNIT_FILE = process.env.BENCH_UNIT_FILE ?? join(root, 'deploy/systemd/edgefleet-agent.service');
const AGENT_MAIN = process.env.BENCH_AGENT_MAIN || 'bundle';
const SAMPLES = 10;
const IDLE_SECONDS = Math.max(SAMPLES, Number(process.env.BENCH_IDLE_SECONDS ?? 20));
const token = randomBytes(24).toString('base64url');

/**
 * The node flags and environment a unit gives the agent: flags are ExecStart's words between the
 * node binary and the script; environment is every Environment= line (quoted or not). Paths the
 * unit points at (state dir, socket) are replaced by the bench's own.
 */
export function unitLaunch(text) {
  const env = {};
  let flags = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('Environment=')) {
      for (const m of line.slice('Environment='.length).matchAll(/"([^"]*)"|(\S+)/g)) {
        const pair = m[1] ?? m[2];
        const eq = pair.indexOf('=');
        if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
    } else if (line.startsWith('ExecStart=')) {
      const words = line.slice('ExecStart='.length).replace(/^[-@:+!]+/, '').split(/\s+/);
      const script = words.findIndex((w, i) => i > 0 && !w.startsWith('-'));
      if (!/node$/.test(words[0]) || script < 0) throw new Error(`ExecStart "${line}": expected "<node> [flags] <script> ..."`);
      flags = words.slice(1, script);
    }
  }
  return { flags, env };
}

function parseEnvList(text) {
  const env = {};
  for (const pair of (text ?? '').split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`BENCH_AGENT_ENV entry "${pair}": expected K=V`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/** Starts a node process; `ready` resolves with its first log line whose msg is `readyMsg`. */
export function start(args, env, readyMsg, children) {
  const child = spawn(process.execPath, args, { env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise((resolve, reject) => {
    lines.on('line', (text) => {
      try {
        const line = JSON.parse(text);
        if (line.msg === readyMsg) resolve(line);
      } catch {}
    });
    child.on('exit', (code) => reject(new Error(`${args.at(-1)} exited ${code}`)));
  });
  return { child, ready };
}

/** A call of the hub's API with the operator token; JSON or bytes in, JSON out. */
export function hubCaller(token) {
  return async (apiUrl, method, path, body) => {
    const bytes = body instanceof Uint8Array;
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': bytes ? 'application/octet-stream' : 'application/json' } : {}) },
      body: body ? (bytes ? body : JSON.stringify(body)) : undefined,
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
}
const hub = hubCaller(token);

const kbField = (text, name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
const mb = (kb) => +(kb / 1024).toFixed(1);

/**
 * RSS and where it lives: smaps_rollup's anonymous vs file-backed split, and per mapping (grouped by
 * file name, anonymous memory as one line) from smaps, largest first.
 */
export async function memoryBreakdown(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const smaps = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const byMapping = new Map();
  let name = '';
  for (const line of smaps.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const file = header[1] || '[anon]';
      name = file.startsWith('/') ? file.split('/').pop() : file;
    } else if (line.startsWith('Rss:')) {
      byMapping.set(name, (byMapping.get(name) ?? 0) + Number(line.split(/\s+/)[1]));
    }
  }
  const top = [...byMapping].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, kb]) => ({ mapping: n, rssMb: mb(kb) }));
  return {
    rssMb: mb(kbField(status, 'VmRSS')),
    hwmMb: mb(kbField(status, 'VmHWM')),
    anonMb: mb(kbField(rollup, 'Anonymous')),
    fileMb: mb(kbField(rollup, 'Rss') - kbField(rollup, 'Anonymous')),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)[1]),
    top,
  };
}

/** The agent's entry: the bundle the unit runs (built for this machine into `dir`), dist, or a given path. */
async function agentEntry(dir) {
  if (AGENT_MAIN === 'dist') return join(root, 'packages/agent/dist/main.js');
  if (AGENT_MAIN !== 'bundle') return AGENT_MAIN;
  const out = join(dir, 'bundle');
  await promisify(execFile)(process.execPath, [join(root, 'scripts/build-agent-bundle.mjs'), '--out', out]);
  const [name] = (await readdir(out, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  if (!name) throw new Error(`scripts/build-agent-bundle.mjs left no bundle directory in ${out}`);
  return join(out, name, 'edgefleet-agent.mjs');
}

async function main() {
  const unit = unitLaunch(await readFile(UNIT_FILE, 'utf8'));
  const flags = [...unit.flags, ...(process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)];
  const extraEnv = parseEnvList(process.env.BENCH_AGENT_ENV);
  const children = [];
  const dir = await mkdtemp(join(tmpdir(), 'ef-bench-idle-'));
  try {
    const h = start([join(root, 'packages/hub/dist/main.js')], {
      EDGEFLEET_HUB_DATA_DIR: join(dir, 'hub'),
      EDGEFLEET_HUB_HOST: '127.0.0.1',
      EDGEFLEET_HUB_HTTP_PORT: '0',
      EDGEFLEET_HUB_MQTT_PORT: '0',
      EDGEFLEET_ADMIN_TOKEN: token,
      EDGEFLEET_AUTO_BUILD_VARIANTS: '0',
    }, 'hub ready', children);
    const { apiUrl } = await h.ready;
    const entry = await agentEntry(dir);
    const stateDir = join(dir, 'agent');
    const { token: t } = await hub(apiUrl, 'POST', '/api/v1/enrollment-tokens', {});
    await promisify(execFile)(process.execPath, [entry, 'enroll', '--hub', apiUrl, '--token', t, '--state-dir', stateDir]);
    const agentEnv = { ...unit.env, ...extraEnv, EDGEFLEET_AGENT_STATE_DIR: stateDir, EDGEFLEET_AGENT_SOCKET: join(stateDir, 'agent.sock') };
    const agent = start([...flags, entry, 'run'], agentEnv, 'agent ready', children);
    await agent.ready;
    // Before any model: what the main thread (modules, Fastify, MQTT, SQLite) costs on its own.
    await new Promise((done) => setTimeout(done, 3000));
    const noModel = await memoryBreakdown(agent.child.pid);

    await hub(apiUrl, 'POST', '/api/v1/models/bench-conv/versions?version=1', buildConvNet({ name: 'bench-conv', channels: 3, size: 64, filters: [16, 32, 64], classes: 10 }));
    const r = await hub(apiUrl, 'POST', '/api/v1/rollouts', { model: 'bench-conv', version: '1', target: { all: true } });
    let s = r;
    while (s.state === 'running') {
      await new Promise((done) => setTimeout(done, 50));
      s = await hub(apiUrl, 'GET', `/api/v1/rollouts/${r.id}`);
    }
    if (s.state !== 'succeeded') throw new Error(`rollout ended ${s.state}, expected it to succeed`);
    // GC timing moves a single reading by 10+ MB: the last SAMPLES seconds are read once a second and
    // the median is the figure (the spread is printed so a reader sees the noise).
    await new Promise((done) => setTimeout(done, Math.max(0, IDLE_SECONDS - SAMPLES) * 1000));
    const readings = [];
    for (let i = 0; i < SAMPLES; i++) {
      await new Promise((done) => setTimeout(done, 1000));
      readings.push(await memoryBreakdown(agent.child.pid));
    }
    readings.sort((a, b) => a.rssMb - b.rssMb);
    const memory = { ...readings[Math.floor(SAMPLES / 2)], rssMinMb: readings[0].rssMb, rssMaxMb: readings.at(-1).rssMb };
    const result = { entry: AGENT_MAIN === 'bundle' ? 'bundle' : entry, flags, env: { ...unit.env, ...extraEnv }, idleSeconds: IDLE_SECONDS, ...memory, noModelRssMb: noModel.rssMb, noModelAnonMb: noModel.anonMb };
    console.log('\nagent idle with one model, unit flags');
    console.log(`  node ${flags.join(' ') || '(no flags)'} ${result.entry}; env ${Object.entries(result.env).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    console.log(`  RSS median ${memory.rssMb} MB over ${SAMPLES} s (min ${memory.rssMinMb}, max ${memory.rssMaxMb}; target ≤ 100; peak ${memory.hwmMb}): anonymous ${memory.anonMb}, file-backed ${memory.fileMb}; ${memory.threads} threads`);
    console.log(`  before any model (3 s after ready): RSS ${noModel.rssMb} MB, anonymous ${noModel.anonMb}`);
    console.log(`  by mapping: ${memory.top.map((m) => `${m.mapping} ${m.rssMb}`).join(', ')}`);
    return result;
  } finally {
    await Promise.all(children.map((c) => new Promise((done) => (c.exitCode !== null ? done() : (c.once('exit', done), c.kill('SIGTERM'))))));
    await rm(dir, { recursive: true, force: true });
  }
}

export { main as benchAgentIdle };
runIfMain(import.meta.url, main);
