import { join } from 'node:path';
import Database from 'better-sqlite3';
import { deviceTopic, type DriftAlert, type DriftModelView, type EnrollResponse, type EvaluationRun } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneBaseline, prng, referenceBaseline, windowSummary } from './drift-evaluation-fixtures.js';
import { connectDevice, enrollDevice, eventually, startTestHub, type TestHub } from './hub-harness.js';

const MODEL = 'press';
const VERSION = '2';
const DEVICES = 10;
/** Devices 0 and 1 see three features (a normal, a log-normal, a uniform) moved by SHIFT_SD. */
const SHIFTED_DEVICES = 2;
const SHIFTED = new Set([0, 6, 12]);
const SHIFT_SD = 3;
/**
 * Each device sends ROUNDS summaries of SAMPLES, evaluated in PASSES passes: every ROUNDS / PASSES
 * rounds make one device window per device and one fleet window of all ten devices.
 */
const SAMPLES = 50;
const ROUNDS = 20;
const PASSES = 2;
const MIN_SAMPLES = 500;
const baseline = referenceBaseline(20_000, prng(31));

interface Device extends EnrollResponse {
  client: MqttClient;
  seq: number;
}

/**
 * The fleet merge over real MQTT: ten enrolled devices publish small drift summaries, two of them
 * shifted. A device's evaluation window needs 10 of its own summaries; a fleet window takes all of a
 * pass's summaries (here 10 rounds of all ten devices, 5000 samples), so 20 % of its samples are
 * shifted. The hub must find the two devices (their own windows over, named by the fleet view and the
 * fleet alert) and leave the other eight.
 */
describe('drift across a fleet of ten devices over MQTT', () => {
  let t: TestHub;
  const devices: Device[] = [];
  let db: Database.Database;
  /** drift records committed (ingest flushed first): a pass run after this sees all of them. */
  const stored = () => {
    t.hub.flushIngest();
    return db.prepare('SELECT count(*) FROM drift').pluck().get() as number;
  };

  beforeAll(async () => {
    // The scheduled pass never runs here (once a year): the test evaluates through the API.
    t = await startTestHub({ config: { driftEvaluateCron: '0 0 0 1 1 *', driftMinSamples: MIN_SAMPLES }, hub: { driftBaselines: oneBaseline(MODEL, VERSION, baseline) } });
    for (let i = 0; i < DEVICES; i++) {
      const creds = await enrollDevice(t, { name: `press-${i}` });
      devices.push({ ...creds, client: await connectDevice(t, creds), seq: 0 });
    }
    db = new Database(join(t.dataDir, 'hub.db'), { readonly: true, fileMustExist: true });
  });
  afterAll(async () => {
    db?.close();
    await Promise.all(devices.map((d) => d.client.endAsync()));
    await t?.stop();
  });

  it('names the two shifted devices in their evaluations, the fleet view and the fleet alert, and not the other eight', async () => {
    const random = devices.map((_, i) => prng(100 + i));
    const start = Date.now() - ROUNDS * 1000;
    const runs: EvaluationRun[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // A round is acknowledged (QoS 1) before the next is sent, so rounds reach ingest in order.
      await Promise.all(
        devices.map((d, i) => {
          const opts = { start: start + round * 1000, ...(i < SHIFTED_DEVICES ? { shifted: SHIFTED, shiftSd: SHIFT_SD } : {}) };
          const summary = windowSummary(baseline, SAMPLES, random[i]!, opts);
          const message = { v: 1, seq: ++d.seq, ts: Date.now(), model: MODEL, version: VERSION, summary };
          return d.client.publishAsync(deviceTopic(d.deviceId, 'drift'), JSON.stringify(message), { qos: 1 });
        }),
      );
      if ((round + 1) % (ROUNDS / PASSES) === 0) {
        const records = (round + 1) * DEVICES;
        await eventually(() => stored() === records, `${records} drift records stored`);
        runs.push((await t.api<EvaluationRun>('POST', '/api/v1/drift/evaluations')).body);
      }
    }
    // Per pass: 100 summaries, a window per device (10 × 50 samples) and the fleet's (all 5000); the
    // second pass raises the two devices' alerts and the fleet's (its second window over in a row).
    expect(runs).toEqual([
      { summaries: 100, evaluations: DEVICES + 1, raised: 0, cleared: 0 },
      { summaries: 100, evaluations: DEVICES + 1, raised: SHIFTED_DEVICES + 1, cleared: 0 },
    ]);
    const view = (await t.api<DriftModelView>('GET', `/api/v1/drift/${MODEL}/${VERSION}?limit=100`)).body;
    expect(view.pendingSamples).toBe(0);
    expect(view.fleet.map((e) => e.samples)).toEqual([5000, 5000]);

    const shifted = devices.slice(0, SHIFTED_DEVICES).map((d) => d.deviceId).sort();
    const names = [...SHIFTED].map((f) => `f${f}`).sort();
    expect(view.devices).toHaveLength(DEVICES);
    expect(view.devices.filter((d) => d.over).map((d) => d.deviceId).sort()).toEqual(shifted);
    for (const row of view.devices) {
      expect(row.samples).toBe(MIN_SAMPLES);
      expect([...row.drifted].sort(), row.deviceId).toEqual(shifted.includes(row.deviceId) ? names : []);
    }
    // Each fleet window mixes 1000 shifted samples into 5000. A 3σ shift is not diluted away: a fifth
    // of the window lands in the reference's outer bins (or past its range), where the reference
    // holds a few percent at most — PSI ≈ 0.2–1.7 on the three features, against a threshold of about
    // 0.108 at 5000 samples. Over on exactly those three, every window.
    for (const e of view.fleet) {
      expect(e.over).toBe(true);
      expect(e.features.filter((f) => f.drifted).map((f) => f.name).sort()).toEqual(names);
    }

    const alerts = (await t.api<DriftAlert[]>('GET', '/api/v1/alerts')).body;
    const fleet = alerts.find((a) => a.deviceId === null);
    const why = JSON.stringify(alerts, null, 2);
    expect(fleet, why).toBeDefined();
    expect([...fleet!.devices].sort(), why).toEqual(shifted);
    expect(fleet!.features.map((f) => f.name).sort(), why).toEqual(names);
    for (const id of shifted) expect(fleet!.message).toContain(id);
    // Device alerts: exactly the two shifted devices (two windows over each).
    expect(alerts.filter((a) => a.deviceId !== null).map((a) => a.deviceId).sort(), why).toEqual(shifted);
  });
});
