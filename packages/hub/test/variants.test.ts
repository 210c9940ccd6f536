import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decompress } from '@mongodb-js/zstd';
import {
  generateSigningKeyPair,
  joinBinaryBody,
  verifyManifest,
  type CalibrationSummary,
  type ModelVersion,
  type VariantBuild,
  type VariantDetail,
  type VariantList,
} from '@edgefleet/shared';
import { fixtureModelUrl, fixtureSamples } from '../../../test/fixtures/onnx/fixture-data.mjs';
import { pino } from 'pino';
import type { HubEventMap } from '../src/events/hub-event-bus.js';
import { loadConfig } from '../src/config.js';
import { createArtifactStore } from '../src/models/artifact-store.js';
import { createModelRepo } from '../src/models/model-repo.js';
import { createVariantRepo } from '../src/models/variant-repo.js';
import { createVariantStorage } from '../src/models/variant-storage.js';
import { openDatabase } from '../src/store/database.js';
import { eventually, startTestHub, useTestHub, type TestHub } from './hub-harness.js';

const MLP = new Uint8Array(readFileSync(fixtureModelUrl('torch-mlp')));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const BUILD_TIMEOUT = 60_000;

/** N labelled torch-mlp samples in the binary tensor form (labels first, to show header order decides). */
function binaryCalibration(count: number, seed = 7) {
  const s = fixtureSamples('torch-mlp', count, seed);
  const tensors = [
    { name: 'labels', datatype: 'INT32', shape: [count], bytes: new Uint8Array(s.labels!.buffer, s.labels!.byteOffset, s.labels!.byteLength) },
    { name: 'input', datatype: 'FP32', shape: s.dims, bytes: new Uint8Array(s.input.buffer, s.input.byteOffset, s.input.byteLength) },
  ];
  const header = { inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.bytes.byteLength } })) };
  const { body, headerLength } = joinBinaryBody(header, tensors.map((t) => t.bytes));
  return { body: new Uint8Array(body), headers: { 'inference-header-content-length': String(headerLength) } };
}

function jsonCalibration(count: number, seed = 7) {
  const s = fixtureSamples('torch-mlp', count, seed);
  return {
    inputs: [
      { name: 'input', datatype: 'FP32', shape: s.dims, data: Array.from(s.input) },
      { name: 'labels', datatype: 'INT64', shape: [count], data: Array.from(s.labels!) },
    ],
  };
}

async function upload(t: TestHub, version: string, query = '') {
  const res = await t.api<ModelVersion>('POST', `/api/v1/models/mlp/versions?version=${version}${query}`, MLP);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const variantsOf = (t: TestHub, version: string) => t.api<VariantList>('GET', `/api/v1/models/mlp/versions/${version}/variants`);

async function buildEnded(t: TestHub, version: string): Promise<VariantList> {
  return eventually(
    async () => {
      const { body } = await variantsOf(t, version);
      return body.build && (body.build.state === 'done' || body.build.state === 'failed') && body;
    },
    `the variant build of mlp@${version} to end`,
    BUILD_TIMEOUT,
  );
}

function collectVariantEvents(t: TestHub): Array<HubEventMap['variants']> {
  const seen: Array<HubEventMap['variants']> = [];
  t.hub.bus.subscribe((name, payload) => {
    if (name === 'variants') seen.push(payload as HubEventMap['variants']);
  });
  return seen;
}

describe('variants: upload, calibration and routes', () => {
  const t = useTestHub({ config: { maxCalibrationBytes: 64 * 1024 } });

  it('writes the fp32 variant with the version and stores the budget given in the query', async () => {
    const v = await upload(t, '1', '&minAgreement=0.995&maxAccuracyDrop=0.01');
    expect(v.budget).toEqual({ minAgreement: 0.995, maxAccuracyDrop: 0.01 });
    const list = await variantsOf(t, '1');
    expect(list.status).toBe(200);
    expect(list.body.build).toBeNull();
    expect(list.body.variants).toEqual([expect.objectContaining({ profile: 'fp32', state: 'accepted', sha256: v.sha256, size: v.size, evaluation: null })]);
    const fp32 = await t.api<VariantDetail>('GET', '/api/v1/models/mlp/versions/1/variants/fp32');
    expect(fp32.body.manifest).toEqual(v.manifest);
    const bad = await t.api<{ error: string }>('POST', '/api/v1/models/mlp/versions?version=2&minAgreement=1.5', MLP);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('minAgreement');
  });

  it('404s name the missing model, version and profile', async () => {
    await upload(t, '3');
    for (const [path, words] of [
      ['/api/v1/models/nope/versions/1/variants', 'nope@1'],
      ['/api/v1/models/mlp/versions/9/variants', 'mlp@9'],
      ['/api/v1/models/mlp/versions/3/variants/int9', 'profile "int9"'],
      ['/api/v1/models/mlp/versions/3/variants/fp16', 'mlp@3/fp16'],
      ['/api/v1/models/mlp/versions/3/calibration', 'no calibration data'],
    ] as const) {
      const res = await t.api<{ error: string; code: string }>('GET', path);
      expect(res.status, path).toBe(404);
      expect(res.body.error).toContain(words);
    }
    const post = await t.api<{ error: string }>('POST', '/api/v1/models/mlp/versions/9/variants', {});
    expect(post.status).toBe(404);
  });

  it('takes calibration data as JSON and in binary form, and answers its summary', async () => {
    await upload(t, '4');
    const asJson = await t.api<CalibrationSummary>('PUT', '/api/v1/models/mlp/versions/4/calibration', jsonCalibration(20));
    expect(asJson.status, JSON.stringify(asJson.body)).toBe(200);
    expect(asJson.body).toMatchObject({ samples: 20, labels: true, inputs: [{ name: 'input', datatype: 'FP32', shape: [256] }] });
    const { body, headers } = binaryCalibration(20);
    const asBinary = await t.api<CalibrationSummary>('PUT', '/api/v1/models/mlp/versions/4/calibration', body, headers);
    expect(asBinary.status, JSON.stringify(asBinary.body)).toBe(200);
    // The same samples and labels in either form are the same stored set.
    expect(asBinary.body.sha256).toBe(asJson.body.sha256);
    expect((await t.api('GET', '/api/v1/models/mlp/versions/4/calibration')).body).toEqual(asBinary.body);
    expect(readFileSync(join(t.dataDir, 'artifacts', asBinary.body.sha256)).byteLength).toBeGreaterThan(20 * 256 * 4);
  });

  it('refuses malformed calibration data with 400 naming the problem, and stores nothing', async () => {
    await upload(t, '5');
    const before = await readdir(join(t.dataDir, 'artifacts'));
    const good = jsonCalibration(4);
    const cases: Array<[unknown, string]> = [
      [{ inputs: [good.inputs[1]] }, 'lacks model input "input"'],
      [{ inputs: [{ ...good.inputs[0], datatype: 'FP64' }] }, 'datatype FP64, the model expects FP32'],
      [{ inputs: [{ ...good.inputs[0], shape: [8, 128] }] }, 'dimension 1 is 128, expected 256'],
      [{ inputs: [good.inputs[0], { ...good.inputs[1], shape: [3], data: [1, 2, 3] }] }, 'holds 3 samples along dim 0, the other tensors 4'],
      [{ inputs: [good.inputs[0], { ...good.inputs[1], data: [0, 1, -2, 3] }] }, 'label 2 is -2'],
    ];
    for (const [body, words] of cases) {
      const res = await t.api<{ error: string; code: string }>('PUT', '/api/v1/models/mlp/versions/5/calibration', body);
      expect(res.status, words).toBe(400);
      expect(res.body.error).toContain(words);
    }
    const { body } = binaryCalibration(4);
    const truncated = await t.api<{ error: string }>('PUT', '/api/v1/models/mlp/versions/5/calibration', body.subarray(0, body.byteLength - 10), {
      'inference-header-content-length': binaryCalibration(4).headers['inference-header-content-length'],
    });
    expect(truncated.status).toBe(400);
    expect(truncated.body.error).toContain('truncated');
    const noHeader = await t.api<{ error: string }>('PUT', '/api/v1/models/mlp/versions/5/calibration', body);
    expect(noHeader.status).toBe(400);
    expect(noHeader.body.error).toContain('inference-header-content-length');
    const asText = await t.api<{ error: string }>('PUT', '/api/v1/models/mlp/versions/5/calibration', undefined, { 'content-type': 'text/plain' });
    expect(asText.status).toBe(400);
    expect(asText.body.error).toBe('a calibration body is application/json or application/octet-stream, not text/plain');
    const tooLarge = binaryCalibration(100);
    const refused = await t.api<{ error: string; code: string }>('PUT', '/api/v1/models/mlp/versions/5/calibration', tooLarge.body, tooLarge.headers);
    expect(refused.status).toBe(413);
    expect(refused.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', error: expect.stringContaining(`over the binary limit of ${64 * 1024} bytes`) });
    expect((await t.api('GET', '/api/v1/models/mlp/versions/5/calibration')).status).toBe(404);
    expect(await readdir(join(t.dataDir, 'artifacts'))).toEqual(before);
  });

  it('lists the variant routes in the OpenAPI document', async () => {
    const doc = await t.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/api/v1/openapi.json');
    const base = '/api/v1/models/{name}/versions/{version}';
    expect(Object.keys(doc.body.paths[`${base}/variants`] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.body.paths[`${base}/variants/{profile}`] ?? {})).toEqual(['get']);
    expect(Object.keys(doc.body.paths[`${base}/calibration`] ?? {}).sort()).toEqual(['get', 'put']);
  });
});

describe('variants: builds', () => {
  it('builds, evaluates and signs every profile, with progress on the bus and 409 for a second build', async () => {
    const t = await startTestHub();
    try {
      await upload(t, '1');
      const { body, headers } = binaryCalibration(600);
      expect((await t.api('PUT', '/api/v1/models/mlp/versions/1/calibration', body, headers)).status).toBe(200);
      const events = collectVariantEvents(t);
      // The default 0.99 sits close to what a few hundred noise samples measure; 0.95 keeps this test about storage.
      const started = await t.api<VariantBuild>('POST', '/api/v1/models/mlp/versions/1/variants', { budget: { minAgreement: 0.95 }, pruneSparsity: 0.3 });
      expect(started.status).toBe(202);
      expect(started.body.budget).toEqual({ minAgreement: 0.95 });
      expect(started.body.profiles).toEqual(['fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned']);
      const second = await t.api<{ error: string; code: string }>('POST', '/api/v1/models/mlp/versions/1/variants', {});
      expect(second.status).toBe(409);
      expect(second.body.error).toMatch(/already (queued|running)/);

      const list = await buildEnded(t, '1');
      expect(list.build).toMatchObject({ state: 'done', error: null, progress: { done: 5, total: 5 } });
      const dones = events.filter((e) => e.state === 'running').map((e) => e.progress.done);
      expect(new Set(dones).size).toBeGreaterThan(2);
      expect(dones).toEqual([...dones].sort((a, b) => a - b));
      expect(events.filter((e) => e.variantState).map((e) => e.profile).sort()).toEqual(['fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned']);

      const fp32 = verifyManifest((await t.api<VariantDetail>('GET', '/api/v1/models/mlp/versions/1/variants/fp32')).body.manifest!, t.hub.hubPublicKey);
      const accepted = list.variants.filter((v) => v.profile !== 'fp32' && v.state === 'accepted');
      expect(accepted.map((v) => v.profile), JSON.stringify(list.variants, null, 1)).toEqual(expect.arrayContaining(['int8-dynamic', 'int8-static', 'pruned']));
      const table: string[] = [];
      for (const v of list.variants.filter((x) => x.profile !== 'fp32')) {
        const e = v.evaluation;
        table.push(`${v.profile} ${v.state} size ${e?.sizeRatio.toFixed(3)} transfer ${e?.transferRatio.toFixed(3)} agreement ${e?.agreement} accuracy ${e?.accuracy}/${e?.fp32Accuracy} latency ${e?.latencyRatio.toFixed(2)} ${v.reason ?? ''}`);
        if (v.state !== 'accepted') continue;
        const detail = (await t.api<VariantDetail>('GET', `/api/v1/models/mlp/versions/1/variants/${v.profile}`)).body;
        const manifest = verifyManifest(detail.manifest!, t.hub.hubPublicKey);
        expect(manifest).toMatchObject({ model: 'mlp', version: '1', profile: v.profile, sha256: v.sha256, size: v.size });
        // fp32's golden inputs with this variant's outputs, within its own tolerance.
        expect(manifest.golden.inputs).toEqual(fp32.golden.inputs);
        expect(manifest.golden.outputs.length).toBeGreaterThan(0);
        expect(manifest.golden.tolerance.atol).toBeGreaterThanOrEqual(1e-4);
        expect(v.evaluation).toMatchObject({ data: 'calibration', samples: 600 - 256 });
        const file = readFileSync(join(t.dataDir, 'artifacts', v.sha256!));
        expect(sha256(file)).toBe(v.sha256);
        expect(file.byteLength).toBe(v.size);
        if (v.transfer) {
          expect(manifest.transfer).toEqual(v.transfer);
          const packed = readFileSync(join(t.dataDir, 'artifacts', v.transfer.sha256));
          expect(sha256(packed)).toBe(v.transfer.sha256);
          expect(sha256(await decompress(packed))).toBe(v.sha256);
        }
      }
      expect(list.variants.find((v) => v.profile === 'pruned')?.transfer).not.toBeNull();
      console.log(`torch-mlp variants (600 labelled samples):\n  ${table.join('\n  ')}`);
    } finally {
      await t.stop();
    }
  }, 90_000);

  it('a strict budget rejects lossy variants with reasons naming the numbers, and keeps their evaluation', async () => {
    const t = await startTestHub();
    try {
      await upload(t, '1', '&minAgreement=1&maxRelativeError=0.000001');
      const started = await t.api<VariantBuild>('POST', '/api/v1/models/mlp/versions/1/variants', { profiles: ['int8-dynamic', 'pruned'], pruneSparsity: 0.9 });
      expect(started.body.budget).toEqual({ minAgreement: 1, maxRelativeError: 0.000001 });
      const list = await buildEnded(t, '1');
      for (const profile of ['int8-dynamic', 'pruned']) {
        const v = list.variants.find((x) => x.profile === profile)!;
        expect(v, profile).toMatchObject({ state: 'rejected', sha256: null, transfer: null, evaluation: { data: 'generated', samples: 64 } });
        expect(v.reason).toMatch(/top-1 agreement 0\.\d+ < 1 required \(64 /);
        expect(v.evaluation!.agreement).toBeLessThan(1);
      }
      expect((await t.api<VariantDetail>('GET', '/api/v1/models/mlp/versions/1/variants/int8-dynamic')).body.manifest).toBeNull();
    } finally {
      await t.stop();
    }
  }, 60_000);

  it('a hub restarted mid-build resumes the build and finishes it', async () => {
    const t = await startTestHub();
    try {
      await upload(t, '1');
      const events = collectVariantEvents(t);
      await t.api('POST', '/api/v1/models/mlp/versions/1/variants', { profiles: ['int8-dynamic', 'int8-weights', 'fp16'] });
      await eventually(() => events.some((e) => e.state === 'running'), 'the build to start running');
      await t.restart();
      // The first hub stopped it mid-build: its bus never saw the build end.
      expect(events.filter((e) => e.state === 'done' || e.state === 'failed')).toEqual([]);
      const list = await buildEnded(t, '1');
      expect(list.build?.state).toBe('done');
      expect(list.variants.filter((v) => v.profile !== 'fp32').map((v) => v.state)).not.toContain('building');
      expect(t.logs.some((l) => l.msg === 'variant build done')).toBe(true);
      // Cancelling the worker at stop is not an error: nothing logged at error level by either hub.
      expect(t.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
    } finally {
      await t.stop();
    }
  }, 90_000);

  it('with autoBuildVariants an upload queues a build of every profile, and calibration data uploaded mid-build restarts it on that data', async () => {
    const t = await startTestHub({ config: { autoBuildVariants: true } });
    try {
      const events = collectVariantEvents(t);
      await upload(t, '1');
      await eventually(() => events.some((e) => e.state === 'running'), 'the automatic build to start running');
      const { body, headers } = binaryCalibration(300);
      expect((await t.api('PUT', '/api/v1/models/mlp/versions/1/calibration', body, headers)).status).toBe(200);
      const list = await buildEnded(t, '1');
      expect(list.build?.profiles).toHaveLength(5);
      const states = events.map((e) => e.state);
      expect(states.indexOf('queued', states.indexOf('running'))).toBeGreaterThan(0);
      // Without calibration data int8-static is rejected; built again on the upload, it was calibrated and measured on it.
      expect(list.variants.find((v) => v.profile === 'int8-static')?.evaluation).toMatchObject({ data: 'calibration' });
    } finally {
      await t.stop();
    }
  }, 90_000);
});

describe('variants: rebuilds, replaced calibration and a damaged queue', () => {
  it('a rebuild keeps the accepted variants and their manifests until it replaces them, and a failed rebuild leaves them', async () => {
    const t = await startTestHub();
    const db = new Database(join(t.dataDir, 'hub.db'), { readonly: true });
    const rows = () =>
      db.prepare("SELECT profile, state, sha256, manifest IS NOT NULL AS signed FROM model_variants WHERE model = 'mlp' AND version = '1' AND profile != 'fp32' ORDER BY profile").all();
    try {
      await upload(t, '1');
      const { body, headers } = binaryCalibration(300);
      const calibration = await t.api<CalibrationSummary>('PUT', '/api/v1/models/mlp/versions/1/calibration', body, headers);
      const request = { profiles: ['fp16', 'int8-dynamic'], budget: { minAgreement: 0.9 } };
      await t.api('POST', '/api/v1/models/mlp/versions/1/variants', request);
      const first = await buildEnded(t, '1');
      expect(first.variants.filter((v) => v.state === 'accepted').map((v) => v.profile)).toEqual(['fp32', 'fp16', 'int8-dynamic']);
      const built = rows();

      // What the table holds the moment the rebuild is running, before any of its results.
      const atRunning: unknown[][] = [];
      t.hub.bus.subscribe((name, payload) => {
        const e = payload as HubEventMap['variants'];
        if (name === 'variants' && e.state === 'running' && atRunning.length === 0) atRunning.push(rows());
      });
      expect((await t.api('POST', '/api/v1/models/mlp/versions/1/variants', request)).status).toBe(202);
      await eventually(() => atRunning.length > 0, 'the rebuild to run');
      expect(atRunning[0]).toEqual(built);
      const during = await variantsOf(t, '1');
      expect(during.body.variants.filter((v) => v.state === 'accepted').map((v) => v.profile)).toEqual(['fp32', 'fp16', 'int8-dynamic']);
      for (const profile of ['fp16', 'int8-dynamic']) {
        const detail = await t.api<VariantDetail>('GET', `/api/v1/models/mlp/versions/1/variants/${profile}`);
        expect(verifyManifest(detail.body.manifest!, t.hub.hubPublicKey).profile).toBe(profile);
      }
      expect((await buildEnded(t, '1')).build?.state).toBe('done');
      const rebuilt = rows();

      // A build that cannot run (its calibration file is gone) fails and touches no variant.
      await rm(join(t.dataDir, 'artifacts', calibration.body.sha256));
      await t.api('POST', '/api/v1/models/mlp/versions/1/variants', request);
      const failed = await buildEnded(t, '1');
      expect(failed.build).toMatchObject({ state: 'failed', error: expect.stringContaining('ENOENT') });
      expect(rows()).toEqual(rebuilt);
    } finally {
      db.close();
      await t.stop();
    }
  }, 90_000);

  it('calibration replaced while a build runs keeps its file until the build ends; concurrent uploads leave one file', async () => {
    const t = await startTestHub();
    const calibrationFiles = async (shas: string[]) => (await readdir(join(t.dataDir, 'artifacts'))).filter((f) => shas.includes(f)).sort();
    try {
      await upload(t, '1');
      const a = binaryCalibration(300, 1);
      const first = (await t.api<CalibrationSummary>('PUT', '/api/v1/models/mlp/versions/1/calibration', a.body, a.headers)).body;
      const events = collectVariantEvents(t);
      await t.api('POST', '/api/v1/models/mlp/versions/1/variants', { profiles: ['int8-static'] });
      await eventually(() => events.some((e) => e.state === 'running'), 'the build to run');
      // Replaced while the build's process is about to read it: the file must outlive the build.
      const b = binaryCalibration(300, 2);
      const second = (await t.api<CalibrationSummary>('PUT', '/api/v1/models/mlp/versions/1/calibration', b.body, b.headers)).body;
      expect(await calibrationFiles([first.sha256])).toEqual([first.sha256]);
      const ended = await buildEnded(t, '1');
      expect(ended.build, JSON.stringify(ended.build)).toMatchObject({ state: 'done', error: null });
      await eventually(async () => (await calibrationFiles([first.sha256])).length === 0, 'the replaced calibration file to be removed after the build');

      const [c, d] = [binaryCalibration(40, 3), binaryCalibration(40, 4)];
      const both = await Promise.all([c, d].map((x) => t.api<CalibrationSummary>('PUT', '/api/v1/models/mlp/versions/1/calibration', x.body, x.headers)));
      const kept = (await t.api<CalibrationSummary>('GET', '/api/v1/models/mlp/versions/1/calibration')).body.sha256;
      expect(await calibrationFiles([second.sha256, ...both.map((r) => r.body.sha256)])).toEqual([kept]);
    } finally {
      await t.stop();
    }
  }, 90_000);

  it('a damaged build row is marked failed and logged, and the builds after it run', async () => {
    const t = await startTestHub();
    const db = new Database(join(t.dataDir, 'hub.db'));
    try {
      await upload(t, '1');
      await upload(t, '2');
      db.prepare(
        "INSERT INTO variant_builds (model, version, state, request, progress, error, created_at) VALUES ('mlp', '1', 'queued', '{not json', '{\"done\":0,\"total\":1,\"profile\":null,\"step\":null}', NULL, '2000-01-01T00:00:00.000Z')",
      ).run();
      const started = await t.api<VariantBuild>('POST', '/api/v1/models/mlp/versions/2/variants', { profiles: ['fp16'] });
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      expect((await buildEnded(t, '2')).build?.state).toBe('done');
      const damaged = db.prepare("SELECT state, error FROM variant_builds WHERE model = 'mlp' AND version = '1'").get() as { state: string; error: string };
      expect(damaged).toEqual({ state: 'failed', error: expect.stringContaining('the stored build is damaged: variant build mlp@1 request') });
      expect(t.logs.some((l) => l.msg === 'variant build failed: its stored row is damaged' && l.version === '1')).toBe(true);
    } finally {
      db.close();
      await t.stop();
    }
  }, 60_000);
});

describe('variants: storage', () => {
  it('removes the files it wrote for a variant whose row cannot be saved', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ef-variant-storage-'));
    const db = openDatabase(join(dir, 'hub.db'), pino({ level: 'silent' }));
    try {
      const artifacts = createArtifactStore(dir);
      const variants = createVariantRepo(db);
      const failing = { ...variants, upsert: () => { throw new Error('disk I/O error'); } };
      const storage = createVariantStorage({ models: createModelRepo(db), variants: failing, artifacts, privateKeyPem: generateSigningKeyPair().privateKeyPem });
      const version = { name: 'm', version: '1', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2] }] } as ModelVersion;
      const tensor = (name: string) => ({ name, datatype: 'FP32' as const, shape: [1, 2], data: Float32Array.of(1, 2) });
      const stored = storage.storeVariant(version, [tensor('x')], {
        profile: 'pruned',
        state: 'accepted',
        reason: null,
        bytes: Uint8Array.of(1, 2, 3),
        transfer: { encoding: 'zstd', bytes: Uint8Array.of(4, 5) },
        goldenOutputs: [tensor('y')],
        tolerance: { atol: 1e-3 },
      });
      await expect(stored).rejects.toThrow('disk I/O error');
      expect(await readdir(artifacts.dir)).toEqual([]);
    } finally {
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('variants: configuration', () => {
  it('builds automatically unless EDGEFLEET_AUTO_BUILD_VARIANTS turns it off, and names a bad value', () => {
    expect(loadConfig({}).autoBuildVariants).toBe(true);
    expect(loadConfig({ EDGEFLEET_AUTO_BUILD_VARIANTS: 'false' }).autoBuildVariants).toBe(false);
    expect(loadConfig({ EDGEFLEET_AUTO_BUILD_VARIANTS: '0' }).autoBuildVariants).toBe(false);
    expect(() => loadConfig({ EDGEFLEET_AUTO_BUILD_VARIANTS: 'yes' })).toThrow('EDGEFLEET_AUTO_BUILD_VARIANTS="yes"');
    expect(loadConfig({ EDGEFLEET_HUB_MAX_CALIBRATION_BYTES: '1000' }).maxCalibrationBytes).toBe(1000);
  });
});
