import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceTopic, type EnrollResponse } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMetricsText, checkPrometheusConfig, declaredMetrics } from '../../../test/support/promtool.js';
import { hasTool } from '../../../test/support/tools.js';
import { activeModelCounts } from '../src/metrics/metrics-repo.js';
import { connectDevice, enrollDevice, eventually, telemetryRecord, useTestHub } from './hub-harness.js';

const REPO = join(import.meta.dirname, '../../..');
const capabilities = { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 2048, cpuModel: 'x', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' };
const promtool = hasTool('promtool', 'prometheus');

/** The value of one series in an exposition text (`name{labels} value`), undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('hub /metrics', () => {
  const t = useTestHub();
  const scrape = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`${t.hub.apiUrl}/metrics`, { headers: { authorization: `Bearer ${t.adminToken}`, ...headers } });
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  };
  const valueOf = async (series: string) => sample((await scrape()).text, series);

  it('refuses a scrape without a valid operator token (401) and serves text format 0.0.4 with one', async () => {
    expect((await scrape({ authorization: '' })).status).toBe(401);
    expect((await scrape({ authorization: 'Bearer not-a-token' })).status).toBe(401);
    // Prometheus gets a viewer token: the weakest role is enough to scrape.
    const viewer = await t.api<{ token: string }>('POST', '/api/v1/tokens', { name: 'prometheus', role: 'viewer' });
    expect(viewer.status).toBe(201);
    expect((await scrape({ authorization: `Bearer ${viewer.body.token}` })).status).toBe(200);
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = declaredMetrics(ok.text);
    for (const name of ['edgefleet_devices', 'edgefleet_model_devices', 'edgefleet_rollouts_active', 'edgefleet_rollout_devices', 'edgefleet_ingest_dropped_total', 'edgefleet_drift_score', 'edgefleet_drift_alerts_active', 'edgefleet_drift_summaries_rejected_total', 'edgefleet_hub_process_cpu_seconds_total', 'edgefleet_hub_nodejs_eventloop_lag_p99_seconds']) {
      expect(families.has(name), `${name} declared`).toBe(true);
    }
  });

  it.runIf(promtool)('passes promtool check metrics with no lint findings', async () => {
    const result = checkMetricsText((await scrape()).text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('moves with the fleet: enrollment, presence, active models, ingest, revocation', async () => {
    const offline0 = (await valueOf('edgefleet_devices{status="offline"}')) ?? 0;
    const stored0 = (await valueOf('edgefleet_ingest_stored_total')) ?? 0;
    const dropped0 = (await valueOf('edgefleet_ingest_dropped_total{kind="telemetry"}')) ?? 0;
    const d: EnrollResponse = await enrollDevice(t, { name: 'metrics-1' });
    expect(await valueOf('edgefleet_devices{status="offline"}')).toBe(offline0 + 1);

    for (const version of ['1', '2']) {
      expect((await t.api('POST', `/api/v1/models/clf/versions?version=${version}`, buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).status).toBe(201);
    }
    const c = await connectDevice(t, d);
    await eventually(async () => (await valueOf('edgefleet_devices{status="online"}')) === 1, 'the device online in /metrics');
    expect(await valueOf('edgefleet_broker_connections')).toBe(1);

    const models = [
      { name: 'clf', version: '2', sha256: 'a'.repeat(64), profile: 'fp32', active: true },
      { name: 'clf', version: '1', sha256: 'b'.repeat(64), profile: 'fp32', active: false },
      // Names the registry does not hold: a device's word alone must not create a series.
      { name: 'made-up', version: '7', sha256: 'c'.repeat(64), profile: 'fp32', active: true },
      { name: 'clf', version: '99', sha256: 'd'.repeat(64), profile: 'fp32', active: true },
    ];
    await c.publishAsync(deviceTopic(d.deviceId, 'reported'), JSON.stringify({ capabilities, models, desiredVersion: 0, ts: Date.now() }), { qos: 1, retain: true });
    await eventually(async () => (await valueOf('edgefleet_model_devices{model="clf",version="2"}')) === 1, 'the active version in /metrics');
    // Installed but not active: not "in use".
    expect(await valueOf('edgefleet_model_devices{model="clf",version="1"}')).toBeUndefined();
    const text = (await scrape()).text;
    expect(text).not.toContain('model="made-up"');
    expect(text).not.toContain('version="99"');

    await c.publishAsync(deviceTopic(d.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(1)), { qos: 1 });
    await c.publishAsync(deviceTopic(d.deviceId, 'telemetry'), 'not json {', { qos: 1 });
    await eventually(async () => (await valueOf('edgefleet_ingest_stored_total')) === stored0 + 1, 'the stored record counted');
    expect(await valueOf('edgefleet_ingest_dropped_total{kind="telemetry"}')).toBe(dropped0 + 1);
    await c.endAsync();

    expect((await t.api('POST', `/api/v1/devices/${d.deviceId}/revoke`, {})).status).toBe(200);
    expect(await valueOf('edgefleet_devices{status="revoked"}')).toBe(1);
    // A revoked device's reported models are no longer counted as serving.
    expect(await valueOf('edgefleet_model_devices{model="clf",version="2"}')).toBeUndefined();
    if (promtool) expect(checkMetricsText((await scrape()).text).output).toBe('');
  });

  it("reports each version's latest fleet drift score and its active alerts", async () => {
    // Rows as the drift evaluator writes them (migration 006), through a second connection to the hub's database.
    const db = new Database(join(t.dataDir, 'hub.db'));
    try {
      db.pragma('busy_timeout = 5000');
      const evaluation = db.prepare(
        "INSERT INTO drift_evaluations (model, version, device_id, window_start, window_end, samples, score, over, features, evaluated_at) VALUES ('clf', '1', ?, 0, 1, 500, ?, ?, '[]', 1)",
      );
      evaluation.run(null, 0.4, 0);
      evaluation.run(null, 1.75, 1);
      evaluation.run('dev-x', 9, 1); // a device's window: not the fleet score
      // Each scope's newest evaluation, as the evaluator upserts it with the evaluation (what /metrics reads).
      const latest = db.prepare("INSERT OR REPLACE INTO drift_latest (model, version, scope, evaluation_id, score, over, samples, window_end, evaluated_at, drifted) VALUES ('clf', '1', ?, 0, ?, ?, 500, 1, 1, '[]')");
      latest.run('', 1.75, 1);
      latest.run('dev-x', 9, 1);
      const alert = db.prepare("INSERT INTO drift_alerts (model, version, device_id, state, raised_at, score, devices, features, message) VALUES ('clf', '1', ?, ?, 1, 2, '[]', '[]', 'm')");
      alert.run(null, 'active');
      alert.run('dev-x', 'active');
      alert.run(null, 'cleared');
    } finally {
      db.close();
    }
    const text = (await scrape()).text;
    expect(sample(text, 'edgefleet_drift_score{model="clf",version="1"}')).toBe(1.75);
    expect(sample(text, 'edgefleet_drift_alerts_active{model="clf",version="1"}')).toBe(2);
    if (promtool) expect(checkMetricsText(text).output).toBe('');
  });

  it('exposes every metric the Grafana dashboards query', async () => {
    const families = declaredMetrics((await scrape()).text);
    const dir = join(REPO, 'deploy/grafana');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const exprs = panelExpressions(JSON.parse(await readFile(join(dir, file), 'utf8')));
      expect(exprs.length, `${file} queries`).toBeGreaterThanOrEqual(6);
      for (const expr of exprs) {
        for (const name of metricNames(expr)) {
          const family = name.replace(/_(bucket|sum|count)$/, '');
          const known = families.has(name) || ['histogram', 'summary'].includes(families.get(family) ?? '');
          expect(known, `${file}: "${name}" in ${expr} is not in the hub's /metrics`).toBe(true);
        }
      }
    }
  });
});

describe('activeModelCounts', () => {
  it('adds each distinct reported list once per device reporting it, active registered versions only, damaged lists skipped', () => {
    const list = (versions: Array<[string, string, boolean]>) => JSON.stringify(versions.map(([name, version, active]) => ({ name, version, sha256: 's', profile: 'fp32', active })));
    const counts = activeModelCounts([
      { models: list([['a', '1', true], ['a', '0', false], ['b', '2', true]]), n: 7 },
      { models: list([['a', '1', true], ['unknown', '1', true]]), n: 3 },
      { models: 'not json', n: 100 },
      { models: '{"name":"a"}', n: 100 },
    ], (model) => model !== 'unknown');
    expect(counts.sort((x, y) => x.model.localeCompare(y.model))).toEqual([
      { model: 'a', version: '1', devices: 10 },
      { model: 'b', version: '2', devices: 7 },
    ]);
  });
});

describe('deploy/prometheus/prometheus.yml', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-prom-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.runIf(promtool)('passes promtool check config (its credentials file pointed at a temp copy)', async () => {
    // promtool checks that credentials_file exists; the deployed path is the operator's, so a temp one stands in.
    const config = await readFile(join(REPO, 'deploy/prometheus/prometheus.yml'), 'utf8');
    expect(config).toContain('credentials_file: /etc/prometheus/edgefleet-hub.token');
    await writeFile(join(dir, 'hub.token'), 'token\n');
    await writeFile(join(dir, 'prometheus.yml'), config.replace('/etc/prometheus/edgefleet-hub.token', join(dir, 'hub.token')));
    const result = checkPrometheusConfig(join(dir, 'prometheus.yml'));
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
  });
});

/** Every `expr` of every panel (rows nest panels). */
function panelExpressions(dashboard: { panels?: Panel[] }): string[] {
  const out: string[] = [];
  const walk = (panels: Panel[] = []) => {
    for (const p of panels) {
      for (const target of p.targets ?? []) if (target.expr) out.push(target.expr);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}
interface Panel {
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

const PROMQL_WORDS = new Set(['sum', 'by', 'without', 'rate', 'irate', 'increase', 'avg', 'max', 'min', 'count', 'topk', 'bottomk', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'clamp_min', 'clamp_max', 'histogram_quantile', 'label_replace', 'vector', 'scalar', 'abs', 'delta', 'deriv', 'time', 'bool', 'le']);

/** Metric names in a PromQL expression: identifiers outside braces, strings and grouping clauses, not functions or keywords. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\$\w+/g, '');
  return [...stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w) && !/^\d/.test(w));
}
