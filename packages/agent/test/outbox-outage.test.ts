import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from 'mqtt';
import { generateSigningKeyPair } from '@edgefleet/shared';
import { killAll, startProcess } from '../../../test/support/processes.js';
import { writeIdentity } from '../src/store/identity-file.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { eventually, tempDir } from './support/temp.js';

const AGENT_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const WRITER = fileURLToPath(new URL('./support/record-writer.mjs', import.meta.url));
const deviceId = 'dev-outage1';
const creds = { username: deviceId, password: 'outage-secret' };

/** (epoch, seq) of every record stored in agent.db and not yet acknowledged. */
function storedRecords(stateDir: string): string[] {
  const db = new Database(join(stateDir, 'agent.db'), { readonly: true });
  try {
    return (db.prepare('SELECT epoch, seq FROM outbox ORDER BY seq').all() as Array<{ epoch: string; seq: number }>).map((r) => `${r.epoch}/${r.seq}`);
  } finally {
    db.close();
  }
}

describe('store-and-forward through a hub outage with kill -9', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    await killAll();
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('delivers every record that was written, exactly once, after kills in the middle of the outage', { timeout: 180_000 }, async () => {
    const dir = await tempDir('outage');
    cleanup.push(() => dir.remove());
    const probe = await startBroker(creds);
    const port = probe.port;
    await probe.close();
    const brokerUrl = `mqtt://127.0.0.1:${port}`;
    await writeIdentity(dir.path, { deviceId, secret: creds.password, hubPublicKey: generateSigningKeyPair().publicKeyPem, brokerUrl, apiUrl: 'http://127.0.0.1:9' });

    // Hours of 1 s telemetry, compressed: records stored as fast as the disk commits them, then kill -9.
    const writer = startProcess('record-writer', [WRITER, dir.path, brokerUrl, deviceId, creds.password], {});
    await writer.waitForLine((l) => Number(l.count) >= 2000, 120_000, '2,000 records stored');
    await writer.stop('SIGKILL');
    const afterWriter = storedRecords(dir.path).length;
    expect(afterWriter).toBeGreaterThanOrEqual(2000);

    // The real agent carries on from the same database, still without a hub, and is killed too.
    const env = { EDGEFLEET_TELEMETRY_INTERVAL_MS: '100', EDGEFLEET_OUTBOX_DRAIN_PER_SECOND: '5000' };
    const args = [AGENT_MAIN, 'run', '--state-dir', dir.path, '--socket', join(dir.path, 'agent.sock')];
    const first = startProcess('agent', args, env);
    await first.waitForMsg('agent ready');
    await eventually(() => storedRecords(dir.path).length >= afterWriter + 5, 'agent telemetry stored during the outage', 30_000);
    await first.stop('SIGKILL');
    const written = storedRecords(dir.path);
    const epochs = new Set(written.map((k) => k.split('/')[0]));
    expect(epochs.size).toBe(1);

    // The hub comes back; a restarted agent sends the backlog.
    const broker: TestBroker = await startBroker(creds, port);
    cleanup.push(() => broker.close());
    const observer = connect(broker.url, { protocolVersion: 4, clientId: 'observer', ...creds, reconnectPeriod: 100 });
    cleanup.push(() => observer.endAsync(true));
    const arrivals = new Map<string, number>();
    observer.on('message', (topic, payload) => {
      if (!topic.endsWith('/telemetry')) return;
      const body = JSON.parse(payload.toString()) as { epoch: string; seq: number };
      const key = `${body.epoch}/${body.seq}`;
      arrivals.set(key, (arrivals.get(key) ?? 0) + 1);
    });
    await observer.subscribeAsync(`ef/v1/dev/${deviceId}/#`, { qos: 1 });
    const second = startProcess('agent', args, env);
    await second.waitForMsg('agent ready');
    await eventually(() => written.every((k) => arrivals.has(k)), `all ${written.length} written records delivered`, 120_000);
    await eventually(() => storedRecords(dir.path).length < 5, 'the outbox emptied as acknowledgements came', 30_000);
    const duplicates = written.filter((k) => arrivals.get(k) !== 1);
    expect(duplicates).toEqual([]);
    expect(await second.stop()).toBe(0);
  });
});
