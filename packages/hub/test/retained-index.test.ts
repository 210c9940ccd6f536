import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexRetained, type RetainedPersistence } from '../src/broker/retained-index.js';

describe('retained index on a real aedes broker', () => {
  let broker: Aedes;
  let url: string;
  const server = createServer();
  beforeAll(async () => {
    broker = await Aedes.createBroker();
    indexRetained((broker as unknown as { persistence: RetainedPersistence }).persistence);
    server.on('connection', (s) => broker.handle(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const retain = (topic: string, payload: string) =>
    new Promise<void>((resolve, reject) => broker.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, dup: false }, (err) => (err ? reject(err) : resolve())));

  async function retainedFor(topics: string[], expected: number): Promise<Map<string, string>> {
    const c = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
    const got = new Map<string, string>();
    const done = new Promise<void>((resolve) => {
      c.on('message', (topic, payload, packet) => {
        if (packet.retain) got.set(topic, payload.toString());
        if (got.size >= expected) resolve();
      });
    });
    await c.subscribeAsync(topics, { qos: 1 });
    if (expected > 0) await done;
    await c.endAsync();
    return got;
  }

  it('answers exact topics from the index (latest value, cleared by an empty payload) and wildcards as before', async () => {
    await retain('ef/v1/dev/a/desired', 'a1');
    await retain('ef/v1/dev/a/desired', 'a2');
    await retain('ef/v1/dev/b/desired', 'b1');
    await retain('ef/v1/dev/c/desired', 'c1');
    await retain('ef/v1/dev/c/desired', '');
    expect(await retainedFor(['ef/v1/dev/a/desired', 'ef/v1/dev/b/desired'], 2)).toEqual(new Map([['ef/v1/dev/a/desired', 'a2'], ['ef/v1/dev/b/desired', 'b1']]));
    expect(await retainedFor(['ef/v1/dev/+/desired'], 2)).toEqual(new Map([['ef/v1/dev/a/desired', 'a2'], ['ef/v1/dev/b/desired', 'b1']]));
    // The cleared topic delivers nothing: after a SUBACK round trip on a live topic, it still has not come.
    expect((await retainedFor(['ef/v1/dev/c/desired', 'ef/v1/dev/b/desired'], 1)).has('ef/v1/dev/c/desired')).toBe(false);
  });
});
