import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { verifyManifest, type EnrollResponse, type ModelVersion } from '@edgefleet/shared';
import { buildMlp, encodeModel, GraphBuilder } from '@edgefleet/shared/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { enrollDevice, useTestHub } from './hub-harness.js';

describe('model registry and artifacts', () => {
  const t = useTestHub();
  let device: EnrollResponse;
  let stored: ModelVersion;
  const model = buildMlp({ inputSize: 8, hidden: [16], outputSize: 3, seed: 7 });
  const artifactFiles = () => readdirSync(join(t.dataDir, 'artifacts'));
  const unloadable = () => {
    const g = new GraphBuilder('broken');
    const x = g.input('x', 'FP32', [1, 4]);
    g.node('NoSuchOperator', [x], {}, 'y');
    g.output('y', 'FP32', [1, 4]);
    return encodeModel(g.build());
  };
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  const assign = async (deviceId: string) => {
    const res = await t.api('POST', '/api/v1/rollouts', { model: 'mlp', version: '1.0.0', target: { deviceIds: [deviceId] } });
    expect(res.status).toBe(201);
  };

  beforeAll(async () => {
    device = await enrollDevice(t);
  });

  it('accepts a good model: content-addressed file, signed manifest with golden vector', async () => {
    const res = await t.api<ModelVersion>('POST', '/api/v1/models/mlp/versions?version=1.0.0', model);
    expect(res.status).toBe(201);
    stored = res.body;
    expect(stored.size).toBe(model.byteLength);
    expect(stored.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 8] }]);
    const manifest = verifyManifest(stored.manifest, t.hub.hubPublicKey);
    expect(manifest).toMatchObject({ model: 'mlp', version: '1.0.0', profile: 'fp32', sha256: stored.sha256 });
    expect(manifest.golden.outputs[0]).toMatchObject({ name: 'probs', datatype: 'FP32', shape: [1, 3] });
    expect(manifest.golden.tolerance.atol).toBe(1e-4);
    expect(artifactFiles()).toEqual([stored.sha256]);

    const dup = await t.api('POST', '/api/v1/models/mlp/versions?version=1.0.0', model);
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ code: 'CONFLICT' });
    const list = await t.api<{ models: unknown[] }>('GET', '/api/v1/models');
    expect(list.body.models).toEqual([{ name: 'mlp', versions: ['1.0.0'], latest: '1.0.0' }]);
  });

  it.each([
    ['empty', new Uint8Array(0), /empty/],
    ['truncated', model.subarray(0, Math.floor(model.byteLength / 2)), /invalid model/],
    ['not ONNX', new TextEncoder().encode('hello, this is not a model at all'), /not an ONNX model|invalid model/],
    ['unloadable', unloadable(), /onnxruntime could not load the model: .*NoSuchOperator/],
  ])('refuses a %s upload with 400 INVALID_MODEL and stores nothing', async (_what, bytes, message) => {
    const res = await t.api<{ error: string; code: string }>('POST', '/api/v1/models/bad/versions?version=1', bytes);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('INVALID_MODEL');
    expect(res.body.error).toMatch(message);
    expect(artifactFiles()).toEqual([stored.sha256]);
    expect((await t.api('GET', '/api/v1/models/bad/versions')).status).toBe(404);
  });

  it('refuses a model or version name outside the manifest pattern before looking at the bytes', async () => {
    for (const path of ['/api/v1/models/-dash/versions?version=1', '/api/v1/models/ok/versions?version=1%2F2']) {
      const res = await t.api<{ error: string; code: string }>('POST', path, model);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
    }
    expect(artifactFiles()).toEqual([stored.sha256]);
  });

  it('serves the artifact to device credentials only, with Range', async () => {
    await assign(device.deviceId);
    const url = `${t.hub.apiUrl}/api/v1/artifacts/${stored.sha256}`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: basic(device.deviceId, 'wrong') } })).status).toBe(401);
    const auth = { authorization: basic(device.deviceId, device.secret) };

    const full = await fetch(url, { headers: auth });
    expect(full.status).toBe(200);
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await full.arrayBuffer()).equals(Buffer.from(model))).toBe(true);

    const part = await fetch(url, { headers: { ...auth, range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${model.byteLength}`);
    expect(part.headers.get('content-length')).toBe('10');
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(model.subarray(10, 20)))).toBe(true);

    const tail = await fetch(url, { headers: { ...auth, range: 'bytes=100-' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(Buffer.from(model.subarray(100)))).toBe(true);

    const beyond = await fetch(url, { headers: { ...auth, range: `bytes=${model.byteLength}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${model.byteLength}`);

    const missing = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${'0'.repeat(64)}`, { headers: auth });
    expect(missing.status).toBe(404);
  });

  it.each([
    ['an unknown unit', 'items=0-10'],
    ['garbage', 'garbage'],
    ['an empty byte range', 'bytes=-'],
    ['a last position before the first', 'bytes=20-10'],
    ['a non-numeric position', 'bytes=a-b'],
    ['several ranges', 'bytes=0-1,3-4'],
  ])('ignores a Range with %s and answers 200 with the whole artifact (RFC 9110)', async (_what, range) => {
    const res = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${stored.sha256}`, {
      headers: { authorization: basic(device.deviceId, device.secret), range },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-range')).toBeNull();
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(model))).toBe(true);
  });

  it('serves ranges with positions past 2^53 clamped to the artifact, and 416 for a first position past its end', async () => {
    const get = (range: string) => fetch(`${t.hub.apiUrl}/api/v1/artifacts/${stored.sha256}`, { headers: { authorization: basic(device.deviceId, device.secret), range } });
    const huge = '9'.repeat(30);
    for (const range of ['bytes=0-', `bytes=0-${huge}`, `bytes=-${huge}`]) {
      const res = await get(range);
      expect(res.status, range).toBe(206);
      expect(res.headers.get('content-range'), range).toBe(`bytes 0-${model.byteLength - 1}/${model.byteLength}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(model)), range).toBe(true);
    }
    const past = await get(`bytes=${huge}-`);
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${model.byteLength}`);
  });

  it('still answers 416 to a valid byte range outside the artifact, with the error shape', async () => {
    const res = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${stored.sha256}`, {
      headers: { authorization: basic(device.deviceId, device.secret), range: 'bytes=-0' },
    });
    expect(res.status).toBe(416);
    expect(await res.json()).toMatchObject({ code: 'RANGE_NOT_SATISFIABLE' });
  });

  it('answers 401 to a revoked device', async () => {
    const revoked = await enrollDevice(t, { name: 'revoked' });
    await assign(revoked.deviceId);
    const url = `${t.hub.apiUrl}/api/v1/artifacts/${stored.sha256}`;
    const auth = { authorization: basic(revoked.deviceId, revoked.secret) };
    expect((await fetch(url, { headers: auth })).status).toBe(200);
    expect((await t.api('POST', `/api/v1/devices/${revoked.deviceId}/revoke`)).status).toBe(200);
    const res = await fetch(url, { headers: auth });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'UNAUTHORIZED' });
  });
});
