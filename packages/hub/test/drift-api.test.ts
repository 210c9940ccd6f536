import { deviceTopic, type DriftAlert, type DriftModelView, type DriftOverview, type EvaluationRun } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneBaseline, prng, referenceBaseline, windowSummary } from './drift-evaluation-fixtures.js';
import { connectDevice, enrollDevice, eventually, startTestHub, type TestHub } from './hub-harness.js';

const MODEL = 'tabular';
const VERSION = '3';
const SHIFTED = new Set([0, 7, 13]);
const baseline = referenceBaseline(20_000, prng(9));

/**
 * The drift API end to end: a device publishes drift summaries over real MQTT, ingest admits them
 * against the version's baseline, the 'drift-evaluate' job (every second here) evaluates them, and
 * the API shows evaluations and alerts.
 */
describe('drift API over a real hub', () => {
  let t: TestHub;
  let client: MqttClient;
  let deviceId: string;
  let seq = 0;
  const random = prng(10);
  const publish = async (shifted: boolean) => {
    const start = Date.now() - 60_000;
    const summary = windowSummary(baseline, 500, random, { start, ...(shifted ? { shifted: SHIFTED, shiftSd: 1 } : {}) });
    await client.publishAsync(deviceTopic(deviceId, 'drift'), JSON.stringify({ v: 1, seq: ++seq, ts: Date.now(), model: MODEL, version: VERSION, summary }), { qos: 1 });
  };
  const fleetWindows = async () => (await t.api<DriftModelView>('GET', `/api/v1/drift/${MODEL}/${VERSION}?limit=100`)).body.fleet.length;
  /**
   * Publishes one summary and waits until the scheduled job has evaluated it: a fleet window is one
   * pass's summaries, so one summary per pass makes the windows (and alerts) the same every run.
   */
  const publishEvaluated = async (shifted: boolean) => {
    const before = await fleetWindows();
    await publish(shifted);
    await eventually(async () => (await fleetWindows()) === before + 1, `fleet window ${before + 1}`);
  };

  beforeAll(async () => {
    t = await startTestHub({ config: { driftEvaluateCron: '* * * * * *', driftMinSamples: 500 }, hub: { driftBaselines: oneBaseline(MODEL, VERSION, baseline) } });
    const dev = await enrollDevice(t, { name: 'drifting' });
    deviceId = dev.deviceId;
    client = await connectDevice(t, dev);
  });
  afterAll(async () => {
    await client?.endAsync();
    await t?.stop();
  });

  it('evaluates on the schedule and raises an alert after two shifted windows', async () => {
    await publishEvaluated(false);
    await publishEvaluated(true);
    await publishEvaluated(true);
    const alerts = await eventually(async () => {
      const res = await t.api<DriftAlert[]>('GET', '/api/v1/alerts');
      return res.body.length === 2 && res.body;
    }, 'the device and fleet alerts');
    expect(new Set(alerts.map((a) => a.deviceId))).toEqual(new Set([deviceId, null]));
    expect(alerts.every((a) => a.state === 'active' && a.features.map((f) => f.name).sort().join() === 'f0,f13,f7')).toBe(true);

    const view = await t.api<DriftModelView>('GET', `/api/v1/drift/${MODEL}/${VERSION}?limit=2`);
    expect(view.status).toBe(200);
    expect(view.body.fleet.map((e) => e.over)).toEqual([true, true]);
    expect(view.body.devices).toEqual([expect.objectContaining({ deviceId, over: true, samples: 500 })]);
    expect(view.body.baseline?.source).toBe('reference');
    const overview = await t.api<DriftOverview[]>('GET', '/api/v1/drift');
    expect(overview.body).toEqual([expect.objectContaining({ model: MODEL, version: VERSION, activeAlerts: 2, devicesOver: 1 })]);
  });

  it('evaluates now on POST and clears after two windows back in line', async () => {
    await publishEvaluated(false);
    await publishEvaluated(false);
    expect(await fleetWindows()).toBe(5);
    // The scheduled job took both: nothing is left for a pass now.
    const run = await t.api<EvaluationRun>('POST', '/api/v1/drift/evaluations');
    expect(run.status).toBe(200);
    expect(run.body).toEqual({ summaries: 0, evaluations: 0, raised: 0, cleared: 0 });
    expect((await t.api<DriftAlert[]>('GET', '/api/v1/alerts')).body).toEqual([]);
    const cleared = await t.api<DriftAlert[]>('GET', '/api/v1/alerts?state=cleared');
    expect(cleared.body.map((a) => a.state)).toEqual(['cleared', 'cleared']);
  });

  it('answers 404 for a version without drift, 400 for a bad state and 401 without a token', async () => {
    expect((await t.api('GET', `/api/v1/drift/${MODEL}/99`)).status).toBe(404);
    const bad = await t.api<{ code: string }>('GET', '/api/v1/alerts?state=open');
    expect(bad.status).toBe(400);
    expect((await fetch(`${t.hub.apiUrl}/api/v1/alerts`)).status).toBe(401);
  });
});
