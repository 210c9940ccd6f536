import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_HEADER } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import type { LocalApi } from '../src/local-api/local-api.js';
import { startLocalApiRig, type LocalApiRig } from './support/local-api-rig.js';

/**
 * Random and malformed requests to every route of the agent's socket API, against a real model in
 * onnxruntime: nothing answers 5xx, and the model still answers correctly afterwards.
 */
const ROUTES = [
  'GET /v2',
  'GET /v2/health/live',
  'GET /v2/health/ready',
  'GET /metrics',
  'GET /v2/models/{name}',
  'GET /v2/models/{name}/ready',
  'POST /v2/models/{name}/infer',
  'GET /v2/models/{name}/versions/{version}',
  'GET /v2/models/{name}/versions/{version}/ready',
  'POST /v2/models/{name}/versions/{version}/infer',
];
const DATATYPES = ['FP32', 'FP16', 'FP64', 'INT64', 'INT32', 'INT8', 'UINT8', 'BOOL', 'BYTES', 'fp32', 'X'];

const name = fc.oneof(fc.constant('mlp'), fc.constant('mlp'), fc.constantFrom('nope', '..', '%2F', 'a'.repeat(500), ''), fc.string({ maxLength: 20 }).map(encodeURIComponent));
const version = fc.oneof(fc.constant('1'), fc.constantFrom('2', '-1', '1.0', ''), fc.string({ maxLength: 10 }).map(encodeURIComponent));
const shape = fc.oneof(fc.constant([1, 4]), fc.array(fc.oneof(fc.integer({ min: -2, max: 8 }), fc.constantFrom(2 ** 31, 1e12, 2 ** 53, 0.5)), { maxLength: 5 }));
const tensor = fc.record(
  {
    name: fc.oneof(fc.constant('input'), fc.string({ maxLength: 8 })),
    shape,
    datatype: fc.constantFrom(...DATATYPES),
    data: fc.oneof(
      fc.array(fc.double(), { maxLength: 12 }),
      fc.array(fc.array(fc.double({ noNaN: true }), { maxLength: 4 }), { maxLength: 4 }),
      fc.array(fc.oneof(fc.string(), fc.boolean(), fc.constant(null)), { maxLength: 6 }),
      fc.jsonValue({ maxDepth: 3 }),
    ),
    parameters: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: ['name'] },
);
const inferBody = fc.record(
  { inputs: fc.oneof(fc.array(tensor, { maxLength: 3 }), fc.jsonValue({ maxDepth: 2 })), outputs: fc.jsonValue({ maxDepth: 2 }), id: fc.jsonValue({ maxDepth: 1 }) },
  { requiredKeys: [] },
);

/** A Triton binary request: a JSON header of some stated length, then raw bytes. */
const binaryBody = fc.tuple(inferBody, fc.integer({ min: -5, max: 400 }), fc.uint8Array({ maxLength: 256 }), fc.boolean()).map(([header, delta, tail, withSize]) => {
  const withBinary = {
    ...header,
    inputs: Array.isArray(header.inputs)
      ? header.inputs.map((t) => ({ ...(t as object), parameters: withSize ? { binary_data_size: tail.length } : { binary_data_size: 'x' } }))
      : header.inputs,
  };
  const json = Buffer.from(JSON.stringify(withBinary));
  return { payload: Buffer.concat([json, Buffer.from(tail)]), headerLength: String(json.length + delta) };
});

const request = fc.record({
  route: fc.constantFrom(...ROUTES),
  name,
  version,
  body: fc.oneof(
    fc.constant(null),
    inferBody.map((b) => ({ payload: Buffer.from(JSON.stringify(b)), headers: { 'content-type': 'application/json' } as Record<string, string> })),
    fc.string({ maxLength: 300 }).map((s) => ({ payload: Buffer.from(s), headers: { 'content-type': 'application/json' } as Record<string, string> })),
    fc.uint8Array({ maxLength: 512 }).map((b) => ({ payload: Buffer.from(b), headers: { 'content-type': 'application/octet-stream' } as Record<string, string> })),
    binaryBody.map((b) => ({ payload: b.payload, headers: { 'content-type': 'application/octet-stream', [BINARY_HEADER]: b.headerLength } as Record<string, string> })),
    fc.tuple(binaryBody, fc.constantFrom('abc', '-1', '1e99', '', '0x10')).map(([b, h]) => ({ payload: b.payload, headers: { [BINARY_HEADER]: h } as Record<string, string> })),
  ),
});

describe('local API under random and malformed requests', () => {
  let rig: LocalApiRig;
  let api: LocalApi;

  beforeAll(async () => {
    rig = await startLocalApiRig('local-api-props', { mlp: buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 }) });
    api = rig.api;
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it('answers every request below 500 and keeps serving the model', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const [method, template] = r.route.split(' ') as ['GET' | 'POST', string];
        const url = template.replace('{name}', r.name).replace('{version}', r.version);
        const res = await api.app.inject({ method, url, ...(r.body ? { payload: r.body.payload, headers: r.body.headers } : {}) });
        expect(res.statusCode, `${method} ${url} → ${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500);
        if (res.statusCode >= 400) expect(typeof (res.json() as { error?: unknown }).error, `${method} ${url}: ${res.body}`).toBe('string');
      }),
      { numRuns: 500 },
    );
    const ok = await api.app.inject({
      method: 'POST',
      url: '/v2/models/mlp/infer',
      payload: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] },
    });
    expect(ok.statusCode).toBe(200);
    expect((ok.json() as { outputs: Array<{ data: number[] }> }).outputs[0]!.data).toHaveLength(3);
  });
});
