import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { deviceTopic, type BaselineInfo, type DriftAlert, type DriftMessage, type DriftOverview, type EvaluationRun, type ModelVersion } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { attributes, enrollFieldDevice, ingestCounters, normals, windowSummary, type FieldDevice, type TrackedVersion } from './support/drift-field.js';
import { api, eventually, makeTempDir, startHub, type Hub } from './support/fleet.js';
import { killAll, REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test/artifacts');
const FEATURES = 8;
const REFERENCE_SAMPLES = 1000;
/** The hub's minimum per evaluation window (DESIGN.md, settled questions): one summary per device reaches it. */
const WINDOW_SAMPLES = 500;
/** Features of the drifting model that the two drifting devices see shifted, by this many standard deviations. */
const SHIFTED = [2, 5];
const SHIFT = 2.5;
/** Listed first although the steady one sorts before it by name: the page puts drifting versions first. */
const DRIFTING = 'pump';
const STEADY = 'fan';
const VERSION = '1.0.0';

/** `samples` rows of FEATURES standard normals, the SHIFTED columns moved when `shifted`. */
function tabular(samples: number, seed: number, shifted: boolean): Float32Array {
  const data = normals(samples * FEATURES, seed);
  if (!shifted) return data;
  for (let r = 0; r < samples; r++) {
    for (const c of SHIFTED) data[r * FEATURES + c] = data[r * FEATURES + c]! + SHIFT;
  }
  return data;
}

interface Tracked extends TrackedVersion {
  name: string;
}

describe.skipIf(!hasTool('chromium', 'chromium'))('dashboard drift view in headless Chromium', () => {
  let hub: Hub;
  let browser: Browser;
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  const tracked = new Map<string, Tracked>();
  const devices: FieldDevice[] = [];

  /** Uploads a tabular model and its reference data; resolves once the version's manifest carries the baseline. */
  async function track(name: string, seed: number): Promise<Tracked> {
    const model = buildMlp({ name, inputSize: FEATURES, hidden: [16], outputSize: 4, seed });
    await api(hub, 'POST', `/api/v1/models/${name}/versions?version=${VERSION}`, model, 201);
    const info = await api<BaselineInfo>(hub, 'PUT', `/api/v1/models/${name}/versions/${VERSION}/reference`, {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [REFERENCE_SAMPLES, FEATURES], data: Array.from(tabular(REFERENCE_SAMPLES, seed * 101, false)) }],
    });
    expect(info).toMatchObject({ model: name, version: VERSION, source: 'reference', samples: REFERENCE_SAMPLES });
    expect(info.features).toHaveLength(FEATURES);
    // The baseline is small, so it rides inline in the signed manifest (larger ones only by artifact digest).
    const version = await eventually(async () => {
      const v = await api<ModelVersion>(hub, 'GET', `/api/v1/models/${name}/versions/${VERSION}`);
      return v.manifest.manifest.drift?.sha256 === info.sha256 && v.manifest.manifest.drift.baseline ? v : null;
    }, `the manifest of ${name} ${VERSION} to carry its drift baseline`);
    const baseline = version.manifest.manifest.drift!.baseline!;
    expect(baseline.extraction).toBeDefined();
    const session = await ort.InferenceSession.create(model);
    const t = { name, version, baseline, session };
    tracked.set(name, t);
    return t;
  }

  /** Every device sends one window of each tracked model; the two first see the drifting model shifted. */
  async function sendWindow(index: number): Promise<void> {
    const end = Date.now() - (1 - index) * 60_000;
    const window = { start: end - 60_000, end };
    for (const [i, device] of devices.entries()) {
      for (const t of tracked.values()) {
        const shifted = t.name === DRIFTING && i < 2;
        const summary = await windowSummary(t, tabular(WINDOW_SAMPLES, 1000 * index + 10 * i + t.name.length, shifted), FEATURES, window);
        device.seq += 1;
        const message: DriftMessage = { v: 1, seq: device.seq, ts: Date.now(), model: t.name, version: VERSION, summary };
        await device.client.publishAsync(deviceTopic(device.deviceId, 'drift'), JSON.stringify(message), { qos: 1 });
      }
    }
    // Ingest is asynchronous: evaluate only once the hub has committed every summary sent (no agent
    // runs here, so these are the only records), or refused one.
    const sent = devices.reduce((n, d) => n + d.seq, 0);
    const counters = await eventually(async () => {
      const c = await ingestCounters(hub);
      return c.stored >= sent || c.rejected > 0 ? c : null;
    }, `the hub to commit the ${sent} drift summaries sent so far`);
    expect(counters, 'drift summaries refused by the hub (edgefleet_drift_summaries_rejected_total)').toEqual({ stored: sent, rejected: 0 });
  }

  async function evaluate(): Promise<EvaluationRun> {
    return api<EvaluationRun>(hub, 'POST', '/api/v1/drift/evaluations', {});
  }

  beforeAll(async () => {
    const hubDir = await makeTempDir('hub');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path });
    // Drifting model first: the steady one's name sorts before it, so the page's order is its own.
    await track(DRIFTING, 7);
    await track(STEADY, 3);
    for (const name of ['press-north', 'press-south', 'press-east']) devices.push(await enrollFieldDevice(hub, name));
    const userDataDir = await makeTempDir('chromium');
    dirs.push(userDataDir);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(devices.map((d) => d.client.endAsync()));
    await Promise.all([...tracked.values()].map((t) => t.session.release()));
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  /** A new page at `hash`, signed in; `problems` collects CSP refusals and uncaught page errors. */
  async function signedInPage(hash = ''): Promise<{ page: Page; problems: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`${hub.apiUrl}/${hash}`);
    await page.locator('#login-form input[name="token"]').fill(hub.adminToken);
    await page.locator('#login-form button[type="submit"]').click();
    return { page, problems };
  }

  it('lists the drifting version first, then shows its alert naming the two drifting devices and the shifted features as it is raised', async () => {
    const [north, south, east] = devices;
    const shiftedNames = SHIFTED.map((c) => tracked.get(DRIFTING)!.baseline.features[c]!.name);

    // The page is open before any evaluation: both versions listed, neither drifting, by name.
    await sendWindow(0);
    const { page, problems } = await signedInPage();
    await page.locator('[data-nav="drift"]').click();
    const list = page.locator('#drift-list');
    await list.locator(`li[data-drift-model="${STEADY}"][data-drifting="false"]`).waitFor({ timeout: 10_000 });
    await list.locator(`li[data-drift-model="${DRIFTING}"][data-drifting="false"]`).waitFor();
    expect(await attributes(list.locator('li[data-drift-model]'), 'data-drift-model')).toEqual([STEADY, DRIFTING]);

    // The first evaluation reaches the page through the event stream alone: the drifting version moves first, marked.
    const first = await evaluate();
    expect(first.evaluations).toBeGreaterThanOrEqual(2 * (devices.length + 1));
    await list.locator(`li[data-drift-model="${DRIFTING}"][data-drifting="true"]`).waitFor({ timeout: 15_000 });
    expect(await attributes(list.locator('li[data-drift-model]'), 'data-drift-model')).toEqual([DRIFTING, STEADY]);
    expect(await list.locator(`li[data-drift-model="${DRIFTING}"] .badge.drift-over`).count()).toBe(1);
    expect(await list.locator(`li[data-drift-model="${STEADY}"] .badge.drift-over`).count()).toBe(0);

    // Its link opens it; one window of each device is over, but a device alert needs two.
    await list.locator(`li[data-drift-model="${DRIFTING}"] a`).click();
    const view = page.locator('[data-drift-view]');
    await view.locator('#drift-title', { hasText: `${DRIFTING} ${VERSION}` }).waitFor();
    expect(new URL(page.url()).hash).toBe(`#drift/${DRIFTING}/${VERSION}`);
    await view.locator(`#drift-devices tr[data-device-id="${north!.deviceId}"][data-over="true"]`).waitFor();
    expect(await view.locator('#drift-alerts [data-alert-scope="device"][data-alert-state="active"]').count()).toBe(0);

    // The second window of each device raises their alerts: again the page learns of them from the event stream.
    await sendWindow(1);
    const second = await evaluate();
    expect(second.raised).toBeGreaterThanOrEqual(2);
    const deviceAlerts = view.locator('#drift-alerts li[data-alert-scope="device"][data-alert-state="active"]');
    await vi.waitUntil(async () => (await deviceAlerts.count()) === 2, { timeout: 15_000, interval: 100 });
    const alerted = await attributes(deviceAlerts, 'data-alert-device');
    expect([...alerted].sort()).toEqual([north!.deviceId, south!.deviceId].sort());
    const fleetAlert = view.locator('#drift-alerts li[data-alert-state="active"][data-alert-scope="fleet"]');
    await fleetAlert.waitFor();

    const named = await attributes(fleetAlert.locator('[data-field="devices"] [data-device-id]'), 'data-device-id');
    expect([...named].sort()).toEqual([north!.deviceId, south!.deviceId].sort());
    const features = await attributes(fleetAlert.locator('[data-field="features"] [data-feature]'), 'data-feature');
    for (const name of shiftedNames) expect(features).toContain(name);
    expect(await fleetAlert.locator('[data-field="message"]').innerText()).not.toBe('');

    // The devices table: the two shifted devices over with the shifted features, the third under.
    for (const device of [north!, south!]) {
      const row = view.locator(`#drift-devices tr[data-device-id="${device.deviceId}"]`);
      expect(await row.getAttribute('data-over')).toBe('true');
      const drifted = await row.locator('[data-field="drifted"]').innerText();
      for (const name of shiftedNames) expect(drifted).toContain(name);
    }
    expect(await view.locator(`#drift-devices tr[data-device-id="${east!.deviceId}"]`).getAttribute('data-over')).toBe('false');
    expect(await view.locator('[data-field="devices-over"]').textContent()).toBe('Devices over: 2 of 3 evaluated');

    // The chart: both fleet windows, a line per top feature (the shifted ones among them), drawn.
    const chart = view.locator('#drift-chart');
    await chart.locator('canvas').waitFor();
    // Each pass makes at least one fleet window per sending round (D's windows: ≥ 500 samples each).
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThanOrEqual(2);
    const series = Number(await chart.getAttribute('data-series'));
    expect(series).toBeGreaterThanOrEqual(SHIFTED.length);
    expect(series).toBeLessThanOrEqual(8);
    const legend = await chart.locator('.u-legend .u-label').allInnerTexts();
    for (const name of shiftedNames) expect(legend).toContain(name);
    await view.locator('[data-field="baseline"]', { hasText: `reference data, ${REFERENCE_SAMPLES} samples, ${FEATURES} features` }).waitFor();

    // The API agrees with what the page shows.
    const alerts = await api<DriftAlert[]>(hub, 'GET', '/api/v1/alerts?state=active');
    expect(alerts.filter((a) => a.model === STEADY)).toEqual([]);
    const overview = await api<DriftOverview[]>(hub, 'GET', '/api/v1/drift');
    expect(overview.find((o) => o.model === DRIFTING)).toMatchObject({ devicesOver: 2 });

    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'dashboard-drift.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  }, 120_000);

  it('opens a version by its link: the steady model shows no alert and every device under', async () => {
    const { page, problems } = await signedInPage(`#drift/${STEADY}/${VERSION}`);
    const view = page.locator('[data-drift-view]');
    await view.locator('#drift-title', { hasText: `${STEADY} ${VERSION}` }).waitFor({ timeout: 10_000 });
    for (const device of devices) await view.locator(`#drift-devices tr[data-device-id="${device.deviceId}"][data-over="false"]`).waitFor();
    expect(await view.locator('#drift-alerts [data-alert-state="active"]').count()).toBe(0);
    expect(await page.locator(`#drift-list li[data-drift-model="${STEADY}"] a`).getAttribute('aria-current')).toBe('true');
    expect(await page.locator('[data-nav="drift"]').getAttribute('aria-current')).toBe('true');
    expect(await page.locator('#fleet-page').isHidden()).toBe(true);
    await page.close();
    expect(problems).toEqual([]);
  }, 60_000);
});
