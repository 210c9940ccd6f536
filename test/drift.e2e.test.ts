import type { BaselineInfo, DriftAlert, ModelVersion, Rollout } from '@edgefleet/shared';
import { buildConvNet, buildMlp } from '@edgefleet/shared/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertsOf, driftView, evaluateNow, images, putReference, serveRequests, TABULAR_FEATURES, tabularRows } from './support/drift-data.js';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { killAll } from './support/processes.js';
import { reportedActive, servedVersion } from './support/rollout-fleet.js';

const VERSION = '1';
const TABULAR = 'sensors';
const IMAGE = 'camera';
const IMAGE_SIZE = 16;
/** Rows per inference request; the agents close a window every WINDOW_REQUESTS requests, so a window holds 500 samples. */
const ROWS = 100;
const WINDOW_REQUESTS = 5;
const WINDOW_SAMPLES = ROWS * WINDOW_REQUESTS;
/** Windows agent 1 serves from the reference distribution. */
const STEADY_WINDOWS = 100;
/** Three numeric features of different kinds (normal, log-normal, uniform), shifted by 1σ on agent 2. */
const SHIFTED = new Set([5, 11, 17]);
const SHIFTED_NAMES = [...SHIFTED].map((f) => `input[${f}]`).sort();
const BRIGHTEN = 0.3;

/**
 * Issue 17 end to end: a real hub, two real agents serving over their sockets with real onnxruntime.
 * Baselines are built on the hub from uploaded reference data and ride with the rollout; the agents
 * track drift in their inference workers and publish a window every WINDOW_REQUESTS requests; the
 * test runs evaluation passes through the API (the scheduled job is set to once a year) and reads
 * evaluations and alerts back.
 */
describe('drift monitoring end to end', () => {
  let hub: Hub;
  let steady: AgentHandle;
  let drifting: AgentHandle;
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  /** Evaluation windows closed by the passes this test ran, in total. */
  let evaluated = 0;

  async function deploy(model: string, bytes: Uint8Array, reference: { name: string; shape: number[]; data: Float32Array }): Promise<BaselineInfo> {
    await api(hub, 'POST', `/api/v1/models/${model}/versions?version=${VERSION}`, bytes, 201);
    const info = await putReference(hub, model, VERSION, reference);
    expect(info).toMatchObject({ model, version: VERSION, source: 'reference', samples: reference.shape[0] });
    const version = await api<ModelVersion>(hub, 'GET', `/api/v1/models/${model}/versions/${VERSION}`);
    expect(version.manifest.manifest.drift?.sha256, 'the signed manifest names the baseline').toBe(info.sha256);
    const created = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model, version: VERSION, target: { deviceIds: [steady.deviceId, drifting.deviceId] }, waves: [{ size: '100%' }] }, 201);
    const done = await eventually(async () => {
      const r = await api<Rollout>(hub, 'GET', `/api/v1/rollouts/${created.id}`);
      return ['succeeded', 'halted', 'rolled-back', 'aborted'].includes(r.state) && r;
    }, `the rollout of ${model} to finish`, 60_000);
    expect(done.state).toBe('succeeded');
    for (const agent of [steady, drifting]) {
      await eventually(
        async () => (await reportedActive(hub, agent.deviceId, model)) === VERSION && (await servedVersion(agent, model)) === VERSION,
        `${agent.deviceId} reporting and serving ${model}@${VERSION}`,
      );
    }
    return info;
  }

  /** Runs evaluation passes until `check` holds on what they closed (records arrive asynchronously through the outbox and ingest). */
  async function evaluateUntil<T>(check: () => Promise<T>, what: string): Promise<Exclude<T, false | null | undefined>> {
    return eventually(async () => {
      evaluated += (await evaluateNow(hub)).evaluations;
      return check();
    }, what);
  }

  beforeAll(async () => {
    const hubDir = await makeTempDir('drift-hub');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path, env: { EDGEFLEET_DRIFT_EVALUATE_CRON: '0 0 0 1 1 *', EDGEFLEET_DRIFT_MIN_SAMPLES: String(WINDOW_SAMPLES) } });
    const start = async (name: string) => {
      const dir = await makeTempDir(`drift-${name}`);
      dirs.push(dir);
      // Windows close by request count only: an hour is longer than the test.
      return startAgent(dir.path, await enrollAgent(hub, dir.path, name), { EDGEFLEET_DRIFT_WINDOW_REQUESTS: String(WINDOW_REQUESTS), EDGEFLEET_DRIFT_WINDOW_SEC: '3600' });
    };
    [steady, drifting] = await Promise.all([start('line-a'), start('line-b')]);
    const tabular = await deploy(TABULAR, buildMlp({ name: TABULAR, inputSize: TABULAR_FEATURES, hidden: [16], outputSize: 4, seed: 5 }), {
      name: 'input',
      shape: [3000, TABULAR_FEATURES],
      data: tabularRows(3000, 1),
    });
    expect(tabular.features).toHaveLength(TABULAR_FEATURES);
    // Mixed kinds: the small codes (every fifth feature) are categorical, the rest numeric.
    expect(tabular.features.filter((f) => f.kind === 'categorical').map((f) => f.name)).toEqual(['input[4]', 'input[9]', 'input[14]', 'input[19]', 'input[24]', 'input[29]']);
    const image = await deploy(IMAGE, buildConvNet({ name: IMAGE, channels: 3, size: IMAGE_SIZE, filters: [4, 8], classes: 3 }), {
      name: 'image',
      shape: [800, 3, IMAGE_SIZE, IMAGE_SIZE],
      data: images(800, IMAGE_SIZE, 2),
    });
    expect(image.features.map((f) => f.name)).toEqual(['image.c0.mean', 'image.c0.std', 'image.c1.mean', 'image.c1.std', 'image.c2.mean', 'image.c2.std', 'image.brightness']);
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('raises nothing over 100 windows drawn from the reference distribution', async () => {
    await serveRequests(steady, TABULAR, { name: 'input', sampleShape: [TABULAR_FEATURES] }, 'probs', STEADY_WINDOWS * WINDOW_REQUESTS, (k) => tabularRows(ROWS, 1000 + k));
    // One device reports. Its windows close every WINDOW_REQUESTS requests as the agent records them;
    // a request dispatched while a take is on its way can land on either side of the boundary, so a
    // window holds 500 samples give or take a request (and one holds the deploy's health-check
    // sample). A fleet window is whatever one pass read, closed once it holds 500; what a last pass
    // read below that stays pending. Every sample served is counted exactly once either way.
    const fleetSamples = (v: { fleet: Array<{ samples: number }> }) => v.fleet.reduce((n, e) => n + e.samples, 0);
    const served = STEADY_WINDOWS * WINDOW_SAMPLES;
    const view = await evaluateUntil(async () => {
      const v = await driftView(hub, TABULAR, VERSION);
      return fleetSamples(v) + v.pendingSamples >= served && v;
    }, `${served} samples of ${TABULAR} in the fleet's evaluations`);
    expect(fleetSamples(view) + view.pendingSamples).toBeLessThanOrEqual(served + 1);
    expect(evaluated - view.fleet.length, 'device evaluations').toBeGreaterThanOrEqual(STEADY_WINDOWS - 1);
    expect(evaluated - view.fleet.length, 'device evaluations').toBeLessThanOrEqual(STEADY_WINDOWS);
    expect(view.fleet.every((e) => e.samples >= WINDOW_SAMPLES)).toBe(true);
    expect(view.devices.map((d) => d.deviceId)).toEqual([steady.deviceId]);
    const overs = view.fleet.filter((e) => e.over).length;
    console.info(`[drift e2e] ${TABULAR}: ${overs} of ${view.fleet.length} steady fleet windows had a feature over its threshold (single windows; an alert needs two in a row)`);
    expect(await alertsOf(hub, TABULAR)).toEqual([]);
  }, 90_000);

  it('alerts within two windows on the device whose traffic moved, naming exactly the three shifted features', async () => {
    await serveRequests(drifting, TABULAR, { name: 'input', sampleShape: [TABULAR_FEATURES] }, 'probs', 2 * WINDOW_REQUESTS, (k) => tabularRows(ROWS, 5000 + k, SHIFTED));
    const alert = await evaluateUntil(
      async () => (await alertsOf(hub, TABULAR, 'active')).find((a) => a.deviceId === drifting.deviceId),
      `a drift alert on ${drifting.deviceId}`,
    );
    const why = JSON.stringify(alert, null, 2);
    expect(alert.devices, why).toEqual([drifting.deviceId]);
    expect(alert.features.slice(0, 3).map((f) => f.name).sort(), why).toEqual(SHIFTED_NAMES);
    // Beyond those, only the model's output may be named (its class shares move with its inputs).
    expect(alert.features.filter((f) => f.name.startsWith('input[')).map((f) => f.name).sort(), why).toEqual(SHIFTED_NAMES);
    expect(alert.message).toContain(drifting.deviceId);
    const view = await driftView(hub, TABULAR, VERSION);
    const row = view.devices.find((d) => d.deviceId === drifting.deviceId);
    expect(row?.over).toBe(true);
    expect(row?.drifted.filter((n) => n.startsWith('input[')).sort()).toEqual(SHIFTED_NAMES);
    expect((await alertsOf(hub, TABULAR, 'all')).filter((a) => a.deviceId === steady.deviceId)).toEqual([]);
    console.info(`[drift e2e] ${alert.message}`);
  }, 60_000);

  it('sees a brightness shift on camera images in the channel means and brightness, and nothing on the unshifted device', async () => {
    const windows = 3;
    const camera = { name: 'image', sampleShape: [3, IMAGE_SIZE, IMAGE_SIZE] };
    await Promise.all([
      serveRequests(steady, IMAGE, camera, 'probs', windows * WINDOW_REQUESTS, (k) => images(ROWS, IMAGE_SIZE, 100 + k)),
      serveRequests(drifting, IMAGE, camera, 'probs', windows * WINDOW_REQUESTS, (k) => images(ROWS, IMAGE_SIZE, 200 + k, BRIGHTEN)),
    ]);
    const view = await evaluateUntil(async () => {
      const v = await driftView(hub, IMAGE, VERSION);
      const done = v.devices.length === 2 && v.pendingSamples === 0 && v.alerts.some((a) => a.deviceId === drifting.deviceId);
      return done && v;
    }, `both devices' ${IMAGE} windows evaluated and an alert on ${drifting.deviceId}`);
    const alerts: DriftAlert[] = view.alerts.filter((a) => a.deviceId !== null);
    expect(alerts.map((a) => a.deviceId)).toEqual([drifting.deviceId]);
    const alert = alerts[0]!;
    const named = alert.features.map((f) => f.name);
    const why = JSON.stringify(alert, null, 2);
    expect(named, why).toContain('image.brightness');
    // Every input feature named is a mean or the brightness: the shift moved no spread.
    expect(named.filter((n) => n.startsWith('image.')).every((n) => n === 'image.brightness' || /^image\.c\d\.mean$/.test(n)), why).toBe(true);
    const rows = new Map(view.devices.map((d) => [d.deviceId, d]));
    expect(rows.get(drifting.deviceId)?.over).toBe(true);
    expect(rows.get(drifting.deviceId)?.drifted).toContain('image.brightness');
    expect(rows.get(steady.deviceId)?.drifted.filter((n) => n.startsWith('image.'))).toEqual([]);
    console.info(`[drift e2e] ${alert.message}`);
  }, 60_000);
});
