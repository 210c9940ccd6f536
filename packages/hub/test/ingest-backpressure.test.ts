import { deviceTopic, type EnrollResponse } from '@edgefleet/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

const BOUND = 3;

describe('ingest write queue: bounded, pushes back', () => {
  let t: TestHub;
  let dev: EnrollResponse;
  let c: MqttClient;
  beforeAll(async () => {
    t = await startTestHub({ config: { ingestQueueBound: BOUND } });
    dev = await enrollDevice(t);
    c = await connectDevice(t, dev);
  });
  afterAll(async () => {
    await c.endAsync(true);
    await t.stop();
  });

  it('holds acknowledgements while the queue is full, never grows past the bound, and stores everything', async () => {
    const n = 40;
    // All publishes go out at once, so the broker sees more records than the queue may hold.
    await Promise.all(
      Array.from({ length: n }, (_, i) => c.publishAsync(deviceTopic(dev.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(i + 1)), { qos: 1 })),
    );
    const counters = t.hub.ingestCounters();
    expect(counters.held).toBeGreaterThan(0);
    expect(counters.queuePeak).toBeLessThanOrEqual(BOUND);
    // Every PUBACK came back: every record is committed.
    const res = await t.api<{ points: Array<{ seq: number }> }>('GET', `/api/v1/devices/${dev.deviceId}/telemetry?limit=100`);
    expect(res.body.points.map((p) => p.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(counters.stored).toBe(n);
  });
});
