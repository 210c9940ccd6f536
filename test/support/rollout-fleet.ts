import type { CreateRolloutRequest, Device, Rollout, RolloutDevice, RolloutState } from '@edgefleet/shared';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './fleet.js';
import { unixRequest } from './unix-http.js';

/** A real hub with real agents, and the temp directories to remove afterwards. */
export interface Fleet {
  hub: Hub;
  agents: AgentHandle[];
  /** Environment each hub start of this fleet gets (kept for restarts on the same ports). */
  hubEnv: Record<string, string>;
  agentEnv: Record<string, string>;
  removeDirs(): Promise<void>;
}

export interface FleetOptions {
  agents: number;
  hubEnv?: Record<string, string>;
  agentEnv?: Record<string, string>;
  /** Fixed hub ports, e.g. when something in front of the hub (a proxy) must know them before it starts. */
  httpPort?: number;
  mqttPort?: number;
  namePrefix?: string;
}

/** Starts a hub, enrolls `agents` real agents with the CLI and starts them; waits until each is online. */
export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  const hubDir = await makeTempDir('rollout-hub');
  dirs.push(hubDir);
  const hubEnv = opts.hubEnv ?? {};
  const agentEnv = opts.agentEnv ?? {};
  const hub = await startHub({
    dataDir: hubDir.path,
    env: hubEnv,
    ...(opts.httpPort === undefined ? {} : { httpPort: opts.httpPort }),
    ...(opts.mqttPort === undefined ? {} : { mqttPort: opts.mqttPort }),
  });
  const agents = await Promise.all(
    Array.from({ length: opts.agents }, async (_, i) => {
      const dir = await makeTempDir(`rollout-agent${i}`);
      dirs.push(dir);
      const deviceId = await enrollAgent(hub, dir.path, `${opts.namePrefix ?? 'edge'}-${i}`);
      return startAgent(dir.path, deviceId, agentEnv);
    }),
  );
  for (const agent of agents) {
    await eventually(async () => (await api<Device>(hub, 'GET', `/api/v1/devices/${agent.deviceId}`)).online, `${agent.deviceId} online`);
  }
  return { hub, agents, hubEnv, agentEnv, removeDirs: async () => void (await Promise.all(dirs.map((d) => d.remove()))) };
}

/** Starts the hub again on the same data directory and ports (after a stop or a SIGKILL). */
export async function restartHub(fleet: Fleet): Promise<Hub> {
  const { dataDir, adminToken, httpPort, mqttPort } = fleet.hub;
  fleet.hub = await startHub({ dataDir, adminToken, httpPort, mqttPort, env: fleet.hubEnv });
  return fleet.hub;
}

/** Restarts a stopped agent on its own state directory; the handle in `fleet.agents` is replaced. */
export async function restartAgent(fleet: Fleet, deviceId: string): Promise<AgentHandle> {
  const index = fleet.agents.findIndex((a) => a.deviceId === deviceId);
  const old = fleet.agents[index]!;
  const agent = await startAgent(old.stateDir, deviceId, fleet.agentEnv);
  fleet.agents[index] = agent;
  return agent;
}

export async function uploadVersion(hub: Hub, model: string, version: string, bytes: Uint8Array): Promise<void> {
  await api(hub, 'POST', `/api/v1/models/${model}/versions?version=${encodeURIComponent(version)}`, bytes, 201);
}

export function createRollout(hub: Hub, req: CreateRolloutRequest): Promise<Rollout> {
  return api<Rollout>(hub, 'POST', '/api/v1/rollouts', req, 201);
}

export function getRollout(hub: Hub, id: string): Promise<Rollout> {
  return api<Rollout>(hub, 'GET', `/api/v1/rollouts/${id}`);
}

export function rolloutAction(hub: Hub, id: string, action: 'pause' | 'resume' | 'abort' | 'rollback'): Promise<Rollout> {
  return api<Rollout>(hub, 'POST', `/api/v1/rollouts/${id}/${action}`, {}, 200);
}

export function devicesOf(rollout: Rollout): RolloutDevice[] {
  return rollout.waves.flatMap((w) => w.devices);
}

/** Waits for the rollout to match `check`; the timeout message shows where it stood. */
export async function waitForRollout(hub: Hub, id: string, check: (r: Rollout) => boolean, what: string, timeoutMs = 60_000): Promise<Rollout> {
  let last: Rollout | undefined;
  try {
    return await eventually(async () => {
      last = await getRollout(hub, id);
      return check(last) && last;
    }, what, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nrollout was: ${describeRollout(last)}`);
  }
}

/** States no operator action leads out of: waiting past one of them is pointless. */
const FINAL: readonly RolloutState[] = ['succeeded', 'rolled-back', 'aborted'];

/** Waits until the rollout is in one of `states` and fails at once (with the rollout) if it ends elsewhere. */
export async function waitForState(hub: Hub, id: string, states: readonly RolloutState[], timeoutMs = 60_000): Promise<Rollout> {
  const done = await waitForRollout(hub, id, (r) => states.includes(r.state) || FINAL.includes(r.state), `rollout ${id} to be ${states.join('/')}`, timeoutMs);
  if (!states.includes(done.state)) throw new Error(`rollout ${id} ended ${done.state}, expected ${states.join('/')}: ${describeRollout(done)}`);
  return done;
}

/** One line per wave and device: what a failing assertion should show. */
export function describeRollout(r: Rollout | undefined): string {
  if (!r) return '(never read)';
  const waves = r.waves.map(
    (w) =>
      `  wave ${w.index} ${w.state} size=${JSON.stringify(w.spec.size)} gates=${JSON.stringify(w.gates.map((g) => [g.gate, g.status, g.message]))}\n` +
      w.devices.map((d) => `    ${d.deviceId} ${d.state}${d.error ? ` error=${d.error}` : ''}${d.progress === null ? '' : ` progress=${d.progress}`}`).join('\n'),
  );
  return `${r.state} reason=${JSON.stringify(r.reason)} counts=${JSON.stringify(r.counts)}\n${waves.join('\n')}`;
}

/** The version the device reports active for `model` through the hub API (undefined: none). */
export async function reportedActive(hub: Hub, deviceId: string, model: string): Promise<string | undefined> {
  const device = await api<Device>(hub, 'GET', `/api/v1/devices/${deviceId}`);
  return device.models.find((m) => m.name === model && m.active)?.version;
}

/** The version the agent's socket serves for `model` (GET /v2/models/{name}); undefined when none is loaded. */
export async function servedVersion(agent: AgentHandle, model: string): Promise<string | undefined> {
  const res = await unixRequest(agent.socketPath, 'GET', `/v2/models/${model}`);
  if (res.status !== 200) return undefined;
  return res.json<{ versions: string[] }>().versions[0];
}

/** Waits until every agent both reports and serves `version` of `model`. */
export async function waitForFleetVersion(fleet: Fleet, agents: readonly AgentHandle[], model: string, version: string, timeoutMs = 30_000): Promise<void> {
  for (const agent of agents) {
    await eventually(
      async () => (await reportedActive(fleet.hub, agent.deviceId, model)) === version && (await servedVersion(agent, model)) === version,
      `${agent.deviceId} reporting and serving ${model}@${version}`,
      timeoutMs,
    );
  }
}
