import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deviceTopic, joinBinaryBody, type Device, type EnrollResponse, type FieldSampleInfo } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, useTestHub, type TestHub } from './hub-harness.js';

const run = promisify(execFile);
const LIMITS = { fieldSamplesPerHour: 3, fieldSamplesPerVersion: 3, maxFieldSampleBytes: 4096 };

const capabilities = { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 2048, cpuModel: 'x', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' };

/** Enrolls a device that reports these versions of mlp installed (the first active), as an agent does over MQTT. */
async function deviceRunning(t: TestHub, name: string, versions: string[] = ['1', '2']): Promise<EnrollResponse> {
  const d = await enrollDevice(t, { name });
  const c = await connectDevice(t, d);
  const models = versions.map((version, i) => ({ name: 'mlp', version, sha256: 'a'.repeat(64), profile: 'fp32', active: i === 0 }));
  await c.publishAsync(deviceTopic(d.deviceId, 'reported'), JSON.stringify({ capabilities, models, desiredVersion: 0, ts: Date.now() }), { qos: 1, retain: true });
  await eventually(async () => (await t.api<Device>('GET', `/api/v1/devices/${d.deviceId}`)).body.models.length === versions.length, `${name}'s reported models stored`);
  await c.endAsync();
  return d;
}

const basic = (d: EnrollResponse) => `Basic ${Buffer.from(`${d.deviceId}:${d.secret}`).toString('base64')}`;
const jsonSample = (data: unknown[], shape = [1, 4], name = 'input') => Buffer.from(JSON.stringify({ inputs: [{ name, datatype: 'FP32', shape, data }] }));
function binarySample(values: Float32Array) {
  const header = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, values.length], parameters: { binary_data_size: values.byteLength } }] };
  return joinBinaryBody(header, [new Uint8Array(values.buffer, values.byteOffset, values.byteLength)]);
}

describe('field samples: devices upload raw inputs, operators list and replay them', () => {
  const t = useTestHub({ config: LIMITS });
  const devices: EnrollResponse[] = [];

  beforeAll(async () => {
    for (const version of ['1', '2']) {
      expect((await t.api('POST', `/api/v1/models/mlp/versions?version=${version}`, buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).status).toBe(201);
    }
    for (let i = 0; i < 6; i++) devices.push(await deviceRunning(t, `cam-${i}`));
  });

  /** A device upload; `query` defaults to a random sample of mlp@1. */
  async function upload(device: EnrollResponse | undefined, body: Uint8Array, opts: { query?: string; headerLength?: number; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = {
      'content-type': opts.headerLength === undefined ? 'application/json' : 'application/octet-stream',
      ...(opts.headerLength === undefined ? {} : { 'inference-header-content-length': String(opts.headerLength) }),
      ...(device ? { authorization: basic(device) } : {}),
      ...opts.headers,
    };
    const res = await fetch(`${t.hub.apiUrl}/api/v1/field-samples?${opts.query ?? 'model=mlp&version=1&reason=random'}`, { method: 'POST', headers, body });
    return { status: res.status, headers: res.headers, body: (await res.json()) as FieldSampleInfo & { error: string } };
  }

  it('stores binary and JSON uploads, lists them newest first and returns the same bytes to replay', async () => {
    const d = devices[0]!;
    const bin = binarySample(Float32Array.of(0.5, -1, 2, 3.25));
    const first = await upload(d, bin.body, { headerLength: bin.headerLength, query: 'model=mlp&version=1&reason=hard&margin=0.04&entropy=0.68&takenAt=2026-11-30T10:00:00.000Z' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ deviceId: d.deviceId, model: 'mlp', version: '1', reason: 'hard', margin: 0.04, entropy: 0.68, size: bin.body.byteLength, takenAt: '2026-11-30T10:00:00.000Z' });
    const json = jsonSample([[1, 2, 3, 4]]);
    const second = await upload(d, json);
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ reason: 'random', margin: null, entropy: null, size: json.byteLength });

    const list = await t.api<FieldSampleInfo[]>('GET', '/api/v1/models/mlp/versions/1/field-samples');
    expect(list.body.map((s) => s.id)).toEqual([second.body.id, first.body.id]);
    const hard = await t.api<FieldSampleInfo[]>('GET', '/api/v1/models/mlp/versions/1/field-samples?reason=hard&limit=5');
    expect(hard.body.map((s) => s.id)).toEqual([first.body.id]);

    const back = await fetch(`${t.hub.apiUrl}/api/v1/field-samples/${first.body.id}`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(back.status).toBe(200);
    expect(back.headers.get('content-type')).toBe('application/octet-stream');
    expect(back.headers.get('inference-header-content-length')).toBe(String(bin.headerLength));
    expect(Buffer.from(await back.arrayBuffer()).equals(bin.body)).toBe(true);
    const backJson = await fetch(`${t.hub.apiUrl}/api/v1/field-samples/${second.body.id}`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(backJson.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Buffer.from(await backJson.arrayBuffer()).equals(json)).toBe(true);
  });

  it('takes an upload from curl', async () => {
    const d = devices[1]!;
    const dir = await mkdtemp(join(tmpdir(), 'ef-field-sample-'));
    try {
      const file = join(dir, 'sample.json');
      await writeFile(file, jsonSample([0, 0, 1, 1]));
      const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', '-u', `${d.deviceId}:${d.secret}`, '-H', 'content-type: application/json', '--data-binary', `@${file}`, `${t.hub.apiUrl}/api/v1/field-samples?model=mlp&version=1&reason=random`]);
      const [body, code] = stdout.split('\n');
      expect(code).toBe('201');
      expect(JSON.parse(body!)).toMatchObject({ deviceId: d.deviceId, model: 'mlp', version: '1' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['a wrong shape', jsonSample([1, 2, 3, 4, 5], [1, 5]), 'model=mlp&version=1&reason=random', 'dimension 1 is 5, expected 4'],
    ['more than one sample', jsonSample([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]), 'model=mlp&version=1&reason=random', 'hold 2 samples along dim 0; a field sample is one input at batch 1'],
    ['an unknown input', jsonSample([1, 2, 3, 4], [1, 4], 'pixels'), 'model=mlp&version=1&reason=random', 'unknown tensor "pixels"'],
    ['an unknown version', jsonSample([1, 2, 3, 4]), 'model=mlp&version=9&reason=random', 'model mlp@9 does not exist'],
    ['a bad reason', jsonSample([1, 2, 3, 4]), 'model=mlp&version=1&reason=boring', 'reason="boring": expected random or hard'],
    ['a NaN margin', jsonSample([1, 2, 3, 4]), 'model=mlp&version=1&reason=hard&margin=NaN', 'margin="NaN" is not a finite number'],
    ['a takenAt that is no date-time', jsonSample([1, 2, 3, 4]), 'model=mlp&version=1&reason=random&takenAt=yesterday', 'takenAt="yesterday" is not an ISO 8601 date-time'],
    ['a top-level key beyond the inputs', Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], note: 'x'.repeat(100) })), 'model=mlp&version=1&reason=random', 'unknown key "note"'],
    ['an input key beyond name, datatype, shape and data', Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4], label: 'cat' }] })), 'model=mlp&version=1&reason=random', 'unknown key "inputs[0].label"'],
  ])('refuses %s with 400 naming it', async (what, body, query, message) => {
    // Each case its own device: every upload takes one of its device's hourly slots, refused or not.
    const res = await upload(await deviceRunning(t, `bad-${what}`), body, { query });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(message);
  });

  it('refuses missing or wrong device credentials (401), operator tokens (403) and a revoked device', async () => {
    const body = jsonSample([1, 2, 3, 4]);
    expect((await upload(undefined, body)).status).toBe(401);
    const operator = await upload(undefined, body, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(operator.status).toBe(403);
    expect(operator.body.error).toContain('operator tokens cannot upload field samples');
    expect((await upload({ ...devices[3]!, secret: 'wrong' }, body)).status).toBe(401);
    expect((await t.api('POST', `/api/v1/devices/${devices[3]!.deviceId}/revoke`)).status).toBe(200);
    expect((await upload(devices[3]!, body)).status).toBe(401);
  });

  it('refuses an unknown key in a binary header with 400 naming it', async () => {
    const values = Float32Array.of(1, 2, 3, 4);
    const header = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: values.byteLength, shm_region: 'r' } }] };
    const bin = joinBinaryBody(header, [new Uint8Array(values.buffer)]);
    const res = await upload(await deviceRunning(t, 'bad-binary-key'), bin.body, { headerLength: bin.headerLength });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('unknown key "inputs[0].parameters.shm_region"');
  });

  it('refuses a version the device does not report installed with 403 naming it', async () => {
    const d = await deviceRunning(t, 'runs-only-1', ['1']);
    const res = await upload(d, jsonSample([1, 2, 3, 4]), { query: 'model=mlp&version=2&reason=random' });
    expect(res.status).toBe(403);
    expect(res.body.error).toContain(`device ${d.deviceId} does not report mlp@2 installed`);
    expect((await upload(d, jsonSample([1, 2, 3, 4]))).status).toBe(201);
  });

  it('refuses a body over the size limit with 413 naming it', async () => {
    const big = binarySample(new Float32Array(2000));
    const res = await upload(devices[2]!, big.body, { headerLength: big.headerLength });
    expect(res.status).toBe(413);
    expect(res.body.error).toContain('over the limit of 4096 bytes');
  });

  it('refuses a device over its hourly rate with 429 and Retry-After', async () => {
    const d = devices[4]!;
    for (let i = 0; i < LIMITS.fieldSamplesPerHour; i++) expect((await upload(d, jsonSample([i, 0, 0, 0]), { query: 'model=mlp&version=2&reason=random' })).status).toBe(201);
    const over = await upload(d, jsonSample([9, 9, 9, 9]), { query: 'model=mlp&version=2&reason=random' });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(over.body.error).toContain('over its field-sample limit');

    // Refused before its body is read: the answer comes while the body is still unsent (it never is).
    const early = await new Promise<{ status: number | undefined; retryAfter: string | undefined }>((resolve, reject) => {
      const req = request(`${t.hub.apiUrl}/api/v1/field-samples?model=mlp&version=2&reason=random`, {
        method: 'POST',
        headers: { authorization: basic(d), 'content-type': 'application/json', 'content-length': String(LIMITS.maxFieldSampleBytes) },
      });
      req.on('response', (res) => {
        resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] });
        res.resume();
        req.destroy();
      });
      req.on('error', reject);
      req.write('{"inputs": [');
    });
    expect(early.status).toBe(429);
    expect(Number(early.retryAfter)).toBeGreaterThan(0);
  });

  it('keeps the newest samples of a version up to its cap, deleting the oldest files', async () => {
    // mlp@2 holds the rate test's 3 samples (the cap); one more pushes the oldest out.
    const before = await t.api<FieldSampleInfo[]>('GET', '/api/v1/models/mlp/versions/2/field-samples');
    expect(before.body).toHaveLength(LIMITS.fieldSamplesPerVersion);
    const oldest = before.body.at(-1)!;
    const added = await upload(devices[5]!, jsonSample([7, 7, 7, 7]), { query: 'model=mlp&version=2&reason=random' });
    expect(added.status).toBe(201);
    const after = await t.api<FieldSampleInfo[]>('GET', '/api/v1/models/mlp/versions/2/field-samples');
    expect(after.body.map((s) => s.id)).toEqual([added.body.id, ...before.body.slice(0, -1).map((s) => s.id)]);
    expect((await t.api('GET', `/api/v1/field-samples/${oldest.id}`)).status).toBe(404);
    expect(existsSync(join(t.dataDir, 'artifacts', oldest.sha256))).toBe(false);
    expect(existsSync(join(t.dataDir, 'artifacts', added.body.sha256))).toBe(true);
  });
});
