import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rollout } from '@edgefleet/shared';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { sampleModel } from './support/models.js';
import { killAll } from './support/processes.js';
import { checkMetricsText, declaredMetrics } from './support/promtool.js';
import { hasTool } from './support/tools.js';
import { unixRequest } from './support/unix-http.js';

const promtool = hasTool('promtool', 'prometheus');

/**
 * Both /metrics endpoints on real processes, through promtool's own parser and linter: the hub's
 * (bearer token) and an agent's on its Unix socket, with a model deployed and served so the agent's
 * labelled series (counters, histogram buckets) are present, and the agent's whole registry (inference
 * and drift metrics alike) is checked, not a test-built one.
 */
describe.runIf(promtool)('metrics on real processes pass promtool', () => {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let hub: Hub;
  let agent: AgentHandle;
  const shape = [1, 3, 16, 16];
  const input = Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.sin(i) * 0.5);

  beforeAll(async () => {
    const hubDir = await makeTempDir('metrics-hub');
    const agentDir = await makeTempDir('metrics-agent');
    dirs.push(hubDir, agentDir);
    hub = await startHub({ dataDir: hubDir.path });
    agent = await startAgent(agentDir.path, await enrollAgent(hub, agentDir.path, 'metrics-edge'));
    await api(hub, 'POST', '/api/v1/models/sample/versions?version=1.0.0', sampleModel(), 201);
    const created = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: 'sample', version: '1.0.0', target: { all: true } }, 201);
    const done = await eventually(async () => {
      const r = await api<Rollout>(hub, 'GET', `/api/v1/rollouts/${created.id}`);
      return ['succeeded', 'halted', 'rolled-back', 'aborted'].includes(r.state) && r;
    }, 'rollout to finish', 60_000);
    expect(done.state).toBe('succeeded');
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it("lints clean on the agent's socket, with the served model's series", async () => {
    const body = JSON.stringify({ inputs: [{ name: 'image', shape, datatype: 'FP32', data: input }] });
    expect((await unixRequest(agent.socketPath, 'POST', '/v2/models/sample/infer', body, { 'content-type': 'application/json' })).status).toBe(200);
    const res = await unixRequest(agent.socketPath, 'GET', '/metrics');
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body.toString();
    expect(text).toContain('edgefleet_inference_request_success_total{model="sample",version="1.0.0"} 1');
    expect(declaredMetrics(text).get('edgefleet_inference_request_duration_seconds')).toBe('histogram');
    const result = checkMetricsText(text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it("lints clean on the hub, counting the agent's device and its active version", async () => {
    const scrape = async () => {
      const res = await fetch(`${hub.apiUrl}/metrics`, { headers: { authorization: `Bearer ${hub.adminToken}` } });
      return res.text();
    };
    const text = await eventually(async () => {
      const t = await scrape();
      return t.includes('edgefleet_model_devices{model="sample",version="1.0.0"} 1') && t.includes('edgefleet_devices{status="online"} 1') && t;
    }, 'the hub counting the online device serving sample@1.0.0');
    const result = checkMetricsText(text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });
});
