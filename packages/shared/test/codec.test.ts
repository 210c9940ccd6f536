import { describe, expect, it } from 'vitest';
import { decodeMessage, DEVICE_PUBLISH_KINDS, deviceTopic, encodeMessage, MAX_TIMESTAMP_MS, MESSAGE_SIZE_LIMITS, parseDeviceTopic, type TopicKind } from '@edgefleet/shared';

describe('topics', () => {
  it('builds and parses device topics', () => {
    expect(deviceTopic('dev-1', 'cmd/result')).toBe('ef/v1/dev/dev-1/cmd/result');
    expect(parseDeviceTopic('ef/v1/dev/dev-1/cmd/result')).toEqual({ deviceId: 'dev-1', kind: 'cmd/result' });
    expect(parseDeviceTopic('ef/v1/dev/dev-1/unknown')).toBeNull();
    expect(parseDeviceTopic('ef/v1/dev/+/status')).toBeNull();
    expect(() => deviceTopic('a/b', 'status')).toThrow(/invalid device id/);
  });
});

describe('codec', () => {
  it('round-trips a valid message', () => {
    const bytes = encodeMessage('status', { state: 'online', ts: 1 });
    expect(decodeMessage('status', bytes)).toEqual({ ok: true, value: { state: 'online', ts: 1 } });
  });

  it('reports garbage and schema violations without throwing', () => {
    const garbage = decodeMessage('telemetry', Buffer.from([0xff, 0x00, 0x7b]));
    expect(garbage).toMatchObject({ ok: false });
    expect(!garbage.ok && garbage.error).toMatch(/not JSON/);
    const wrong = decodeMessage('status', Buffer.from('{"state":"sleepy"}'));
    expect(!wrong.ok && wrong.error).toMatch(/does not match its schema/);
  });

  it('refuses to encode an invalid message', () => {
    expect(() => encodeMessage('events', { v: 1 } as never)).toThrow(/refusing to send invalid events/);
  });
});

describe('codec bounds', () => {
  const telemetry = {
    v: 1 as const,
    epoch: 'Zx8_k2-abcdEFGH',
    seq: 1,
    ts: Date.now(),
    system: { cpuPercent: 12.5, memUsedMb: 812.4, memTotalMb: 3906.2, temperatureC: 48.3, diskUsedPercent: 61.2, agentRssMb: 92.1, loadAvg1: 0.7 },
    models: [{ name: 'digits', version: '1.0.0', requests: 10, errors: 0, latencyMs: { p50: 0.4, p90: 0.9, p99: 1.4 } }],
  };
  const reported = {
    capabilities: {
      arch: 'x64',
      platform: 'linux',
      cores: 2,
      memoryMb: 3906,
      cpuModel: 'Intel(R) Xeon(R) Platinum',
      cpuFlags: Array.from({ length: 150 }, (_, i) => `flag${i}`),
      executionProviders: ['cpu'],
      accelerators: [],
      agentVersion: '0.1.0',
    },
    models: [{ name: 'digits', version: '1.0.0', sha256: 'a'.repeat(64), profile: 'int8-dynamic', active: true }],
    desiredVersion: 3,
    ts: Date.now(),
  };

  it('accepts what an agent sends', () => {
    expect(decodeMessage('telemetry', encodeMessage('telemetry', telemetry))).toMatchObject({ ok: true });
    expect(decodeMessage('reported', encodeMessage('reported', reported))).toMatchObject({ ok: true });
    expect(decodeMessage('status', encodeMessage('status', { state: 'offline' }))).toMatchObject({ ok: true });
  });

  it('refuses a payload over its kind limit before parsing it, naming both sizes', () => {
    for (const kind of DEVICE_PUBLISH_KINDS) {
      const limit = MESSAGE_SIZE_LIMITS[kind];
      const r = decodeMessage(kind, Buffer.from(`"${'x'.repeat(limit)}"`));
      expect(!r.ok && r.error, kind).toBe(`${kind} payload is ${limit + 2} bytes: at most ${limit} expected`);
    }
    expect(() => encodeMessage('events', { v: 1, seq: 1, ts: 1, type: 'error', code: 'X', message: 'x'.repeat(4096) })).not.toThrow();
  });

  it('refuses unknown fields on every device message object', () => {
    const cases: Array<[TopicKind, unknown]> = [
      ['telemetry', { ...telemetry, extra: 1 }],
      ['telemetry', { ...telemetry, system: { ...telemetry.system, extra: 1 } }],
      ['telemetry', { ...telemetry, models: [{ ...telemetry.models[0], extra: 1 }] }],
      ['telemetry', { ...telemetry, models: [{ ...telemetry.models[0], latencyMs: { p50: 1, p90: 1, p99: 1, p999: 1 } }] }],
      ['reported', { ...reported, extra: 1 }],
      ['reported', { ...reported, capabilities: { ...reported.capabilities, extra: 1 } }],
      ['reported', { ...reported, models: [{ ...reported.models[0], extra: 1 }] }],
      ['status', { state: 'online', extra: 1 }],
      ['events', { v: 1, seq: 1, ts: 1, type: 'error', code: 'X', message: 'm', extra: 1 }],
      ['drift', { v: 1, seq: 1, ts: 1, model: 'm', version: '1', summary: {}, extra: 1 }],
      ['cmd/result', { v: 1, seq: 1, ts: 1, id: 'c', ok: true, extra: 1 }],
    ];
    for (const [kind, value] of cases) expect(decodeMessage(kind, Buffer.from(JSON.stringify(value))).ok, JSON.stringify(value)).toBe(false);
  });

  it('refuses numbers no device reads: 1e308, percentages over 100, seq past 2^53 − 1, ts past year 9999', () => {
    const bad = [
      { ...telemetry, system: { ...telemetry.system, memUsedMb: 1e308 } },
      { ...telemetry, system: { ...telemetry.system, diskUsedPercent: 101 } },
      { ...telemetry, system: { ...telemetry.system, temperatureC: -1e6 } },
      { ...telemetry, models: [{ ...telemetry.models[0], requests: 1e300 }] },
      { ...telemetry, seq: 2 ** 53 },
      { ...telemetry, ts: 1e16 },
    ];
    for (const value of bad) expect(decodeMessage('telemetry', Buffer.from(JSON.stringify(value))).ok).toBe(false);
    expect(decodeMessage('telemetry', Buffer.from(JSON.stringify({ ...telemetry, seq: Number.MAX_SAFE_INTEGER, ts: MAX_TIMESTAMP_MS }))).ok).toBe(true);
    expect(decodeMessage('reported', Buffer.from(JSON.stringify({ ...reported, models: Array.from({ length: 257 }, () => reported.models[0]) }))).ok).toBe(false);
  });

  it('never throws on deep nesting: refused on decode and on encode', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    for (const depth of [33, 10_000, 200_000]) {
      const payload = Buffer.from(`{"v":1,"seq":1,"ts":1,"id":"c","ok":true,"result":${deep(depth)}}`);
      const r = decodeMessage('cmd/result', payload);
      expect(r.ok).toBe(false);
      if (payload.length <= MESSAGE_SIZE_LIMITS['cmd/result']) expect(!r.ok && r.error).toMatch(/deeper than 32 levels/);
    }
    expect(decodeMessage('drift', Buffer.from(`{"v":1,"seq":1,"ts":1,"model":"m","version":"1","summary":{"x":${deep(5000)}}}`)).ok).toBe(false);
    expect(decodeMessage('cmd/result', Buffer.from(`{"v":1,"seq":1,"ts":1,"id":"c","ok":true,"result":${deep(30)}}`)).ok).toBe(true);
    const value = JSON.parse(deep(10_000)) as unknown;
    expect(() => encodeMessage('cmd/result', { v: 1, seq: 1, ts: 1, id: 'c', ok: true, result: value })).toThrow(/deeper than 32 levels/);
  });
});
