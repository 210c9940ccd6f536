import { Writable } from 'node:stream';
import type { MessageOf } from '@edgefleet/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createRecordStreams } from '../src/broker/record-streams.js';

const event: MessageOf<'events'> = { v: 1, seq: 1, ts: 1, type: 'error', code: 'X', message: 'm' };

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    }),
  );
  return { log, lines };
}

describe('record streams', () => {
  it('has one stream per kind a device publishes, and none for the hub-to-agent kinds', () => {
    const { streams } = createRecordStreams(capture().log);
    expect(Object.keys(streams).sort()).toEqual(['cmd/result', 'drift', 'events', 'reported', 'status', 'telemetry']);
  });

  it('delivers to the listeners of its kind only, until they unsubscribe', () => {
    const { streams, publish } = createRecordStreams(capture().log);
    const heard: string[] = [];
    const off = streams.events.subscribe((deviceId, e) => heard.push(`${deviceId}:${e.type}`));
    streams['cmd/result'].subscribe(() => heard.push('cmd/result'));
    publish('events', 'd1', event);
    off();
    publish('events', 'd2', event);
    expect(heard).toEqual(['d1:error']);
  });

  it('a failing listener costs only its own delivery: the others still hear, the failure is logged', () => {
    const { log, lines } = capture();
    const { streams, publish } = createRecordStreams(log);
    const heard: string[] = [];
    streams.events.subscribe(() => {
      throw new Error('listener broke');
    });
    streams.events.subscribe((deviceId) => heard.push(deviceId));
    publish('events', 'd1', event);
    publish('events', 'd2', event);
    expect(heard).toEqual(['d1', 'd2']);
    expect(lines.filter((l) => l.kind === 'events' && (l.err as { message?: string } | undefined)?.message === 'listener broke')).toHaveLength(2);
  });
});
