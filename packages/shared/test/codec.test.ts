import { describe, expect, it } from 'vitest';
import { decodeMessage, deviceTopic, encodeMessage, parseDeviceTopic } from '@edgefleet/shared';

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
