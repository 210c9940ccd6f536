import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DriftWebhookBody } from '@edgefleet/shared';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createAlertWebhook } from '../src/drift/alert-webhook.js';
import { eventually } from './hub-harness.js';

const log = pino({ level: 'silent' });
const body: DriftWebhookBody = {
  type: 'drift.alert.raised',
  alert: {
    id: 7,
    model: 'clf',
    version: '1',
    deviceId: null,
    state: 'active',
    raisedAt: '2026-11-30T10:00:00.000Z',
    clearedAt: null,
    score: 2.5,
    devices: ['dev-a'],
    features: [{ name: 'in[3]', score: 2.5, psi: 0.6 }],
    message: 'clf@1 drifted: in[3]',
  },
};

describe('drift webhook signature', () => {
  let server: Server;
  const received: Array<{ raw: string; headers: IncomingHttpHeaders }> = [];
  let url = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ raw: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('signs the exact body with HMAC-SHA256 of the secret when one is set, and sends no signature without', async () => {
    const secret = 'shared-with-the-receiver';
    const signed = createAlertWebhook({ url, log, secret });
    signed.send(body);
    await signed.idle();
    const unsigned = createAlertWebhook({ url, log });
    unsigned.send(body);
    await unsigned.idle();
    await eventually(() => received.length === 2, 'two webhook deliveries');

    const [first, second] = received;
    // The receiver's check: recompute over the bytes it got.
    expect(first!.headers['x-edgefleet-signature']).toBe(`sha256=${createHmac('sha256', secret).update(first!.raw).digest('hex')}`);
    expect(JSON.parse(first!.raw)).toEqual(body);
    expect(second!.headers['x-edgefleet-signature']).toBeUndefined();
    await Promise.all([signed.stop(), unsigned.stop()]);
  });

  it('reads the secret from EDGEFLEET_DRIFT_WEBHOOK_SECRET', () => {
    expect(loadConfig({ EDGEFLEET_DRIFT_WEBHOOK_SECRET: 's3cret' }).driftWebhookSecret).toBe('s3cret');
    expect(loadConfig({}).driftWebhookSecret).toBeUndefined();
  });
});
