import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type MqttClient } from 'mqtt';
import { deviceTopic, type DesiredMessage, type TelemetryMessage } from '@edgefleet/shared';
import type { HubLink, HubLinkOptions } from '../src/hub-link/hub-link.js';
import { createAgentStore, type AgentStore } from '../src/store/agent-store.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { createTestHubLink } from './support/hub-link-rig.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const deviceId = 'dev-link1';
const creds = { username: deviceId, password: 'pw-1' };
const system = { cpuPercent: 1, memUsedMb: 1, memTotalMb: 2, temperatureC: null, diskUsedPercent: 1, agentRssMb: 1, loadAvg1: 0 };

interface Seen {
  topic: string;
  retain: boolean;
  body: Record<string, unknown>;
}

async function observer(url: string): Promise<{ client: MqttClient; seen: Seen[] }> {
  // The test broker lets anyone with the device's credentials in; the observer uses its own client id.
  const client = connect(url, { protocolVersion: 4, clientId: 'observer', username: creds.username, password: creds.password, reconnectPeriod: 100 });
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, retain: packet.retain, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
  await client.subscribeAsync(`ef/v1/dev/${deviceId}/#`, { qos: 1 });
  return { client, seen };
}

describe('hub link against a real aedes broker', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /** A real agent store (SQLite in a temp dir) whose outbox the link sends from. */
  async function openStore(dirPath?: string): Promise<{ store: AgentStore; dir: string }> {
    let dir = dirPath;
    if (!dir) {
      const made = await tempDir('link');
      cleanup.push(() => made.remove());
      dir = made.path;
    }
    const store = createAgentStore({ path: join(dir, 'agent.db'), logger: silentLogger });
    store.start();
    cleanup.push(async () => store.stop());
    return { store, dir };
  }

  function link(store: AgentStore, brokerUrl: string, extra: Partial<HubLinkOptions> = {}): HubLink {
    const l = createTestHubLink({ brokerUrl, deviceId, secret: creds.password, outbox: store.outbox() }, { reconnect: { minMs: 20, maxMs: 100 }, ...extra });
    cleanup.push(() => l.stop());
    return l;
  }

  const telemetrySeqs = (seen: Seen[]) => seen.filter((s) => s.topic.endsWith('/telemetry')).map((s) => Number(s.body.seq));

  async function setup(): Promise<{ broker: TestBroker; link: HubLink; seen: Seen[]; desired: DesiredMessage[]; obs: MqttClient; store: AgentStore }> {
    const broker = await startBroker(creds);
    cleanup.push(() => broker.close());
    const { client: obs, seen } = await observer(broker.url);
    cleanup.push(() => obs.endAsync(true));
    const desired: DesiredMessage[] = [];
    const { store } = await openStore();
    const l = link(store, broker.url, { onDesired: (d) => desired.push(d), reconnect: { minMs: 20, maxMs: 200 } });
    l.start();
    await l.connected();
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'online'), 'status online');
    return { broker, link: l, seen, desired, obs, store };
  }

  it('announces itself, receives desired, publishes records with epoch and seq, and says offline on stop', async () => {
    const { link, seen, desired, obs, store } = await setup();
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'online'), 'status online');
    await eventually(() => seen.find((s) => s.topic.endsWith('/reported')), 'reported');

    await obs.publishAsync(deviceTopic(deviceId, 'desired'), '{"version": "nope"}', { qos: 1 });
    const doc: DesiredMessage = { version: 3, models: [] };
    await obs.publishAsync(deviceTopic(deviceId, 'desired'), JSON.stringify(doc), { qos: 1, retain: true });
    await eventually(() => desired.length === 1, 'desired delivered');
    expect(desired[0]).toEqual(doc);
    expect(link.stats().invalidMessages).toBe(1);

    link.publishRecord('telemetry', { system, models: [] });
    const telemetry = await eventually(() => seen.find((s) => s.topic.endsWith('/telemetry')), 'telemetry');
    expect(telemetry.body as unknown as TelemetryMessage).toMatchObject({ v: 1, epoch: store.epoch(), seq: 1, system });
    expect(store.epoch()).toMatch(/^[A-Za-z0-9_-]{8,64}$/);

    await link.stop();
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'offline'), 'status offline');
  });

  it('reconnects after the connection drops (the Last Will says offline) and resends what waited', async () => {
    const { link, broker, seen } = await setup();
    broker.dropClient(deviceId);
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'offline'), 'last will');
    for (let i = 0; i < 5; i++) link.publishRecord('telemetry', { system, models: [] });
    await eventually(() => seen.filter((s) => s.topic.endsWith('/status') && s.body.state === 'online').length >= 2, 'back online');
    await eventually(() => seen.filter((s) => s.topic.endsWith('/telemetry')).length >= 5, 'queued records delivered');
    expect([...new Set(telemetrySeqs(seen))]).toEqual([1, 2, 3, 4, 5]);
    await eventually(() => link.stats().queued === 0, 'all records acknowledged');
    expect(link.stats()).toMatchObject({ connected: true, dropped: 0 });
  });

  it('keeps trying while the broker is down, connects when it comes up, and stops cleanly while disconnected', async () => {
    const probe = await startBroker(creds);
    const port = probe.port;
    await probe.close();
    const { store } = await openStore();
    const l = link(store, `mqtt://127.0.0.1:${port}`);
    l.start();
    l.publishRecord('telemetry', { system, models: [] });
    expect(l.stats()).toMatchObject({ connected: false, queued: 1 });

    const broker = await startBroker(creds, port);
    cleanup.push(() => broker.close());
    await l.connected();
    await eventually(() => l.stats().queued === 0, 'queued record sent');

    // Broker gone again: stop() must not wait for it.
    await broker.close();
    await eventually(() => !l.stats().connected, 'disconnected');
    await l.stop();
    await l.stop();
  });

  it('keeps records on disk across a restart while the hub is unreachable, then sends each once, oldest first, without dropping any', async () => {
    const probe = await startBroker(creds);
    const port = probe.port;
    await probe.close();
    const brokerUrl = `mqtt://127.0.0.1:${port}`;
    const first = await openStore();
    const before = link(first.store, brokerUrl);
    before.start();
    for (let i = 0; i < 300; i++) before.publishRecord('telemetry', { system, models: [] });
    expect(before.stats()).toMatchObject({ connected: false, queued: 300, dropped: 0 });
    await before.stop();
    const epoch = first.store.epoch();
    first.store.stop();

    const { store } = await openStore(first.dir);
    expect(store.epoch()).toBe(epoch);
    expect(store.outbox().stats()).toMatchObject({ pending: 300 });
    const broker = await startBroker(creds, port);
    cleanup.push(() => broker.close());
    const { client: obs, seen } = await observer(broker.url);
    cleanup.push(() => obs.endAsync(true));
    const after = link(store, brokerUrl, { drain: { maxInFlight: 16, perSecond: 2000 } });
    after.start();
    await after.connected();
    // New records made while the backlog drains join behind it; none of the old ones is evicted for them.
    for (let i = 0; i < 20; i++) after.publishRecord('telemetry', { system, models: [] });
    await eventually(() => telemetrySeqs(seen).length >= 320, 'backlog and new records delivered');
    await eventually(() => after.stats().queued === 0, 'every record acknowledged and deleted');
    const seqs = telemetrySeqs(seen);
    expect(seqs).toEqual(Array.from({ length: 320 }, (_, i) => i + 1));
    expect(new Set(seen.filter((s) => s.topic.endsWith('/telemetry')).map((s) => s.body.epoch))).toEqual(new Set([epoch]));
    expect(after.stats()).toMatchObject({ dropped: 0, refused: 0 });
  });

  it('drains a backlog at its configured rate: a burst of maxInFlight, then only as time allows', async () => {
    const probe = await startBroker(creds);
    const port = probe.port;
    await probe.close();
    const { store } = await openStore();
    // The link's clock is ours: it does not move unless the test moves it.
    let clock = 1_000_000;
    const l = link(store, `mqtt://127.0.0.1:${port}`, { drain: { maxInFlight: 5, perSecond: 10 }, now: () => clock });
    l.start();
    for (let i = 0; i < 30; i++) l.publishRecord('telemetry', { system, models: [] });

    const broker = await startBroker(creds, port);
    cleanup.push(() => broker.close());
    const { client: obs, seen } = await observer(broker.url);
    cleanup.push(() => obs.endAsync(true));
    await l.connected();
    await eventually(() => l.stats().queued === 25 && l.stats().inFlight === 0, 'the first burst acknowledged');
    await eventually(() => telemetrySeqs(seen).length === 5, 'the burst observed');
    expect(telemetrySeqs(seen)).toEqual([1, 2, 3, 4, 5]);

    clock += 300; // 3 records' worth at 10/s
    await eventually(() => l.stats().queued === 22 && l.stats().inFlight === 0, 'three more sent');
    await eventually(() => telemetrySeqs(seen).length === 8, 'three more observed');
    expect(telemetrySeqs(seen)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    clock += 60_000; // a long pause refills only up to maxInFlight at once; the rest follows as tokens come
    await eventually(() => l.stats().queued === 17 && l.stats().inFlight === 0, 'one more burst');
    await eventually(() => telemetrySeqs(seen).length === 13, 'the second burst observed');
    expect(l.stats().queued).toBe(17);
  });
});
