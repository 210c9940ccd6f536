import { deviceTopic } from '@edgefleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

const HISTORY = 20;
const SLACK = 10; // max(10, HISTORY / 10), as in record-repo.ts

describe('telemetry history', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ config: { telemetryHistory: HISTORY } });
  });
  afterAll(async () => {
    await t.stop();
  });

  it('keeps a bounded history per device and does not take back a pruned record on replay', async () => {
    const dev = await enrollDevice(t, { name: 'chatty' });
    const c = await connectDevice(t, dev);
    const topic = deviceTopic(dev.deviceId, 'telemetry');
    for (let seq = 1; seq <= 100; seq++) await c.publishAsync(topic, JSON.stringify(telemetryRecord(seq)), { qos: 1 });
    const seqs = async () =>
      (await t.api<{ points: Array<{ seq: number }> }>('GET', `/api/v1/devices/${dev.deviceId}/telemetry?limit=1000`)).body.points.map((p) => p.seq);

    const kept = await seqs();
    expect(kept.length).toBeGreaterThanOrEqual(HISTORY);
    expect(kept.length).toBeLessThanOrEqual(HISTORY + 2 * SLACK);
    expect(kept.at(-1)).toBe(100);

    // A store-and-forward replay of an old record after pruning must not come back.
    await c.publishAsync(topic, JSON.stringify(telemetryRecord(1)), { qos: 1 });
    expect(await seqs()).toEqual(kept);
    await c.endAsync();
  });
});
