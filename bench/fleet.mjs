// Fleet-side numbers: the agent's idle footprint with one model loaded, and the hub's event-loop lag
// while a rollout runs. Real hub and agent processes on loopback, as in the end-to-end tests.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BINARY_HEADER, joinBinaryBody } from '../packages/shared/dist/index.js';
import { buildConvNet } from '../packages/shared/dist/onnx/index.js';
import { hubCaller, start as startProcess, unitLaunch } from './agent-idle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const AGENTS = Number(process.env.BENCH_AGENTS ?? 5);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
// The replaced version stays loaded as standby after a switch (10 min by default); the bench keeps it
// briefly so it can measure the agent both with the standby and after it is closed.
const STANDBY_KEEP_SEC = 10;
const token = randomBytes(24).toString('base64url');
const children = [];
const start = (args, env, readyMsg) => startProcess(args, env, readyMsg, children);


/**
 * Reference images for a version's drift baseline (binary tensor form), so the measured agent tracks
 * drift in its workers as a deployed one would.
 */
async function putReference(apiUrl, version, samples = 128, size = 64) {
  const data = new Float32Array(samples * 3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.5 + 0.5;
  const bytes = new Uint8Array(data.buffer);
  const { body, headerLength } = joinBinaryBody({ inputs: [{ name: 'image', datatype: 'FP32', shape: [samples, 3, size, size], parameters: { binary_data_size: bytes.byteLength } }] }, [bytes]);
  const res = await fetch(`${apiUrl}/api/v1/models/bench-conv/versions/${version}/reference`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', [BINARY_HEADER]: String(headerLength) },
    body,
  });
  if (!res.ok) throw new Error(`reference of bench-conv@${version}: ${res.status} ${await res.text()}`);
}

const hub = hubCaller(token);

async function procStat(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssMb: rssKb / 1024, cpuSeconds: ticks / 100 };
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'ef-bench-fleet-'));
  try {
    const h = start([join(root, 'packages/hub/dist/main.js')], {
      EDGEFLEET_HUB_DATA_DIR: join(dir, 'hub'),
      EDGEFLEET_HUB_HOST: '127.0.0.1',
      EDGEFLEET_HUB_HTTP_PORT: '0',
      EDGEFLEET_HUB_MQTT_PORT: '0',
      EDGEFLEET_ADMIN_TOKEN: token,
      EDGEFLEET_AUTO_BUILD_VARIANTS: '0', // a background variant build would take a core from the measured rollout
    }, 'hub ready');
    const { apiUrl } = await h.ready;
    // Agents run with the unit's node flags and Environment= lines, as a device would (agent-idle.mjs);
    // the unit's state dir and socket are replaced by each agent's own.
    const unit = unitLaunch(await readFile(join(root, 'deploy/systemd/edgefleet-agent.service'), 'utf8'));
    const agents = [];
    for (let i = 0; i < AGENTS; i++) {
      const stateDir = join(dir, `agent-${i}`);
      const { token: t } = await hub(apiUrl, 'POST', '/api/v1/enrollment-tokens', {});
      await promisify(execFile)(process.execPath, [join(root, 'packages/agent/dist/main.js'), 'enroll', '--hub', apiUrl, '--token', t, '--state-dir', stateDir]);
      const a = start([...unit.flags, join(root, 'packages/agent/dist/main.js'), 'run', '--state-dir', stateDir, '--socket', join(stateDir, 'agent.sock')], { ...unit.env, EDGEFLEET_STANDBY: 'on', EDGEFLEET_STANDBY_KEEP_SEC: String(STANDBY_KEEP_SEC) }, 'agent ready');
      await a.ready;
      agents.push(a);
    }
    const model = buildConvNet({ name: 'bench-conv', channels: 3, size: 64, filters: [16, 32, 64], classes: 10 });
    const rollOut = async (version) => {
      const r = await hub(apiUrl, 'POST', '/api/v1/rollouts', { model: 'bench-conv', version, target: { all: true } });
      let s = r;
      while (s.state === 'running') {
        await new Promise((done) => setTimeout(done, 50));
        s = await hub(apiUrl, 'GET', `/api/v1/rollouts/${r.id}`);
      }
      return s;
    };
    // Version 1 warms the hub up (Fastify compiles each route's serializers on first use); version 2 is measured.
    await hub(apiUrl, 'POST', '/api/v1/models/bench-conv/versions?version=1', model);
    await rollOut('1');
    await hub(apiUrl, 'POST', '/api/v1/models/bench-conv/versions?version=2', buildConvNet({ name: 'bench-conv', channels: 3, size: 64, filters: [16, 32, 64], classes: 10, seed: 9 }));
    await putReference(apiUrl, '2');

    await hub(apiUrl, 'GET', '/api/v1/health?reset=1');
    const t0 = performance.now();
    const state = await rollOut('2');
    const rolloutMs = performance.now() - t0;
    const health = await hub(apiUrl, 'GET', '/api/v1/health');

    // Idle: telemetry at its default period, no requests; first with the replaced version loaded as
    // standby, then with one model once the standby is closed.
    await new Promise((r) => setTimeout(r, 5000));
    const pid = agents[0].child.pid;
    const withStandby = await procStat(pid);
    await new Promise((r) => setTimeout(r, STANDBY_KEEP_SEC * 1000));
    const before = await procStat(pid);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const after = await procStat(pid);
    const idleCpu = ((after.cpuSeconds - before.cpuSeconds) / IDLE_SECONDS) * 100;

    const result = {
      rollout: { devices: AGENTS, state: state.state, seconds: +(rolloutMs / 1000).toFixed(2) },
      hubEventLoopLagMs: health.eventLoopDelayMs,
      agentIdle: { rssMb: +after.rssMb.toFixed(1), cpuPercent: +idleCpu.toFixed(2), windowSeconds: IDLE_SECONDS, rssWithStandbyMb: +withStandby.rssMb.toFixed(1) },
    };
    console.log('\nfleet');
    console.log(`  rollout of a ${(model.byteLength / 1024).toFixed(0)} KB model to ${AGENTS} agents: ${result.rollout.state} in ${result.rollout.seconds} s`);
    console.log(`  hub event-loop lag during the rollout: p50 ${health.eventLoopDelayMs.p50} ms, p99 ${health.eventLoopDelayMs.p99} ms, max ${health.eventLoopDelayMs.max} ms (target p99 < 50 ms)`);
    const a = result.agentIdle;
    console.log(`  agent right after the switch, previous version loaded as standby: RSS ${a.rssWithStandbyMb} MB`);
    console.log(`  agent idle with one model (standby closed): RSS ${a.rssMb} MB (target ≤ 100), CPU ${a.cpuPercent}% over ${a.windowSeconds} s (target ≤ 1%)`);
    return result;
  } finally {
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : (c.once('exit', r), c.kill('SIGTERM'))))));
    await rm(dir, { recursive: true, force: true });
  }
}

export { main as benchFleet };
if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
