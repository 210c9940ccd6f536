import { execFileSync } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_HEADER, joinBinaryBody } from '@edgefleet/shared';
import { buildConvNet, buildMlp, decodeModel, encodeModel, GraphBuilder, int64Tensor, readSignature } from '@edgefleet/shared/onnx';
import { createModelRuntime, type PooledModel, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import type { ModelFile, ModelTable } from '../src/inference/types.js';
import { createLocalApi, SOCKET_MODE, type LocalApi } from '../src/local-api/local-api.js';
import { silentLogger, tempDir } from './support/temp.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: () => any;
}

/** Real HTTP over the Unix socket. */
function call(socketPath: string, method: string, path: string, body?: unknown, headers: Record<string, string | number> = {}): Promise<Reply> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { socketPath, method, path, headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': payload.byteLength } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString('utf8')) });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function int64Model(): Uint8Array {
  const g = new GraphBuilder('add-int64');
  const x = g.input('x', 'INT64', [-1, 3]);
  g.node('Add', [x, g.initializer(int64Tensor('offset', [3], [10, 20, 30]))], {}, 'y');
  g.output('y', 'INT64', [-1, 3]);
  return encodeModel(g.build());
}

const SIZE = 32;
const convBytes = buildConvNet({ channels: 3, size: SIZE, filters: [8, 16], classes: 5 });
const mlpBytes = buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 });
const slowBytes = buildConvNet({ channels: 3, size: 64, filters: [32, 64, 64], classes: 4 });

function image(batch = 1): Float32Array {
  const x = new Float32Array(batch * 3 * SIZE * SIZE);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i) * 0.5;
  return x;
}

describe('local API over a real Unix socket', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let runtime: PooledModelRuntime;
  let table: ModelTable;
  let api: LocalApi;
  let socket: string;
  const files: Record<string, ModelFile> = {};
  const models: Record<string, PooledModel> = {};
  let directConv: ort.InferenceSession;

  beforeAll(async () => {
    dir = await tempDir('local-api');
    socket = join(dir.path, 'run', 'agent.sock');
    runtime = createModelRuntime({ workers: 2, threads: 1, logger: silentLogger });
    table = createModelTable();
    for (const [name, bytes, version] of [['conv', convBytes, '3'], ['mlp', mlpBytes, '1'], ['add', int64Model(), '1'], ['slow', slowBytes, '1']] as const) {
      const path = join(dir.path, `${name}.onnx`);
      await writeFile(path, bytes);
      files[name] = { name, version, sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) };
      models[name] = await runtime.load(files[name]!);
      table.activate(models[name]!);
    }
    directConv = await ort.InferenceSession.create(files.conv!.path);
    // A stale socket file from a crashed run (bound, never listened, process gone) must not block start.
    execFileSync('mkdir', ['-p', join(dir.path, 'run')]);
    execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(socket)})`]);
    api = createLocalApi({ socketPath: socket, tcpPort: 0, models: table, logger: silentLogger, serverName: 'edgefleet-agent', serverVersion: '9.9.9' });
    await api.start();
  });

  afterAll(async () => {
    await api?.stop();
    await api?.stop();
    await directConv?.release();
    await runtime?.stop();
    await dir?.remove();
  });

  async function expectedConv(x: Float32Array, batch = 1): Promise<number[]> {
    const out = await directConv.run({ image: new ort.Tensor('float32', x, [batch, 3, SIZE, SIZE]) });
    return Array.from(out.probs!.data as Float32Array);
  }

  it('listens with mode 0660 (after replacing a stale socket) and also on 127.0.0.1', async () => {
    expect((await stat(socket)).mode & 0o777).toBe(SOCKET_MODE);
    const res = await fetch(`http://127.0.0.1:${api.tcpPort()}/v2/health/live`);
    expect(res.status).toBe(200);
  });

  it('answers server metadata, health and model metadata', async () => {
    expect((await call(socket, 'GET', '/v2')).json()).toEqual({ name: 'edgefleet-agent', version: '9.9.9', extensions: ['binary_tensor_data'] });
    expect((await call(socket, 'GET', '/v2/health/live')).status).toBe(200);
    expect((await call(socket, 'GET', '/v2/health/ready')).status).toBe(200);
    expect((await call(socket, 'GET', '/v2/models/conv')).json()).toEqual({
      name: 'conv',
      versions: ['3'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 3, SIZE, SIZE] }],
      outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 5] }],
    });
    expect((await call(socket, 'GET', '/v2/models/conv/ready')).status).toBe(200);
    expect((await call(socket, 'GET', '/v2/models/conv/versions/3')).json().versions).toEqual(['3']);
    expect((await call(socket, 'GET', '/v2/models/conv/versions/3/ready')).status).toBe(200);
    const wrongVersion = await call(socket, 'GET', '/v2/models/conv/versions/2/ready');
    expect(wrongVersion.status).toBe(404);
    expect(wrongVersion.json().error).toContain('the active version is "3"');
    expect((await call(socket, 'GET', '/v2/models/nope')).status).toBe(404);
  });

  it('JSON infer (flat and nested data) equals a direct onnxruntime run', async () => {
    const x = image(2);
    const expected = await expectedConv(x, 2);
    const flat = await call(socket, 'POST', '/v2/models/conv/infer', { id: 'r1', inputs: [{ name: 'image', datatype: 'FP32', shape: [2, 3, SIZE, SIZE], data: Array.from(x) }] });
    expect(flat.status).toBe(200);
    expect(flat.json()).toEqual({ model_name: 'conv', model_version: '3', id: 'r1', outputs: [{ name: 'probs', datatype: 'FP32', shape: [2, 5], data: expected }] });
    const nested = [0, 1].map((b) => [0, 1, 2].map((c) => Array.from({ length: SIZE }, (_, h) => Array.from(x.subarray(((b * 3 + c) * SIZE + h) * SIZE, ((b * 3 + c) * SIZE + h + 1) * SIZE)))));
    const res = await call(socket, 'POST', '/v2/models/conv/versions/3/infer', { inputs: [{ name: 'image', datatype: 'FP32', shape: [2, 3, SIZE, SIZE], data: nested }] });
    expect(res.json().outputs[0].data).toEqual(expected);
    expect((await call(socket, 'POST', '/v2/models/conv/versions/4/infer', { inputs: [] })).status).toBe(404);
  });

  it('binary infer (Triton extension) equals a direct run, in both directions', async () => {
    const x = image(1);
    const expected = await expectedConv(x);
    const { body, headerLength } = joinBinaryBody(
      { inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 3, SIZE, SIZE], parameters: { binary_data_size: x.byteLength } }], outputs: [{ name: 'probs', parameters: { binary_data: true } }] },
      [new Uint8Array(x.buffer)],
    );
    const res = await call(socket, 'POST', '/v2/models/conv/infer', body, { 'content-type': 'application/octet-stream', [BINARY_HEADER]: headerLength });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const len = Number(res.headers[BINARY_HEADER]);
    const header = JSON.parse(res.body.subarray(0, len).toString('utf8'));
    expect(header.outputs).toEqual([{ name: 'probs', datatype: 'FP32', shape: [1, 5], parameters: { binary_data_size: 20 } }]);
    const tail = res.body.subarray(len);
    expect(Array.from(new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + tail.byteLength)))).toEqual(expected);

    // Binary request, JSON response; then JSON request with binary_data_output.
    const jsonOutBody = joinBinaryBody({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 3, SIZE, SIZE], parameters: { binary_data_size: x.byteLength } }] }, [new Uint8Array(x.buffer)]);
    const jsonOut = await call(socket, 'POST', '/v2/models/conv/infer', jsonOutBody.body, { 'content-type': 'application/octet-stream', [BINARY_HEADER]: jsonOutBody.headerLength });
    expect(jsonOut.headers['content-type']).toMatch(/^application\/json/);
    expect(jsonOut.json().outputs[0].data).toEqual(expected);
    const binOut = await call(socket, 'POST', '/v2/models/conv/infer', { parameters: { binary_data_output: true }, inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 3, SIZE, SIZE], data: Array.from(x) }] });
    expect(Number(binOut.headers[BINARY_HEADER])).toBeLessThan(binOut.body.byteLength);
  });

  it('carries int64 tensors in JSON and binary', async () => {
    const res = await call(socket, 'POST', '/v2/models/add/infer', { inputs: [{ name: 'x', datatype: 'INT64', shape: [2, 3], data: [[1, 2, 3], [-4, 5, 6]] }] });
    expect(res.json().outputs).toEqual([{ name: 'y', datatype: 'INT64', shape: [2, 3], data: [11, 22, 33, 6, 25, 36] }]);
    const x = BigInt64Array.from([7n, 8n, 9n]);
    const { body, headerLength } = joinBinaryBody({ inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 3], parameters: { binary_data_size: 24 } }], parameters: { binary_data_output: true } }, [new Uint8Array(x.buffer)]);
    const bin = await call(socket, 'POST', '/v2/models/add/infer', body, { [BINARY_HEADER]: headerLength });
    const len = Number(bin.headers[BINARY_HEADER]);
    expect(Array.from(new BigInt64Array(Uint8Array.from(bin.body.subarray(len)).buffer))).toEqual([17n, 28n, 39n]);
  });

  it('rejects every kind of bad request with a clear 4xx, and keeps serving', async () => {
    const infer = (body: unknown, headers?: Record<string, string | number>, model = 'mlp') => call(socket, 'POST', `/v2/models/${model}/infer`, body, headers);
    const input = (over: object) => ({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4], ...over }] });
    const cases: Array<[Promise<Reply>, number, string]> = [
      [infer(input({}), undefined, 'nope'), 404, 'no model "nope" is loaded'],
      [infer(input({ name: 'inputs' })), 400, 'unknown input "inputs"; the model expects "input": FP32 [-1,4]'],
      [infer(input({ shape: [1, 5], data: [1, 2, 3, 4, 5] })), 400, 'input "input" expects FP32 [-1,4], got FP32 [1,5]'],
      [infer(input({ datatype: 'INT32' })), 400, 'input "input" expects FP32 [-1,4], got INT32 [1,4]'],
      [infer(input({ datatype: 'FLOAT' })), 400, 'input "input" expects FP32 [-1,4], got FLOAT [1,4]'],
      [infer(input({ data: [1, 2, 3] })), 400, 'input "input" expects FP32 [-1,4], got shape [1,4] (4 values) with 3 values of data'],
      [infer(input({ data: [1, 2, 'x', 4] })), 400, 'data[2] = "x" is not a number'],
      [infer({ inputs: [] }), 400, 'does not match the protocol'],
      [infer('{"inputs": [', undefined), 400, 'request body is not valid JSON'],
      [infer(input({ parameters: { binary_data_size: 16 }, data: undefined }), { [BINARY_HEADER]: 'abc' }), 400, 'must be a non-negative integer, got "abc"'],
      [infer(Buffer.from('{"inputs": []}'), { [BINARY_HEADER]: 999 }), 400, 'is not within the body'],
      [infer(Buffer.from('not json at all'), { [BINARY_HEADER]: 8 }), 400, 'binary inference header is not valid JSON'],
      [
        infer(joinBinaryBody(input({ parameters: { binary_data_size: 16 }, data: undefined }), [new Uint8Array(8)]).body, { [BINARY_HEADER]: JSON.stringify(input({ parameters: { binary_data_size: 16 }, data: undefined })).length }),
        400,
        'needs 16 bytes at offset 0 of the binary data, which has only 8 bytes',
      ],
      [infer({ ...input({}), outputs: [{ name: 'logits' }] }), 400, 'unknown output "logits"; the model has outputs "probs": FP32 [-1,3]'],
    ];
    for (const [pending, status, error] of cases) {
      const res = await pending;
      expect({ status: res.status, error: res.json().error as string }).toEqual({ status, error: expect.stringContaining(error) });
    }
    const ok = await infer(input({}));
    expect(ok.status).toBe(200);
    expect(ok.json().outputs[0].shape).toEqual([1, 3]);
  });

  it('answers /v2/health/live while an inference is running', async () => {
    const slow = models.slow!;
    const started = new Promise<void>((resolve) => slow.events.once('dispatch', () => resolve()));
    const x = new Float32Array(64 * 3 * 64 * 64).fill(0.2);
    const { body, headerLength } = joinBinaryBody({ inputs: [{ name: 'image', datatype: 'FP32', shape: [64, 3, 64, 64], parameters: { binary_data_size: x.byteLength } }] }, [new Uint8Array(x.buffer)]);
    let inferDone = false;
    const inference = call(socket, 'POST', '/v2/models/slow/infer', body, { [BINARY_HEADER]: headerLength }).then((r) => {
      inferDone = true;
      return r;
    });
    await started;
    expect(slow.stats().inFlight).toBe(1);
    const live = await call(socket, 'GET', '/v2/health/live');
    expect(live.status).toBe(200);
    expect(inferDone).toBe(false);
    expect(slow.stats().inFlight).toBe(1);
    expect((await inference).json().outputs[0].shape).toEqual([64, 4]);
  });

  it('exposes Prometheus counters and records every served request in the model table', async () => {
    const metrics = await call(socket, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    const text = metrics.body.toString('utf8');
    expect(text).toMatch(/edgefleet_inference_request_success_total\{model="conv",version="3"\} \d+/);
    expect(text).toMatch(/edgefleet_inference_request_failure_total\{model="mlp",version="1"\} 1[0-9]/);
    expect(text).toContain('edgefleet_inference_request_duration_seconds_bucket');
    const mlpStats = table.snapshot().find((s) => s.name === 'mlp')!;
    expect(mlpStats.requests).toBeGreaterThanOrEqual(14);
    expect(mlpStats.errors).toBe(13);
  });

  it('refuses to start on a socket another server is using', async () => {
    const second = createLocalApi({ socketPath: socket, models: table, logger: silentLogger });
    await expect(second.start()).rejects.toThrow('another process is serving');
    await second.stop();
    expect((await call(socket, 'GET', '/v2/health/live')).status).toBe(200);
  });
});
