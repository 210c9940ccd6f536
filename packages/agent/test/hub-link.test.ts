import { afterEach, describe, expect, it } from 'vitest';
import { connect, type MqttClient } from 'mqtt';
import { deviceTopic, type DesiredMessage, type ReportedMessage, type TelemetryMessage } from '@edgefleet/shared';
import { createHubLink, type HubLink } from '../src/hub-link/hub-link.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { eventually, silentLogger } from './support/temp.js';

const deviceId = 'dev-link1';
const creds = { username: deviceId, password: 'pw-1' };
const reported: ReportedMessage = {
  capabilities: { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 1024, cpuModel: 'test', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' },
  models: [],
  desiredVersion: 0,
  ts: 1,
};
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

  async function setup(): Promise<{ broker: TestBroker; link: HubLink; seen: Seen[]; desired: DesiredMessage[]; obs: MqttClient; seqs: number[] }> {
    const broker = await startBroker(creds);
    cleanup.push(() => broker.close());
    const { client: obs, seen } = await observer(broker.url);
    cleanup.push(() => obs.endAsync(true));
    const desired: DesiredMessage[] = [];
    let seq = 100;
    const seqs: number[] = [];
    const link = createHubLink({
      brokerUrl: broker.url,
      deviceId,
      secret: creds.password,
      logger: silentLogger,
      nextSeq: () => {
        seqs.push(++seq);
        return seq;
      },
      reported: () => reported,
      onDesired: (d) => desired.push(d),
      reconnect: { minMs: 20, maxMs: 200 },
    });
    link.start();
    cleanup.push(() => link.stop());
    await link.connected();
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'online'), 'status online');
    return { broker, link, seen, desired, obs, seqs };
  }

  it('announces itself, receives desired, publishes records with seq, and says offline on stop', async () => {
    const { link, seen, desired, obs } = await setup();
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
    expect(telemetry.body as unknown as TelemetryMessage).toMatchObject({ v: 1, seq: 101, system });

    await link.stop();
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'offline'), 'status offline');
  });

  it('reconnects after the connection drops (the Last Will says offline) and resends what waited', async () => {
    const { link, broker, seen, seqs } = await setup();
    broker.dropClient(deviceId);
    await eventually(() => seen.find((s) => s.topic.endsWith('/status') && s.body.state === 'offline'), 'last will');
    for (let i = 0; i < 5; i++) link.publishRecord('telemetry', { system, models: [] });
    await eventually(() => seen.filter((s) => s.topic.endsWith('/status') && s.body.state === 'online').length >= 2, 'back online');
    await eventually(() => seen.filter((s) => s.topic.endsWith('/telemetry')).length >= 5, 'queued records delivered');
    const delivered = [...new Set(seen.filter((s) => s.topic.endsWith('/telemetry')).map((s) => s.body.seq))];
    expect(delivered).toEqual(seqs);
    await eventually(() => link.stats().queued === 0, 'all records acknowledged');
    expect(link.stats()).toMatchObject({ connected: true, dropped: 0 });
  });

  it('keeps trying while the broker is down, connects when it comes up, and stops cleanly while disconnected', async () => {
    const probe = await startBroker(creds);
    const port = probe.port;
    await probe.close();
    const desired: DesiredMessage[] = [];
    const link = createHubLink({
      brokerUrl: `mqtt://127.0.0.1:${port}`,
      deviceId,
      secret: creds.password,
      logger: silentLogger,
      nextSeq: (() => { let n = 0; return () => ++n; })(),
      reported: () => reported,
      onDesired: (d) => desired.push(d),
      reconnect: { minMs: 20, maxMs: 100 },
    });
    link.start();
    cleanup.push(() => link.stop());
    link.publishRecord('telemetry', { system, models: [] });
    expect(link.stats()).toMatchObject({ connected: false, queued: 1 });

    const broker = await startBroker(creds, port);
    cleanup.push(() => broker.close());
    await link.connected();
    await eventually(() => link.stats().queued === 0, 'queued record sent');

    // Broker gone again: stop() must not wait for it.
    await broker.close();
    await eventually(() => !link.stats().connected, 'disconnected');
    await link.stop();
    await link.stop();
  });
});
