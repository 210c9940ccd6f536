import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DriftBaseline,
  INLINE_BASELINE_BYTES,
  MIN_BASELINE_SAMPLES,
  deviceTopic,
  joinBinaryBody,
  seededRandom,
  verifyManifest,
  type BaselineInfo,
  type EnrollResponse,
  type ModelVersion,
  type VariantDetail,
  type VariantList,
} from '@edgefleet/shared';
import { buildMlp, encodeModel, GraphBuilder } from '@edgefleet/shared/onnx';
import { Compile } from 'typebox/compile';
import { describe, expect, it } from 'vitest';
import { sampleModel } from '../../../test/support/models.js';
import { manifestEntryOf } from '../src/drift/baseline-service.js';
import { connectDevice, enrollDevice, eventually, useTestHub, type TestHub } from './hub-harness.js';

const FEATURES = 30;
const TABULAR = buildMlp({ name: 'tab', inputSize: FEATURES, hidden: [16], outputSize: 3, seed: 3 });
const checkBaseline = Compile(DriftBaseline);

/** `count` samples of `width` values, N(offset, 1)-ish, as a JSON calibration-style body for input `name`. */
function reference(count: number, width: number, opts: { seed?: number; offset?: number; name?: string; shape?: number[] } = {}) {
  const rand = seededRandom(opts.seed ?? 1);
  const data = Array.from({ length: count * width }, () => (opts.offset ?? 0) + (rand() + rand() + rand() - 1.5) * 2);
  return { inputs: [{ name: opts.name ?? 'input', datatype: 'FP32', shape: opts.shape ?? [count, width], data }] };
}

async function upload(t: TestHub, name: string, version: string, bytes: Uint8Array): Promise<ModelVersion> {
  const res = await t.api<ModelVersion>('POST', `/api/v1/models/${name}/versions?version=${version}`, bytes);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function putReference(t: TestHub, name: string, version: string, body: unknown): Promise<BaselineInfo> {
  const res = await t.api<BaselineInfo>('PUT', `/api/v1/models/${name}/versions/${version}/reference`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

const fp32Of = async (t: TestHub, name: string, version: string) => (await t.api<VariantDetail>('GET', `/api/v1/models/${name}/versions/${version}/variants/fp32`)).body;
const artifactPath = (t: TestHub, sha: string) => join(t.dataDir, 'artifacts', sha);

describe('drift baselines: reference upload, build, artifact and signed manifests', () => {
  const t = useTestHub();

  it('builds a tabular baseline from reference data and signs it into every manifest of the version', async () => {
    await upload(t, 'tab', '1', TABULAR);
    expect((await t.api<{ error: string }>('GET', '/api/v1/models/tab/versions/1/baseline')).body.error).toMatch(/tab@1 has no drift baseline: upload reference data/);
    const info = await putReference(t, 'tab', '1', reference(600, FEATURES));
    expect(info).toMatchObject({ model: 'tab', version: '1', source: 'reference', samples: 600 });
    expect(info.features.map((f) => f.name)).toEqual(Array.from({ length: FEATURES }, (_, i) => `input[${i}]`));
    expect(info.features.every((f) => f.kind === 'numeric' && f.bins === 12)).toBe(true);
    // The class output is categorical over every class (3) plus "other".
    expect(info.outputs).toEqual([{ name: 'probs.class', kind: 'categorical', bins: 4 }]);
    expect((await t.api('GET', '/api/v1/models/tab/versions/1/baseline')).body).toEqual(info);

    const json = readFileSync(artifactPath(t, info.sha256));
    const baseline = JSON.parse(json.toString('utf8')) as DriftBaseline;
    expect(checkBaseline.Check(baseline)).toBe(true);
    expect(json.byteLength).toBe(info.size);
    expect(baseline.extraction).toEqual({ inputs: [{ tensor: 'input', mode: 'elements', size: FEATURES }], outputs: [{ tensor: 'probs', mode: 'class', size: 3 }] });
    expect((baseline.outputs[0] as { categories: number[] }).categories).toEqual([0, 1, 2]);
    console.log(`30-feature tabular baseline: ${info.size} bytes of JSON (inline under ${INLINE_BASELINE_BYTES}), 500-sample window summary ${info.summaryBytes} bytes`);
    expect(info.summaryBytes).toBeGreaterThan(100);
    expect(info.summaryBytes).toBeLessThan(4096);

    const fp32 = await fp32Of(t, 'tab', '1');
    const manifest = verifyManifest(fp32.manifest!, t.hub.hubPublicKey);
    expect(manifest.drift).toEqual({ sha256: info.sha256, size: info.size, baseline });
    const version = (await t.api<ModelVersion>('GET', '/api/v1/models/tab/versions/1')).body;
    expect(verifyManifest(version.manifest, t.hub.hubPublicKey).drift?.sha256).toBe(info.sha256);
  });

  it('lets a device that was given the version download the baseline, and no other device', async () => {
    const info = (await t.api<BaselineInfo>('GET', '/api/v1/models/tab/versions/1/baseline')).body;
    const given: EnrollResponse = await enrollDevice(t, { name: 'given' });
    const other: EnrollResponse = await enrollDevice(t, { name: 'other' });
    expect((await t.api('POST', '/api/v1/rollouts', { model: 'tab', version: '1', target: { deviceIds: [given.deviceId] } })).status).toBe(201);
    const download = (d: EnrollResponse) =>
      fetch(`${t.hub.apiUrl}/api/v1/artifacts/${info.sha256}`, { headers: { authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.secret}`).toString('base64')}` } });
    const res = await eventually(async () => {
      const r = await download(given);
      return r.status === 200 && r;
    }, 'the baseline download of the device the version was given');
    expect(checkBaseline.Check(JSON.parse(await res.text()))).toBe(true);
    const refused = await download(other);
    await refused.arrayBuffer();
    expect(refused.status).toBe(404);
  });

  it('replaces the baseline when the reference is replaced: manifests re-signed, unused files removed', async () => {
    const before = (await t.api<BaselineInfo>('GET', '/api/v1/models/tab/versions/1/baseline')).body;
    await upload(t, 'tab', '2', TABULAR);
    const first = await putReference(t, 'tab', '2', reference(300, FEATURES, { seed: 5 }));
    const files = readdirSync(join(t.dataDir, 'artifacts')).length;
    const second = await putReference(t, 'tab', '2', reference(300, FEATURES, { seed: 6, offset: 3 }));
    // A new reference file and baseline in, the replaced ones out.
    expect(readdirSync(join(t.dataDir, 'artifacts')).length).toBe(files);
    expect(second.sha256).not.toBe(first.sha256);
    expect(second.samples).toBe(300);
    expect(verifyManifest((await fp32Of(t, 'tab', '2')).manifest!, t.hub.hubPublicKey).drift?.sha256).toBe(second.sha256);
    // No device was given tab@2: the first baseline's file goes with it; tab@1 (rolled out) keeps its own.
    expect(existsSync(artifactPath(t, first.sha256))).toBe(false);
    expect(existsSync(artifactPath(t, second.sha256))).toBe(true);
    expect(existsSync(artifactPath(t, before.sha256))).toBe(true);
  });

  it('signs the baseline into variants built after it', async () => {
    const info = (await t.api<BaselineInfo>('GET', '/api/v1/models/tab/versions/2/baseline')).body;
    expect((await t.api('POST', '/api/v1/models/tab/versions/2/variants', { profiles: ['fp16'] })).status).toBe(202);
    const list = await eventually(async () => {
      const { body } = await t.api<VariantList>('GET', '/api/v1/models/tab/versions/2/variants');
      return body.build && (body.build.state === 'done' || body.build.state === 'failed') && body;
    }, 'the fp16 build of tab@2', 60_000);
    expect(list.build?.state).toBe('done');
    const fp16 = (await t.api<VariantDetail>('GET', '/api/v1/models/tab/versions/2/variants/fp16')).body;
    expect(fp16.state, fp16.reason ?? '').toBe('accepted');
    expect(verifyManifest(fp16.manifest!, t.hub.hubPublicKey).drift?.sha256).toBe(info.sha256);
  }, 90_000);

  it('summarises image inputs per channel and by brightness', async () => {
    await upload(t, 'img', '1', sampleModel());
    const info = await putReference(t, 'img', '1', reference(100, 3 * 16 * 16, { name: 'image', shape: [100, 3, 16, 16], offset: 0.5 }));
    expect(info.features.map((f) => f.name)).toEqual(['image.c0.mean', 'image.c0.std', 'image.c1.mean', 'image.c1.std', 'image.c2.mean', 'image.c2.std', 'image.brightness']);
    expect(info.outputs).toEqual([{ name: 'probs.class', kind: 'categorical', bins: 5 }]);
  });

  it('builds from calibration data when the version has no reference data, and reference data wins', async () => {
    await upload(t, 'cal', '1', TABULAR);
    expect((await t.api('PUT', '/api/v1/models/cal/versions/1/calibration', reference(200, FEATURES, { seed: 9 }))).status).toBe(200);
    const fromCalibration = await eventually(async () => {
      const res = await t.api<BaselineInfo>('GET', '/api/v1/models/cal/versions/1/baseline');
      return res.status === 200 && res.body;
    }, 'the baseline from calibration data');
    expect(fromCalibration).toMatchObject({ source: 'calibration', samples: 200 });
    expect(verifyManifest((await fp32Of(t, 'cal', '1')).manifest!, t.hub.hubPublicKey).drift?.sha256).toBe(fromCalibration.sha256);

    const fromReference = await putReference(t, 'cal', '1', reference(250, FEATURES, { seed: 10 }));
    expect(fromReference).toMatchObject({ source: 'reference', samples: 250 });
    // A later calibration upload leaves it: builds of a version run in order, so the next PUT comes after its turn.
    expect((await t.api('PUT', '/api/v1/models/cal/versions/1/calibration', reference(200, FEATURES, { seed: 11 }))).status).toBe(200);
    const again = await putReference(t, 'cal', '1', reference(250, FEATURES, { seed: 10 }));
    expect(again).toMatchObject({ source: 'reference', sha256: fromReference.sha256 });
  });

  it('builds no baseline from calibration data under MIN_BASELINE_SAMPLES: logged, the calibration upload stands', async () => {
    await upload(t, 'few', '1', TABULAR);
    expect((await t.api('PUT', '/api/v1/models/few/versions/1/calibration', reference(MIN_BASELINE_SAMPLES - 1, FEATURES))).status).toBe(200);
    const line = await eventually(() => t.logs.find((l) => l.model === 'few' && typeof l.msg === 'string' && l.msg.startsWith('no drift baseline from the calibration data')), 'the skipped build logged');
    expect(line).toMatchObject({ samples: 99, minimum: 100, msg: expect.stringMatching(/too few samples/) });
    expect((await t.api('GET', '/api/v1/models/few/versions/1/baseline')).status).toBe(404);
  });

  it('refuses bad reference data with 400 naming the problem, stores nothing and keeps serving', async () => {
    await upload(t, 'bad', '1', TABULAR);
    const refused = async (body: unknown, pattern: RegExp, headers?: Record<string, string>) => {
      const res = await t.api<{ error: string; code: string }>('PUT', '/api/v1/models/bad/versions/1/reference', body, headers);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error).toMatch(pattern);
    };
    await refused(reference(10, FEATURES, { name: 'pixels' }), /"pixels"/);
    await refused(reference(10, FEATURES - 1), /input "input".*\[-1,30\]/);
    const values = Float32Array.from({ length: 10 * FEATURES }, (_, i) => (i === 7 ? Number.NaN : i));
    const header = { inputs: [{ name: 'input', datatype: 'FP32', shape: [10, FEATURES], parameters: { binary_data_size: values.byteLength } }] };
    const { body, headerLength } = joinBinaryBody(header, [new Uint8Array(values.buffer)]);
    await refused(new Uint8Array(body), /tensor "input" holds NaN at element 7 \(sample 0\)/, { 'inference-header-content-length': String(headerLength) });
    await refused({ inputs: [] }, /input/);
    await refused('not json at all', /not an inference request|not valid JSON/);
    await refused(reference(MIN_BASELINE_SAMPLES - 1, FEATURES), /reference data for bad@1 holds 99 samples: at least 100 expected/);
    expect((await t.api('GET', '/api/v1/models/bad/versions/1/baseline')).status).toBe(404);
    expect((await t.api('GET', '/api/v1/health')).status).toBe(200);
  });

  it('refuses reference data on which the model has no finite outputs with 400 naming why', async () => {
    // y = 1 / x: zeros in the reference make the output infinite.
    const g = new GraphBuilder('reciprocal');
    const x = g.input('x', 'FP32', [-1, 1]);
    g.node('Reciprocal', [x], {}, 'y');
    g.output('y', 'FP32', [-1, 1]);
    await upload(t, 'recip', '1', encodeModel(g.build()));
    const body = { inputs: [{ name: 'x', datatype: 'FP32', shape: [100, 1], data: new Array(100).fill(0) }] };
    const res = await t.api<{ error: string }>('PUT', '/api/v1/models/recip/versions/1/reference', body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/no drift baseline for recip@1 from its reference data: reference column "y\[0\]" holds Infinity: finite values expected/);
    expect((await t.api('GET', '/api/v1/models/recip/versions/1/baseline')).status).toBe(404);
  });

  it('puts the baseline inline in the manifest only up to INLINE_BASELINE_BYTES', () => {
    const baseline = { features: [], outputs: [], reference: { window: { start: 0, end: 0 }, baseline: 0, counts: [], sums: [], missing: [] } };
    const sha256 = 'a'.repeat(64);
    expect(manifestEntryOf({ sha256, size: INLINE_BASELINE_BYTES }, baseline)).toEqual({ sha256, size: INLINE_BASELINE_BYTES, baseline });
    expect(manifestEntryOf({ sha256, size: INLINE_BASELINE_BYTES + 1 }, baseline)).toEqual({ sha256, size: INLINE_BASELINE_BYTES + 1 });
  });
});

describe('drift baselines whose artifact is missing or damaged', () => {
  // Evaluation only when asked (POST …/evaluations), so the records seen are the ones this test chose.
  const t = useTestHub({ config: { driftEvaluateCron: '0 0 0 1 1 *' } });

  it('turns drift off for that version only: logged once, its records dropped or skipped, the others evaluated', async () => {
    await upload(t, 'dmg', '1', TABULAR);
    await upload(t, 'dmg', '2', TABULAR);
    await upload(t, 'dmg', '3', TABULAR);
    const missing = await putReference(t, 'dmg', '1', reference(MIN_BASELINE_SAMPLES, FEATURES, { seed: 21 }));
    const good = await putReference(t, 'dmg', '2', reference(500, FEATURES, { seed: 22 }));
    const damaged = await putReference(t, 'dmg', '3', reference(MIN_BASELINE_SAMPLES, FEATURES, { seed: 23 }));
    const stored = (info: BaselineInfo) => checkBaseline.Parse(JSON.parse(readFileSync(artifactPath(t, info.sha256), 'utf8')));
    const summaries = { 1: stored(missing).reference, 2: stored(good).reference, 3: stored(damaged).reference };
    const creds = await enrollDevice(t);
    let seq = 1;
    const publish = async (version: 1 | 2 | 3) => {
      const client = await connectDevice(t, creds);
      await client.publishAsync(deviceTopic(creds.deviceId, 'drift'), JSON.stringify({ v: 1, seq: seq++, ts: Date.now(), model: 'dmg', version: String(version), summary: summaries[version] }), { qos: 1 });
      await client.endAsync();
    };
    const drops = () => t.hub.ingestCounters().driftRejected.unknownVersion;
    // Records of versions 1 and 3 stored while their baselines were sound: evaluation meets them later.
    await publish(1);
    await publish(3);
    t.hub.flushIngest();
    expect(drops()).toBe(0);

    // A fresh hub reads the baselines anew: one file gone, one overwritten.
    await t.restart();
    rmSync(artifactPath(t, missing.sha256));
    writeFileSync(artifactPath(t, damaged.sha256), '{"features": "not a baseline"');
    await publish(1);
    await publish(3);
    await publish(1);
    expect(drops()).toBe(3);
    await publish(2);
    const run = await t.api<{ summaries: number; evaluations: number }>('POST', '/api/v1/drift/evaluations');
    expect(run.status, JSON.stringify(run.body)).toBe(200);
    // Only version 2's record is scored: its device window and the fleet's (500 samples each).
    expect(run.body).toMatchObject({ summaries: 1, evaluations: 2 });
    const lines = t.logs.filter((l) => l.msg === 'drift baseline artifact missing or damaged: drift is off for this version until its reference is uploaded again');
    expect(lines.map((l) => [l.version, l.problem])).toEqual([
      ['1', expect.stringMatching(/cannot be read: ENOENT/)],
      ['3', expect.stringMatching(/cannot be read: .*JSON/)],
    ]);
    expect((await t.api('GET', '/api/v1/health')).status).toBe(200);
    // Uploading the reference again brings drift back for the version.
    await putReference(t, 'dmg', '1', reference(MIN_BASELINE_SAMPLES, FEATURES, { seed: 24 }));
    expect((await t.api('GET', '/api/v1/models/dmg/versions/1/baseline')).status).toBe(200);
  }, 60_000);
});
