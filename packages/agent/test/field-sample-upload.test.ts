import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { splitBinaryBody } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDriftReporter } from '../src/drift/drift-reporter.js';
import { createFieldSampleUploader, type FieldSampleUploader } from '../src/drift/field-sample-upload.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import type { FieldSampleCandidate } from '../src/inference/types.js';
import { createDriftMetrics, type DriftMetrics } from '../src/local-api/metrics.js';
import { createDownloader } from '../src/models/download.js';
import { baselineFor } from './support/drift-manifests.js';
import { mlp } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

interface Received {
  url: URL;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** Stands in for the hub's field-sample route: records each POST and answers the scripted statuses (then 201). */
async function startSampleServer(): Promise<{ apiUrl: string; received: Received[]; statuses: number[]; hold: Array<Promise<void>>; close: () => Promise<void> }> {
  const state = { received: [] as Received[], statuses: [] as number[], hold: [] as Array<Promise<void>> };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.received.push({ url: new URL(req.url ?? '/', 'http://x'), headers: req.headers, body: Buffer.concat(chunks) });
      const status = state.statuses.shift() ?? 201;
      void (state.hold.shift() ?? Promise.resolve()).then(() => res.writeHead(status, { 'content-type': 'application/json' }).end('{}'));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    apiUrl: `http://127.0.0.1:${port}`,
    ...state,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const creds = { username: 'dev-fs', password: 'secret-fs' };

function candidate(reason: 'random' | 'hard', fill: number): FieldSampleCandidate {
  return { reason, margin: reason === 'hard' ? 0.03 : 0.6, entropy: 0.9, takenAt: 1_700_000_000_000, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4).fill(fill) }] };
}

describe('field sample upload', () => {
  let server: Awaited<ReturnType<typeof startSampleServer>>;
  let metrics: DriftMetrics;
  let uploader: FieldSampleUploader;
  const fetch = createDownloader({ logger: silentLogger }).fetch!;
  const count = async (reason: string, outcome: string) => {
    const m = (await metrics.registry.getSingleMetric('edgefleet_field_samples_total')!.get()).values.find((v) => v.labels.reason === reason && v.labels.outcome === outcome);
    return m?.value ?? 0;
  };

  beforeAll(async () => {
    server = await startSampleServer();
  });
  beforeEach(() => {
    server.received.length = 0;
    metrics = createDriftMetrics(new Registry());
    uploader = createFieldSampleUploader({ apiUrl: server.apiUrl, auth: creds, fetch, metrics, logger: silentLogger, maxQueued: 2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('posts the sample as an Open Inference Protocol binary body with the device credentials and its query', async () => {
    uploader.enqueue('scorer', '7', candidate('hard', 0.25));
    await uploader.idle();
    expect(server.received).toHaveLength(1);
    const got = server.received[0]!;
    expect(got.url.pathname).toBe('/api/v1/field-samples');
    expect(Object.fromEntries(got.url.searchParams)).toEqual({ model: 'scorer', version: '7', reason: 'hard', margin: '0.03', entropy: '0.9', takenAt: '1700000000000' });
    expect(got.headers.authorization).toBe(`Basic ${Buffer.from('dev-fs:secret-fs').toString('base64')}`);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    const { header, tail } = splitBinaryBody(got.body, Number(got.headers['inference-header-content-length']));
    expect(header).toEqual({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] });
    expect(new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + tail.byteLength))).toEqual(new Float32Array(4).fill(0.25));
    expect(await count('hard', 'uploaded')).toBe(1);
  });

  it('counts a sample over the quota (429) as refused and a server error as failed, and does not retry either', async () => {
    server.statuses.push(429, 503);
    uploader.enqueue('scorer', '7', candidate('random', 1));
    uploader.enqueue('scorer', '7', candidate('hard', 2));
    await uploader.idle();
    expect(server.received).toHaveLength(2);
    expect([await count('random', 'refused'), await count('hard', 'failed')]).toEqual([1, 1]);
  });

  it('keeps a bounded queue: the oldest waiting sample is dropped and counted', async () => {
    let release!: () => void;
    server.hold.push(new Promise<void>((resolve) => (release = resolve)));
    uploader.enqueue('scorer', '7', candidate('random', 1));
    await eventually(() => server.received.length === 1, 'the first upload in flight');
    for (const fill of [2, 3, 4]) uploader.enqueue('scorer', '7', candidate('random', fill));
    release();
    await uploader.idle();
    expect(server.received.map((r) => r.body.readFloatLE(r.body.byteLength - 4))).toEqual([1, 3, 4]);
    expect([await count('random', 'uploaded'), await count('random', 'dropped')]).toEqual([3, 1]);
    await uploader.stop();
    uploader.enqueue('scorer', '7', candidate('hard', 5));
    expect(await count('hard', 'dropped')).toBe(1);
  });

  it('bounds the queue in bytes as well: the oldest waiting sample is dropped once the bytes would pass the bound', async () => {
    // Each candidate carries 16 bytes of inputs: 32 bytes hold two waiting, however many the count allows.
    const bounded = createFieldSampleUploader({ apiUrl: server.apiUrl, auth: creds, fetch, metrics, logger: silentLogger, maxQueued: 10, maxQueuedBytes: 32 });
    let release!: () => void;
    server.hold.push(new Promise<void>((resolve) => (release = resolve)));
    bounded.enqueue('scorer', '7', candidate('random', 1));
    await eventually(() => server.received.length === 1, 'the first upload in flight');
    for (const fill of [2, 3, 4]) bounded.enqueue('scorer', '7', candidate('random', fill));
    release();
    await bounded.idle();
    expect(server.received.map((r) => r.body.readFloatLE(r.body.byteLength - 4))).toEqual([1, 3, 4]);
    expect([await count('random', 'uploaded'), await count('random', 'dropped')]).toEqual([3, 1]);
    await bounded.stop();
  });

  it('uploads the random and hard samples the workers kept in a window', async () => {
    const dir = await tempDir('field-samples');
    const runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger, fieldSamples: { randomPerWindow: 2, hardPerWindow: 1, hardMargin: 1 } });
    try {
      const bytes = mlp(4);
      const sig = readSignature(decodeModel(bytes));
      const path = join(dir.path, 'scorer.onnx');
      await writeFile(path, bytes);
      const model = await runtime.load({ name: 'scorer', version: '8', sha256: 'test', profile: 'fp32', path, ...sig, drift: baselineFor(bytes) });
      const table = createModelTable();
      table.activate(model);
      const reporter = createDriftReporter({
        table,
        publish: () => undefined,
        windowSec: 3600,
        windowRequests: 6,
        fieldSamples: { random: 2, hard: 1 },
        uploader,
        metrics,
        logger: silentLogger,
      });
      reporter.start();
      for (let i = 0; i < 6; i++) {
        await model.infer([{ name: sig.inputs[0]!.name, datatype: 'FP32', shape: [1, 4], data: Float32Array.from([i, 1, 2, 3]) }]);
        table.record('scorer', '8', 1, true);
      }
      await eventually(() => server.received.length === 3, 'three uploads');
      await uploader.idle();
      const reasons = server.received.map((r) => r.url.searchParams.get('reason')).sort();
      expect(reasons).toEqual(['hard', 'random', 'random']);
      for (const r of server.received) {
        expect(r.url.searchParams.get('model')).toBe('scorer');
        expect(Number(r.url.searchParams.get('margin'))).toBeGreaterThanOrEqual(0);
      }
      await reporter.stop();
      table.deactivate('scorer');
      await model.close();
    } finally {
      await runtime.stop();
      await dir.remove();
    }
  });
});
