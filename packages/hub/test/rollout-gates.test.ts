import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelStats, ShadowReport, TelemetryMessage, VersionRef } from '@edgefleet/shared';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeviceRepo } from '../src/devices/device-repo.js';
import { createRecordRepo, type DeviceRecord, type RecordRepo } from '../src/records/record-repo.js';
import {
  failureShareGate,
  metricGates,
  shadowGate,
  successShareGate,
  usageOf,
  type DeviceUsage,
  type TelemetrySample,
  type VersionUsage,
} from '../src/rollouts/gates.js';
import { collectDeviceUsage, fromLastSampleAtOrBefore } from '../src/rollouts/metric-inputs.js';
import { openDatabase, type Db } from '../src/store/database.js';

const AT = '2026-12-01T00:00:00.000Z';

const stat = (version: string, requests: number, errors: number, p99: number, name = 'm'): ModelStats => ({
  name,
  version,
  requests,
  errors,
  latencyMs: { p50: p99 / 2, p90: p99 * 0.9, p99 },
});
const sample = (ts: number, ...models: ModelStats[]): TelemetrySample => ({ ts, models });
const usage = (requests: number, errors: number, p99Ms: number | null): VersionUsage => ({ requests, errors, p99Ms });
const device = (deviceId: string, before: VersionUsage, after: VersionUsage): DeviceUsage => ({ deviceId, before, after });

describe('usageOf (cumulative counters → usage of one version)', () => {
  it('sums the deltas after the first sample and weights interval p99s by their requests', () => {
    const u = usageOf([sample(0, stat('1', 100, 5, 99)), sample(10, stat('1', 110, 6, 5)), sample(20, stat('1', 130, 8, 10))], 'm', '1');
    expect(u.requests).toBe(30);
    expect(u.errors).toBe(3);
    expect(u.p99Ms).toBeCloseTo((10 * 5 + 20 * 10) / 30, 10);
  });

  it('reads a counter that drops as an agent restart: the new value is the delta', () => {
    const u = usageOf([sample(0, stat('1', 100, 10, 1)), sample(10, stat('1', 20, 1, 7)), sample(20, stat('1', 50, 1, 9))], 'm', '1');
    expect(u).toEqual(usage(50, 1, (20 * 7 + 30 * 9) / 50));
  });

  it('counts a version missing from the sample before as 0 (it just became active)', () => {
    const u = usageOf([sample(0, stat('1', 500, 0, 3)), sample(10, stat('1', 510, 0, 3), stat('2', 15, 2, 4))], 'm', '2');
    expect(u).toEqual(usage(15, 2, 4));
  });

  it('does not count a version twice when the agent forgot it and served it again', () => {
    // Reported one last time (10), forgotten, then active again from 0 (a rollback and a new rollout).
    const u = usageOf([sample(0, stat('2', 4, 0, 1)), sample(10, stat('2', 10, 0, 2)), sample(20), sample(30, stat('2', 5, 1, 8))], 'm', '2');
    expect(u).toEqual(usage(6 + 5, 1, (6 * 2 + 5 * 8) / 11));
  });

  it('gives nothing for no sample or one sample: the first sample is only the starting point', () => {
    expect(usageOf([], 'm', '1')).toEqual(usage(0, 0, null));
    expect(usageOf([sample(0, stat('1', 100, 5, 9))], 'm', '1')).toEqual(usage(0, 0, null));
  });

  it('ignores the latency of intervals that served nothing (the agent reports p99 0 for an empty window)', () => {
    const u = usageOf([sample(0, stat('1', 10, 0, 5)), sample(10, stat('1', 10, 0, 0)), sample(20, stat('1', 20, 0, 6))], 'm', '1');
    expect(u).toEqual(usage(10, 0, 6));
    expect(usageOf([sample(0, stat('1', 10, 0, 5)), sample(10, stat('1', 10, 0, 0))], 'm', '1')).toEqual(usage(0, 0, null));
  });

  it('tells models apart, and versions apart', () => {
    const samples = [sample(0), sample(10, stat('1', 7, 0, 2, 'other'), stat('2', 3, 0, 2, 'm'), stat('1', 40, 4, 9, 'm'))];
    expect(usageOf(samples, 'other', '1')).toEqual(usage(7, 0, 2));
    expect(usageOf(samples, 'm', '1')).toEqual(usage(40, 4, 9));
    expect(usageOf(samples, 'm', '3')).toEqual(usage(0, 0, null));
  });

  it('never reports more errors than requests, nor a NaN, whatever the counters do', () => {
    expect(usageOf([sample(0, stat('1', 10, 0, 1)), sample(10, stat('1', 12, 9, 1))], 'm', '1')).toEqual(usage(2, 2, 1));
    let seed = 7;
    const next = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    for (let run = 0; run < 200; run++) {
      const samples = Array.from({ length: next(8) }, (_, i) =>
        next(4) === 0 ? sample(i) : sample(i, stat('1', next(50), next(50), next(3) === 0 ? 0 : next(1000) / 7)),
      );
      const u = usageOf(samples, 'm', '1');
      expect(u.requests).toBeGreaterThanOrEqual(u.errors);
      expect(u.errors).toBeGreaterThanOrEqual(0);
      expect(u.p99Ms === null ? u.requests === 0 : Number.isFinite(u.p99Ms) && u.requests > 0).toBe(true);
    }
  });
});

describe('share gates', () => {
  const counts = (total: number, active: number, failed: number, timedOut = 0) => ({ total, active, failed, timedOut });

  it('failure share: by default one failed device halts; at the allowed share it passes, above it fails', () => {
    expect(failureShareGate(undefined, counts(10, 9, 1), AT)).toMatchObject({
      gate: 'failure-share',
      status: 'failed',
      observed: 0.1,
      threshold: 0,
      message: '1 of 10 devices failed (0.10 > 0.00 allowed)',
      at: AT,
    });
    expect(failureShareGate(undefined, counts(10, 0, 0), AT).status).toBe('passed');
    expect(failureShareGate({ maxFailureShare: 0.2 }, counts(10, 0, 2), AT)).toMatchObject({ status: 'passed', message: '2 of 10 devices failed (0.20 ≤ 0.20 allowed)' });
    expect(failureShareGate({ maxFailureShare: 0.2 }, counts(10, 0, 3), AT).status).toBe('failed');
    expect(failureShareGate(undefined, counts(0, 0, 0), AT)).toMatchObject({ status: 'passed', observed: 0 });
  });

  it('success share: judged on reachable devices; timed-out ones are counted but do not block', () => {
    expect(successShareGate(undefined, counts(10, 9, 0, 1), AT)).toMatchObject({
      gate: 'success-share',
      status: 'passed',
      observed: 1,
      threshold: 1,
      message: '9 of 9 reachable devices active (1.00 ≥ 1.00 required), 1 timed out',
    });
    const short = successShareGate({ minSuccessShare: 0.9 }, counts(10, 8, 1, 1), AT);
    expect(short).toMatchObject({ status: 'failed', message: '8 of 9 reachable devices active (0.89 < 0.90 required), 1 timed out' });
    expect(short.observed).toBeCloseTo(8 / 9, 12);
    expect(successShareGate({ minSuccessShare: 0.7 }, counts(10, 7, 3), AT).status).toBe('passed');
    expect(successShareGate(undefined, counts(10, 9, 1), AT).status).toBe('failed');
  });

  it('success share: a wave whose devices all timed out fails (an offline canary proves nothing); an empty wave passes', () => {
    expect(successShareGate(undefined, counts(1, 0, 0, 1), AT)).toEqual({
      gate: 'success-share',
      status: 'failed',
      observed: null,
      baseline: null,
      threshold: 1,
      message: 'no device reached: 1 of 1 device timed out, none active, so nothing shows the version works (1.00 required; resume to go on regardless)',
      at: AT,
    });
    expect(successShareGate({ minSuccessShare: 0.5 }, counts(3, 0, 0, 3), AT)).toMatchObject({ status: 'failed', threshold: 0.5, message: expect.stringMatching(/^no device reached: 3 of 3 devices timed out, none active.*\(0\.50 required/) });
    // minSuccessShare 0 asks for no proof at all.
    expect(successShareGate({ minSuccessShare: 0 }, counts(3, 0, 0, 3), AT)).toMatchObject({ status: 'passed', message: 'no device reached: 3 of 3 devices timed out (minSuccessShare 0: none required)' });
    expect(successShareGate(undefined, counts(0, 0, 0), AT)).toMatchObject({ status: 'passed', observed: null, message: 'no device in this wave' });
    // One device reached is enough to judge by.
    expect(successShareGate(undefined, counts(3, 1, 0, 2), AT)).toMatchObject({ status: 'passed', observed: 1, message: '1 of 1 reachable device active (1.00 ≥ 1.00 required), 2 timed out' });
  });
});

describe('metric gates', () => {
  it('judges only the gates that are configured', () => {
    const devices = [device('a', usage(100, 0, 5), usage(100, 50, 50))];
    expect(metricGates(undefined, devices, AT)).toEqual([]);
    expect(metricGates({ minSuccessShare: 1 }, devices, AT)).toEqual([]);
    expect(metricGates({ maxP99Ratio: 2 }, devices, AT).map((g) => g.gate)).toEqual(['p99-latency']);
    expect(metricGates({ maxErrorRateIncrease: 0.1, maxP99Ratio: 2 }, devices, AT).map((g) => g.gate)).toEqual(['error-rate', 'p99-latency']);
  });

  it('error rate: fails on an increase above the allowed one, pooled over the devices, with the numbers', () => {
    const devices = ['a', 'b', 'c', 'd'].map((id) => device(id, usage(100, 0, 5), usage(203, 63, 6)));
    const [g] = metricGates({ maxErrorRateIncrease: 0.05 }, devices, AT);
    expect(g).toMatchObject({
      gate: 'error-rate',
      status: 'failed',
      baseline: 0,
      threshold: 0.05,
      message: 'error rate 0.31 on 4 devices vs 0.00 before (+0.31 > +0.05 allowed), 812 requests',
      at: AT,
    });
    expect(g!.observed).toBeCloseTo(252 / 812, 12);
  });

  it('error rate: an increase exactly at the allowed one passes, however the doubles round', () => {
    // 0.8 − 0.1 is 0.7000000000000001 in doubles.
    const [g] = metricGates({ maxErrorRateIncrease: 0.7 }, [device('a', usage(100, 10, 1), usage(100, 80, 1))], AT);
    expect(g).toMatchObject({ status: 'passed', message: 'error rate 0.80 on 1 device vs 0.10 before (+0.70 ≤ +0.70 allowed), 100 requests' });
    const [better] = metricGates({ maxErrorRateIncrease: 0 }, [device('a', usage(100, 10, 1), usage(100, 2, 1))], AT);
    expect(better).toMatchObject({ status: 'passed', message: 'error rate 0.02 on 1 device vs 0.10 before (−0.08 ≤ +0.00 allowed), 100 requests' });
  });

  it('error rate: compares only the devices that served the new version', () => {
    // b has not served the new version yet: its clean history must not lower the baseline.
    const devices = [device('a', usage(100, 10, 1), usage(100, 10, 1)), device('b', usage(100, 0, 1), usage(0, 0, null))];
    const [g] = metricGates({ maxErrorRateIncrease: 0.01 }, devices, AT);
    expect(g).toMatchObject({ status: 'passed', observed: 0.1, baseline: 0.1 });
    expect(g!.message).toContain('on 1 device vs 0.10 before');
  });

  it('error rate: no-data below minRequests (default 20), judged from there', () => {
    const few = [device('a', usage(100, 0, 1), usage(19, 19, 1))];
    expect(metricGates({ maxErrorRateIncrease: 0.05 }, few, AT)[0]).toMatchObject({
      status: 'no-data',
      message: '19 requests on the new version on 1 device, 20 needed to judge the error rate',
    });
    expect(metricGates({ maxErrorRateIncrease: 0.05, minRequests: 19 }, few, AT)[0]!.status).toBe('failed');
    expect(metricGates({ maxErrorRateIncrease: 0.05 }, [], AT)[0]).toMatchObject({ status: 'no-data', observed: null, baseline: null });
  });

  it('error rate: a first install has no baseline, so the new error rate itself is judged', () => {
    const gates = { maxErrorRateIncrease: 0.05 };
    expect(metricGates(gates, [device('a', usage(0, 0, null), usage(100, 3, 1))], AT)[0]).toMatchObject({
      status: 'passed',
      baseline: null,
      message: 'error rate 0.03 on 1 device vs no requests before (0 assumed) (+0.03 ≤ +0.05 allowed), 100 requests',
    });
    expect(metricGates(gates, [device('a', usage(0, 0, null), usage(100, 10, 1))], AT)[0]!.status).toBe('failed');
  });

  it('p99: ratio of new to previous on the same devices, both weighted by requests on the new version', () => {
    const devices = [device('a', usage(5, 0, 10), usage(100, 0, 30)), device('b', usage(900, 0, 10), usage(300, 0, 12))];
    const [g] = metricGates({ maxP99Ratio: 1.5 }, devices, AT);
    expect(g).toMatchObject({
      gate: 'p99-latency',
      status: 'failed',
      observed: 16.5,
      baseline: 10,
      threshold: 1.5,
      message: 'p99 16.5 ms on 2 devices vs 10 ms before (×1.65 > ×1.50 allowed), 400 requests',
    });
    expect(metricGates({ maxP99Ratio: 2 }, devices, AT)[0]!.status).toBe('passed');
    expect(metricGates({ maxP99Ratio: 1.5 }, [device('a', usage(50, 0, 10), usage(50, 0, 15))], AT)[0]!.status).toBe('passed');
  });

  it('p99: no-data without a previous p99, with a zero one, or below minRequests; never NaN', () => {
    const gates = { maxP99Ratio: 1.5 };
    const firstInstall = metricGates(gates, [device('a', usage(0, 0, null), usage(100, 0, 30))], AT)[0]!;
    expect(firstInstall).toMatchObject({ status: 'no-data', baseline: null, message: 'p99 latency not judged: no device has a p99 of the previous version to compare with' });
    const zero = metricGates(gates, [device('a', usage(100, 0, 0), usage(100, 0, 30))], AT)[0]!;
    expect(zero.status).toBe('no-data');
    const few = metricGates(gates, [device('a', usage(100, 0, 10), usage(10, 0, 30))], AT)[0]!;
    expect(few).toMatchObject({ status: 'no-data', observed: null, message: '10 requests on the new version on 1 device, 20 needed to judge p99 latency' });
    // Enough requests in the wave, but too few on the devices that have a baseline.
    const unbased = metricGates(gates, [device('a', usage(0, 0, null), usage(100, 0, 30)), device('b', usage(10, 0, 10), usage(5, 0, 30))], AT)[0]!;
    expect(unbased).toMatchObject({ status: 'no-data', message: 'p99 latency not judged: 5 requests on 1 device with a previous p99 to compare with, 20 needed' });
    for (const g of [firstInstall, zero, few, unbased]) {
      expect(Number.isNaN(g.observed) || Number.isNaN(g.baseline)).toBe(false);
      expect(g.message).not.toMatch(/NaN|Infinity/);
    }
  });
});

describe('shadow gate', () => {
  const report = (agreement: number, samples = 50): ShadowReport => ({ samples, agreement, maxAbsDiff: 0.012, activeP50Ms: 4, candidateP50Ms: 5.5 });

  it('is only there when minShadowAgreement is set', () => {
    expect(shadowGate(undefined, [report(0.1)], AT)).toBeUndefined();
    expect(shadowGate({ maxP99Ratio: 2 }, [report(0.1)], AT)).toBeUndefined();
  });

  it('judges the lowest agreement among devices that compared requests', () => {
    const g = shadowGate({ minShadowAgreement: 0.95 }, [report(0.99), null, report(0.9, 40), report(0, 0)], AT);
    expect(g).toMatchObject({
      gate: 'shadow-agreement',
      status: 'failed',
      observed: 0.9,
      baseline: null,
      threshold: 0.95,
      message: 'lowest shadow agreement 0.90 over 40 samples (< 0.95 required), max abs diff 0.012, p50 5.5 ms vs 4 ms active; 2 of 4 devices reported',
    });
    expect(shadowGate({ minShadowAgreement: 0.9 }, [report(0.99), report(0.9)], AT)!.status).toBe('passed');
  });

  it('is no-data until a device has compared a request', () => {
    expect(shadowGate({ minShadowAgreement: 0.9 }, [null, report(0, 0)], AT)).toMatchObject({
      status: 'no-data',
      observed: null,
      message: 'no shadow samples yet from 2 devices (0.90 agreement required)',
    });
    expect(shadowGate({ minShadowAgreement: 0.9 }, [], AT)!.status).toBe('no-data');
  });
});

describe('metric inputs from stored telemetry', () => {
  let dir: string;
  let db: Db;
  let records: RecordRepo;
  let seq = 0;
  const T0 = 1_800_000_000_000;
  const MIN = 60_000;
  const ref = (version: string): VersionRef => ({ model: 'm', version, profile: 'fp32', sha256: version.repeat(64).slice(0, 64) });

  const store = (deviceId: string, ts: number, ...models: ModelStats[]) => {
    const message: TelemetryMessage = {
      v: 1,
      seq: ++seq,
      ts,
      system: { cpuPercent: 1, memUsedMb: 1, memTotalMb: 2, temperatureC: null, diskUsedPercent: null, agentRssMb: 1, loadAvg1: 0 },
      models,
    };
    const record: DeviceRecord = { deviceId, kind: 'telemetry', message, payload: JSON.stringify(message) };
    expect(records.insertBatch([record]).outcomes).toEqual(['stored']);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-gates-'));
    db = openDatabase(join(dir, 'hub.db'), pino({ level: 'silent' }), { allowEmpty: true });
    records = createRecordRepo(db, 1000);
    const devices = createDeviceRepo(db);
    for (const id of ['d1', 'd2', 'd3']) devices.insert({ id, name: id, labels: {}, secretSha256: '0'.repeat(64), enrolledAt: AT });
  });
  afterAll(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('telemetryBetween returns a device’s samples by their own time, inclusive, oldest first, newest when limited', () => {
    store('d3', T0 + 3000, stat('1', 3, 0, 1));
    store('d3', T0 + 1000, stat('1', 1, 0, 1)); // a store-and-forward replay arriving late
    store('d3', T0 + 2000, stat('1', 2, 0, 1));
    store('d3', T0 + 9000, stat('1', 9, 0, 1));
    store('d2', T0 + 2500, stat('1', 99, 0, 1));
    expect(records.telemetryBetween('d3', T0 + 1000, T0 + 3000).map((s) => s.ts)).toEqual([T0 + 1000, T0 + 2000, T0 + 3000]);
    expect(records.telemetryBetween('d3', T0 + 1000, T0 + 3000, 2).map((s) => s.models[0]!.requests)).toEqual([2, 3]);
    expect(records.telemetryBetween('d3', T0 + 3001, T0 + 8999)).toEqual([]);
    expect(records.telemetryBetween('nobody', 0, T0 * 2)).toEqual([]);
  });

  it('collects usage of the previous version before the switch and of the new one since, per switched device', () => {
    const assignedAt = T0 + 10 * MIN;
    const switchedAt = assignedAt + 2 * MIN + 30_000;
    // d1: v1 serves with 1% errors; v2 appears after the switch with 20% errors and a slower p99.
    store('d1', assignedAt - 35 * MIN, stat('1', 1000, 50, 99)); // before the lookback window: not counted
    store('d1', assignedAt - 10 * MIN, stat('1', 2000, 60, 10));
    store('d1', assignedAt, stat('1', 2100, 61, 10));
    store('d1', switchedAt - 30_000, stat('1', 2200, 62, 10));
    store('d1', switchedAt + 30_000, stat('1', 2210, 62, 10), stat('2', 50, 10, 40)); // v1's last report
    store('d1', switchedAt + 90_000, stat('2', 150, 30, 20));
    store('d1', switchedAt + 20 * MIN, stat('2', 170, 30, 30)); // after `now`: not counted
    const rows = [
      { deviceId: 'd1', from: ref('1'), to: ref('2'), assignedAt, switchedAt },
      { deviceId: 'd2', from: ref('1'), to: ref('2'), assignedAt, switchedAt: null },
      { deviceId: 'd3', from: null, to: ref('2'), assignedAt, switchedAt },
    ];
    const used = collectDeviceUsage(records, rows, switchedAt + 10 * MIN);
    expect(used.map((u) => u.deviceId)).toEqual(['d1', 'd3']);
    expect(used[0]).toEqual({ deviceId: 'd1', before: usage(200, 2, 10), after: usage(150, 30, (50 * 40 + 100 * 20) / 150) });
    expect(used[1]).toEqual({ deviceId: 'd3', before: usage(0, 0, null), after: usage(0, 0, null) });

    const [errorRate] = metricGates({ maxErrorRateIncrease: 0.05, minRequests: 100 }, used, AT);
    expect(errorRate).toMatchObject({ status: 'failed', message: 'error rate 0.20 on 1 device vs 0.01 before (+0.19 > +0.05 allowed), 150 requests' });
  });

  it('starts the new version’s counters at the last sample at or before the switch', () => {
    const samples = [sample(1), sample(5), sample(9), sample(12)];
    expect(fromLastSampleAtOrBefore(samples, 9).map((s) => s.ts)).toEqual([9, 12]);
    expect(fromLastSampleAtOrBefore(samples, 10).map((s) => s.ts)).toEqual([9, 12]);
    expect(fromLastSampleAtOrBefore(samples, 0).map((s) => s.ts)).toEqual([1, 5, 9, 12]);
    expect(fromLastSampleAtOrBefore([], 0)).toEqual([]);
  });
});
