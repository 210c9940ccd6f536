import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConvNet, decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { createModelRuntime, type PooledModel, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import type { ModelFile, Tensor } from '../src/inference/types.js';
import { createLocalApi } from '../src/local-api/local-api.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

// Slow enough (16 rows through convolutions) that requests are still running when the test acts.
const slowBytes = buildConvNet({ channels: 3, size: 64, filters: [32, 64, 64], classes: 4 });
const ROWS = 16;

function batch(rows = ROWS): Tensor {
  return { name: 'image', datatype: 'FP32', shape: [rows, 3, 64, 64], data: new Float32Array(rows * 3 * 64 * 64).fill(0.1) };
}

async function slowModel(dir: string, runtime: PooledModelRuntime): Promise<PooledModel> {
  const path = join(dir, 'slow.onnx');
  await writeFile(path, slowBytes);
  const file: ModelFile = { name: 'slow', version: '1', sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(slowBytes)) };
  return runtime.load(file);
}

function postJson(socketPath: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': payload.byteLength } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('unloading a model and bounding its queue', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('lets queued and in-flight requests finish when the model is closed, and refuses new ones', async () => {
    const dir = await tempDir('unload');
    cleanup.push(dir.remove);
    const runtime = createModelRuntime({ workers: 2, threads: 1, maxBatch: 1, logger: silentLogger });
    cleanup.push(() => runtime.stop());
    const model = await slowModel(dir.path, runtime);

    let dispatched = 0;
    model.events.on('dispatch', () => dispatched++);
    // Two workers take two runs each; the last two wait in the queue.
    const requests = Array.from({ length: 6 }, () => model.infer([batch()]));
    await eventually(() => dispatched >= 4, 'four requests to be handed to the workers');
    expect(model.stats()).toMatchObject({ inFlight: 4, queued: 2 });

    const closed = model.close();
    await expect(model.infer([batch()])).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('takes no new requests') });

    const results = await Promise.all(requests);
    for (const [probs] of results) expect(probs!.shape).toEqual([ROWS, 4]);
    expect(dispatched).toBe(6);
    await closed;
    expect(model.stats()).toMatchObject({ workers: 0, inFlight: 0, queued: 0 });
    expect(model.isReady()).toBe(false);
  });

  it('fails what is left when the unload deadline passes', async () => {
    const dir = await tempDir('unload');
    cleanup.push(dir.remove);
    const runtime = createModelRuntime({ workers: 1, threads: 1, maxBatch: 1, drainTimeoutMs: 0, logger: silentLogger });
    cleanup.push(() => runtime.stop());
    const model = await slowModel(dir.path, runtime);
    const requests = Array.from({ length: 3 }, () => model.infer([batch()]).then(() => 'ok', (err: Error) => err.message));
    expect(model.stats()).toMatchObject({ inFlight: 2, queued: 1 });
    await model.close();
    const outcomes = await Promise.all(requests);
    expect(outcomes.filter((o) => o !== 'ok').length).toBeGreaterThan(0);
    for (const o of outcomes) if (o !== 'ok') expect(o).toMatch(/was unloaded before this request could finish/);
  });

  it('refuses requests beyond the queue limit with 503 from the local API', async () => {
    const dir = await tempDir('queue');
    cleanup.push(dir.remove);
    const runtime = createModelRuntime({ workers: 1, threads: 1, maxBatch: 1, maxQueued: 1, logger: silentLogger });
    cleanup.push(() => runtime.stop());
    const model = await slowModel(dir.path, runtime);
    const table = createModelTable();
    table.activate(model);
    const socketPath = join(dir.path, 'agent.sock');
    const api = createLocalApi({ socketPath, models: table, logger: silentLogger });
    await api.start();
    cleanup.push(() => api.stop());

    // One worker takes two runs at a time; the third waits, which fills a queue of one. The runs are
    // large so that the queue is still full when the HTTP request arrives.
    const accepted = Array.from({ length: 3 }, () => model.infer([batch(8 * ROWS)]));
    expect(model.stats()).toMatchObject({ inFlight: 2, queued: 1 });
    await expect(model.infer([batch()])).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('queue full') });
    const res = await postJson(socketPath, '/v2/models/slow/infer', {
      inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: Array.from({ length: 3 * 64 * 64 }, () => 0.1) }],
    });
    expect(res.status).toBe(503);
    expect(res.json.error).toMatch(/inference queue full .*at most 1/);
    for (const [probs] of await Promise.all(accepted)) expect(probs!.shape).toEqual([8 * ROWS, 4]);
  });
});
