import { PassThrough, Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Device } from '@edgefleet/shared';
import { eventStreamRoutes } from '../src/dashboard/event-stream-routes.js';
import { createSseFanout } from '../src/dashboard/sse-fanout.js';
import { createHubEventBus } from '../src/events/hub-event-bus.js';
import { createHttpServer } from '../src/http/http-server.js';
import { eventually } from './hub-harness.js';

function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

/** A stream that keeps what is written and reports how much it has not yet passed on. */
function reader() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('hub event bus', () => {
  it('runs every listener even when one throws, and logs the failure', () => {
    const { log, lines } = capturedLog();
    const bus = createHubEventBus(log);
    const got: string[] = [];
    bus.subscribe(() => got.push('first'));
    bus.subscribe(() => {
      throw new Error('listener bug');
    });
    bus.subscribe(() => got.push('third'));
    expect(() => bus.emit('device', { deviceId: 'd1', change: 'online' })).not.toThrow();
    expect(got).toEqual(['first', 'third']);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, event: 'device', deviceId: 'd1', err: expect.objectContaining({ message: 'listener bug' }) }));
  });

  it('delivers to listeners subscribed at emit time and stops after unsubscribe', () => {
    const bus = createHubEventBus(capturedLog().log);
    const got: string[] = [];
    const unsubscribe = bus.subscribe((_name, payload) => {
      got.push((payload as { deviceId: string }).deviceId);
      unsubscribe();
    });
    bus.emit('device', { deviceId: 'a', change: 'online' });
    bus.emit('device', { deviceId: 'b', change: 'online' });
    expect(got).toEqual(['a']);
  });
});

describe('SSE fan-out', () => {
  it('a stream whose write fails is dropped; the others still get every frame', async () => {
    const { log, lines } = capturedLog();
    const fanout = createSseFanout(log);
    const healthy = reader();
    const ended = new PassThrough();
    ended.resume();
    fanout.add(healthy.stream);
    fanout.add(ended);
    // A client that went away mid-write: writing to an ended stream fails with ERR_STREAM_WRITE_AFTER_END.
    ended.end();
    fanout.broadcast('event: a\n\n');
    await new Promise((resolve) => ended.once('close', resolve));
    fanout.broadcast('event: b\n\n');
    expect(healthy.text()).toBe('event: a\n\nevent: b\n\n');
    expect(fanout.size).toBe(1);
    expect(lines.some((l) => l.msg === 'dashboard event stream dropped')).toBe(true);
  });

  it('drops a client that stops reading once it is too far behind, and only that client', () => {
    const { log } = capturedLog();
    const fanout = createSseFanout(log, 1000);
    const healthy = reader();
    const stalled = new PassThrough({ highWaterMark: 16 });
    fanout.add(healthy.stream);
    fanout.add(stalled);
    for (let i = 0; i < 20; i++) fanout.broadcast(`data: ${'x'.repeat(100)}\n\n`);
    expect(stalled.destroyed).toBe(true);
    expect(fanout.size).toBe(1);
    expect(healthy.text().length).toBe(20 * 108);
  });

  it('closeAll ends every stream', () => {
    const fanout = createSseFanout(capturedLog().log);
    const a = reader();
    fanout.add(a.stream);
    fanout.closeAll();
    expect(a.stream.writableEnded).toBe(true);
    expect(fanout.size).toBe(0);
  });
});

describe('dashboard event stream', () => {
  it('skips an event whose lookup or serialisation fails and keeps the stream for the next one', async () => {
    const { log, lines } = capturedLog();
    const bus = createHubEventBus(log);
    const app = await createHttpServer(log);
    const device = (id: string) => ({ id, name: id }) as unknown as Device;
    await app.register(eventStreamRoutes, {
      bus,
      requireOperator: async () => undefined,
      stillAuthenticated: () => true,
      deviceById: (id) => {
        if (id === 'unreadable') throw new RangeError('Invalid time value');
        return device(id);
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const abort = new AbortController();
    try {
      const res = await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1/events`, { signal: abort.signal });
      const chunks = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const pump = (async () => {
        for (;;) {
          const { value, done } = await chunks.read().catch(() => ({ value: undefined, done: true as const }));
          if (done) return;
          text += value;
        }
      })();
      await eventually(() => text.includes(': connected'), 'the stream to open');
      bus.emit('device', { deviceId: 'unreadable', change: 'online' });
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      bus.emit('rollout', { rolloutId: 'r1', state: 'x', wave: null, counts: cyclic as Record<string, number> });
      bus.emit('device', { deviceId: 'fine', change: 'online' });
      await eventually(() => text.includes('"id":"fine"'), 'the next event on the same stream');
      expect(text).not.toContain('unreadable');
      expect(text).not.toContain('event: rollout');
      expect(lines.filter((l) => l.msg === 'event not sent to dashboards').map((l) => l.event)).toEqual(['device', 'rollout']);
      abort.abort();
      await pump;
    } finally {
      abort.abort();
      await app.close();
    }
  });
});
