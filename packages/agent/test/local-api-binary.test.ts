import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_HEADER, joinBinaryBody } from '@edgefleet/shared';
import { buildMlp, encodeModel, GraphBuilder } from '@edgefleet/shared/onnx';
import type { LocalApi } from '../src/local-api/local-api.js';
import { startLocalApiRig, type LocalApiRig } from './support/local-api-rig.js';

// Binary request bodies are used in place (inputs moved to aligned offsets, the body's buffer moved to
// the worker): every header length must give the same answer, and concurrent requests (batched behind
// a busy worker) must each get their own rows.

const N = 1500; // 6 KB of FP32 per input: bodies above Node's 4 KB buffer pool are used in place

function post(socketPath: string, path: string, body: Buffer, headers: Record<string, string | number>): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method: 'POST', path, headers: { 'content-length': body.byteLength, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** z = x + y (FP32 [-1,N]) and w = 2·v (FP64 [-1,N]): two inputs per body, 4- and 8-byte elements. */
function twoInputModel(): Uint8Array {
  const g = new GraphBuilder('two-inputs');
  const x = g.input('x', 'FP32', [-1, N]);
  const y = g.input('y', 'FP32', [-1, N]);
  const v = g.input('v', 'FP64', [-1, N]);
  g.node('Add', [x, y], {}, 'z');
  g.node('Add', [v, v], {}, 'w');
  g.output('z', 'FP32', [-1, N]);
  g.output('w', 'FP64', [-1, N]);
  return encodeModel(g.build());
}

describe('binary bodies through the socket', () => {
  let rig: LocalApiRig;
  let api: LocalApi;

  beforeAll(async () => {
    rig = await startLocalApiRig('local-api-binary', { two: twoInputModel(), mlp: buildMlp({ inputSize: 2000, hidden: [8], outputSize: 3 }) });
    api = rig.api;
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it('answers the same for every alignment of the inputs in the body', async () => {
    const x = Float32Array.from({ length: N }, (_, i) => i * 0.5);
    const y = Float32Array.from({ length: N }, (_, i) => 1 - i);
    const v = Float64Array.from({ length: N }, (_, i) => i / 3);
    for (let pad = 0; pad < 8; pad++) {
      const header = {
        id: 'p'.repeat(pad),
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1, N], parameters: { binary_data_size: x.byteLength } },
          { name: 'y', datatype: 'FP32', shape: [1, N], parameters: { binary_data_size: y.byteLength } },
          { name: 'v', datatype: 'FP64', shape: [1, N], parameters: { binary_data_size: v.byteLength } },
        ],
        parameters: { binary_data_output: true },
      };
      const { body, headerLength } = joinBinaryBody(header, [new Uint8Array(x.buffer), new Uint8Array(y.buffer), new Uint8Array(v.buffer)]);
      const res = await post(api.socketPath, '/v2/models/two/infer', body, { 'content-type': 'application/octet-stream', [BINARY_HEADER]: headerLength });
      expect(res.status).toBe(200);
      const json = Number(res.headers[BINARY_HEADER.toLowerCase()]);
      const tail = res.body.subarray(json);
      const z = new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + N * 4));
      const w = new Float64Array(tail.buffer.slice(tail.byteOffset + N * 4, tail.byteOffset + N * 12));
      expect(Array.from(z)).toEqual(Array.from(x, (a, i) => Math.fround(a + y[i]!)));
      expect(Array.from(w)).toEqual(Array.from(v, (a) => a + a));
    }
  });

  it('gives each of many concurrent requests its own answer', async () => {
    const one = async (k: number) => {
      const input = Float32Array.from({ length: 2000 }, (_, i) => Math.sin(k + i * 0.01));
      const { body, headerLength } = joinBinaryBody({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 2000], parameters: { binary_data_size: input.byteLength } }] }, [new Uint8Array(input.buffer)]);
      const res = await post(api.socketPath, '/v2/models/mlp/infer', body, { 'content-type': 'application/octet-stream', [BINARY_HEADER]: headerLength });
      return JSON.parse(res.body.toString('utf8')).outputs[0].data as number[];
    };
    const alone: number[][] = [];
    for (let k = 0; k < 24; k++) alone.push(await one(k));
    const together = await Promise.all(Array.from({ length: 24 }, (_, k) => one(k)));
    expect(together).toEqual(alone);
    expect(new Set(alone.map((a) => a.join())).size).toBe(24);
  });
});
