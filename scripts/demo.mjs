#!/usr/bin/env node
// The demo fleet: one hub, three agents with their own state directories, a sample model made by the
// project's own ONNX builder, a rollout to all three, one inference through an agent's socket, then the
// dashboard URL and a token. Reference data gives the model a drift baseline before the rollout; after
// it, the last agent's traffic is shifted and the drift view is printed. Ctrl-C stops every process it started.
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildMlp } from '../packages/shared/dist/onnx/index.js';
import { showDrift, uploadReference, WINDOW_REQUESTS } from './demo-drift.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const workDir = process.env.EDGEFLEET_DEMO_DIR ?? join(root, '.demo');
const httpPort = process.env.EDGEFLEET_HUB_HTTP_PORT ?? '8080';
const mqttPort = process.env.EDGEFLEET_HUB_MQTT_PORT ?? '1883';
const adminToken = `efa_${randomBytes(32).toString('base64url')}`;
const children = [];

function say(line) {
  process.stdout.write(`${line}\n`);
}

/** Starts a process and resolves with its first JSON log line whose msg is `readyMsg`. */
function start(name, args, env, readyMsg) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const tail = [];
  return new Promise((resolve, reject) => {
    const onLine = (text) => {
      tail.push(text);
      if (tail.length > 20) tail.shift();
      try {
        const line = JSON.parse(text);
        if (line.msg === readyMsg) resolve(line);
        if (line.level >= 50) say(`[${name}] ${line.msg}${line.err ? `: ${line.err.message}` : ''}`);
      } catch {
        /* not a log line */
      }
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.on('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${tail.join('\n')}`)));
  });
}

async function hubApi(apiUrl, method, path, body) {
  const isBytes = body instanceof Uint8Array;
  const res = await fetch(`${apiUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body ? { 'content-type': isBytes ? 'application/octet-stream' : 'application/json' } : {}),
    },
    body: body ? (isBytes ? body : JSON.stringify(body)) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error ?? ''}`);
  return json;
}

function socketInfer(socketPath, model, payload) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(payload);
    const req = request(
      { socketPath, method: 'POST', path: `/v2/models/${model}/infer`, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`infer: ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

/** Agents first, so each says goodbye to a hub that is still listening; then the hub. True if all exited cleanly. */
async function stopAll() {
  const [hub, ...agents] = children;
  const codes = await Promise.all(agents.map(stopChild));
  if (hub) codes.push(await stopChild(hub));
  return codes.every((code) => code === 0);
}

const ratio = (x) => (x === null || x === undefined ? '-' : `${x.toFixed(2)}x`);
const share = (x) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(1)} %`);

/** Waits for the variant build (it reports progress; a small model takes seconds) and prints each variant's numbers. */
async function showVariants(apiUrl, model, version) {
  const path = `/api/v1/models/${model}/versions/${version}/variants`;
  const deadline = Date.now() + 60_000;
  let list = await hubApi(apiUrl, 'GET', path);
  while (!list.build || list.build.state === 'queued' || list.build.state === 'running') {
    if (Date.now() > deadline) throw new Error(`variant build still ${list.build?.state ?? 'not started'} after 60 s`);
    await new Promise((r) => setTimeout(r, 250));
    list = await hubApi(apiUrl, 'GET', path);
  }
  say(`variant build ${list.build.state}${list.build.error ? `: ${list.build.error}` : ''}`);
  for (const v of list.variants) {
    const e = v.evaluation;
    const numbers = e ? `size ${ratio(e.sizeRatio)}, agreement ${share(e.agreement)}, latency ${ratio(e.latencyRatio)}` : v.profile === 'fp32' ? 'the uploaded model' : '';
    say(`  ${v.profile.padEnd(12)} ${v.state.padEnd(8)} ${numbers}${v.reason ? ` — ${v.reason}` : ''}`);
  }
}

async function planReason(apiUrl, deviceId) {
  const { plans } = await hubApi(apiUrl, 'GET', `/api/v1/plans?deviceId=${encodeURIComponent(deviceId)}&model=demo-classifier`);
  // The reason's first clause; the API and the dashboard give every candidate's note.
  return plans[0]?.reason.split(' (')[0] ?? 'no plan';
}

async function main() {
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const logLevel = process.env.EDGEFLEET_LOG_LEVEL ?? 'warn';

  say('starting the hub…');
  const hub = await start('hub', [join(root, 'packages/hub/dist/main.js')], {
    EDGEFLEET_HUB_DATA_DIR: join(workDir, 'hub'),
    EDGEFLEET_HUB_HOST: '127.0.0.1',
    EDGEFLEET_HUB_HTTP_PORT: httpPort,
    EDGEFLEET_HUB_MQTT_PORT: mqttPort,
    EDGEFLEET_ADMIN_TOKEN: adminToken,
    EDGEFLEET_LOG_LEVEL: 'info',
  }, 'hub ready');
  const { apiUrl } = hub;

  const agents = [];
  for (let i = 1; i <= 3; i++) {
    const stateDir = join(workDir, `agent-${i}`);
    const { token } = await hubApi(apiUrl, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600, labels: { site: 'demo' } });
    await promisify(execFile)(process.execPath, [join(root, 'packages/agent/dist/main.js'), 'enroll', '--hub', apiUrl, '--token', token, '--name', `demo-${i}`, '--state-dir', stateDir]);
    const socketPath = join(stateDir, 'agent.sock');
    await start(`agent-${i}`, [join(root, 'packages/agent/dist/main.js'), 'run', '--state-dir', stateDir, '--socket', socketPath], {
      EDGEFLEET_TELEMETRY_INTERVAL_MS: '2000',
      EDGEFLEET_AGENT_WORKERS: '1',
      // Small drift windows, so the demo shows an evaluation within seconds (default: 60 s or 5,000 requests).
      EDGEFLEET_DRIFT_WINDOW_REQUESTS: String(WINDOW_REQUESTS),
      EDGEFLEET_LOG_LEVEL: 'info',
    }, 'agent ready');
    // The identity enroll wrote names the device (its stdout also carries log lines).
    const { deviceId } = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8'));
    agents.push({ socketPath, deviceId });
    say(`agent demo-${i} enrolled and running (socket ${socketPath})`);
  }

  const model = buildMlp({ name: 'demo-classifier', inputSize: 4, hidden: [16], outputSize: 3, seed: 7 });
  await hubApi(apiUrl, 'POST', '/api/v1/models/demo-classifier/versions?version=1.0.0', model);
  say(`uploaded model demo-classifier 1.0.0 (${model.byteLength} bytes); the hub builds its compressed variants`);
  await showVariants(apiUrl, 'demo-classifier', '1.0.0');
  const api = (method, path, body) => hubApi(apiUrl, method, path, body);
  const baseline = await uploadReference(api, 'demo-classifier', '1.0.0');
  say(`drift baseline built from ${baseline.samples} reference samples (${baseline.features.length} features, ${baseline.size} bytes); the manifests carry it`);
  // A canary wave of one device, then the rest: the staged rollout every real fleet should use.
  const waves = [{ size: 1 }, { size: '100%' }];
  const rollout = await hubApi(apiUrl, 'POST', '/api/v1/rollouts', { model: 'demo-classifier', version: '1.0.0', target: { all: true }, waves });
  let state = rollout;
  const deadline = Date.now() + 60_000;
  const passed = new Set();
  const sayPassedWaves = () => {
    for (const wave of state.waves.filter((w) => w.state === 'passed' && !passed.has(w.index))) {
      passed.add(wave.index);
      say(`wave ${wave.index + 1} of ${state.waves.length} passed (${wave.devices.length} device${wave.devices.length === 1 ? '' : 's'})`);
    }
  };
  while (state.state === 'running') {
    if (Date.now() > deadline) throw new Error(`rollout still running after 60 s: ${JSON.stringify(state.counts)}`);
    await new Promise((r) => setTimeout(r, 250));
    state = await hubApi(apiUrl, 'GET', `/api/v1/rollouts/${rollout.id}`);
    sayPassedWaves();
  }
  if (state.state !== 'succeeded') throw new Error(`rollout ${state.state}: ${JSON.stringify(state.counts)} ${state.reason?.message ?? ''}`);
  say(`rollout ${rollout.id} succeeded on ${agents.length} devices`);
  for (const device of state.waves.flatMap((w) => w.devices)) say(`  ${device.deviceId}: ${device.to.profile} — ${await planReason(apiUrl, device.deviceId)}`);

  const result = await socketInfer(agents[0].socketPath, 'demo-classifier', {
    inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }],
  });
  say(`inference result: ${JSON.stringify(result.outputs[0].data)} (model ${result.model_name} ${result.model_version ?? ''} via ${agents[0].socketPath})`);
  await showDrift({ hubApi: api, agents, model: 'demo-classifier', version: '1.0.0', say });
  say(`processes: ${children.map((c) => c.pid).join(' ')}`);
  say(`dashboard: ${apiUrl}/`);
  say(`token: ${adminToken}`);
  say('press Ctrl-C to stop the fleet');
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    say('stopping…');
    void stopAll().then((clean) => {
      say(clean ? 'stopped: every process exited cleanly' : 'stopped: a process exited with an error');
      process.exit(clean ? 0 : 1);
    });
  });
}

main().catch(async (err) => {
  say(`demo failed: ${err.message}`);
  await stopAll();
  process.exit(1);
});
