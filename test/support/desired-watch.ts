import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { deviceTopic, type DesiredMessage } from '@edgefleet/shared';

export interface DesiredWatch {
  deviceId: string;
  /** Every desired document delivered, retained copies included (they come again after each broker restart). */
  readonly seen: DesiredMessage[];
  /** Distinct document versions that carry an assignment of `rolloutId`: a device assigned once has exactly one. */
  versionsOf(rolloutId: string): number[];
  close(): Promise<void>;
}

/**
 * Listens to a device's retained `desired` topic as an outside MQTT client with the device's own
 * credentials (from its identity file): the broker ACL keys on the username, so this neither needs
 * hub access nor kicks the agent off. It reconnects by itself across hub restarts.
 */
export async function watchDesired(stateDir: string): Promise<DesiredWatch> {
  const identity = JSON.parse(await readFile(join(stateDir, 'identity.json'), 'utf8')) as { deviceId: string; secret: string; brokerUrl: string };
  const seen: DesiredMessage[] = [];
  const client = mqtt.connect(identity.brokerUrl, {
    username: identity.deviceId,
    password: identity.secret,
    clientId: `desired-watch-${identity.deviceId}`,
    reconnectPeriod: 200,
    connectTimeout: 5_000,
  });
  client.on('error', () => {
    // Refused while the hub is down: the client retries on its own.
  });
  client.on('message', (_topic, payload) => {
    try {
      seen.push(JSON.parse(payload.toString()) as DesiredMessage);
    } catch {
      // Not JSON: not a desired document, nothing to count.
    }
  });
  const topic = deviceTopic(identity.deviceId, 'desired');
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => client.subscribe(topic, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
  });
  return {
    deviceId: identity.deviceId,
    seen,
    versionsOf(rolloutId) {
      const versions = seen.filter((d) => d.models.some((m) => m.rolloutId === rolloutId)).map((d) => d.version);
      return [...new Set(versions)].sort((a, b) => a - b);
    },
    close: () => client.endAsync(true),
  };
}
