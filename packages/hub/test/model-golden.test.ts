import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeGoldenFile,
  deviceTopic,
  generateSigningKeyPair,
  goldenInputTensors,
  isEdgefleetError,
  MAX_GOLDEN_ELEMENTS,
  verifyManifest,
  type DesiredMessage,
  type EnrollResponse,
  type ModelVersion,
} from '@edgefleet/shared';
import { buildMlp, encodeModel, GraphBuilder, int64Tensor } from '@edgefleet/shared/onnx';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { createArtifactStore } from '../src/models/artifact-store.js';
import { createModelRepo } from '../src/models/model-repo.js';
import { createModelService } from '../src/models/model-service.js';
import { createVariantRepo } from '../src/models/variant-repo.js';
import { openDatabase } from '../src/store/database.js';
import { connectDevice, enrollDevice, eventually, useTestHub } from './hub-harness.js';
import { imageModel } from '../../../test/support/image-model.js';
import { identityModel } from './test-models.js';

/** `inputs` inputs x<i>[1, n] → Identity → y<i>: golden tensors that are each small and together large. */
function manyInputsModel(inputs: number, n: number): Uint8Array {
  const g = new GraphBuilder('many');
  for (let i = 0; i < inputs; i++) {
    const x = g.input(`x${i}`, 'FP32', [1, n]);
    g.node('Identity', [x], {}, `y${i}`);
    g.output(`y${i}`, 'FP32', [1, n]);
  }
  return encodeModel(g.build());
}

/** x[1, 1] → Expand to [1, n]: a tiny file whose declared output is n FP32 values. */
function expandModel(n: number): Uint8Array {
  const g = new GraphBuilder('expand');
  const x = g.input('x', 'FP32', [1, 1]);
  const shape = g.initializer(int64Tensor('shape', [2], [1, n]));
  g.node('Expand', [x, shape], {}, 'y');
  g.output('y', 'FP32', [1, n]);
  return encodeModel(g.build());
}

const basic = (d: EnrollResponse) => `Basic ${Buffer.from(`${d.deviceId}:${d.secret}`).toString('base64')}`;

describe('model uploads that would exhaust the hub', () => {
  const t = useTestHub();
  let device: EnrollResponse;
  const artifactFiles = () => readdirSync(join(t.dataDir, 'artifacts')).filter((f) => !f.startsWith('.'));

  beforeAll(async () => {
    device = await enrollDevice(t);
  });

  it('refuses a tiny (114-byte) model with a [1, 300000000] input with 400 naming the bound, before allocating; the hub keeps serving', async () => {
    const huge = identityModel(300_000_000);
    expect(huge.byteLength).toBeLessThan(200);
    const res = await t.api<{ error: string; code: string }>('POST', '/api/v1/models/huge/versions?version=1', huge);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('INVALID_MODEL');
    expect(res.body.error).toMatch(/input x of shape \[1,300000000\] FP32 needs 300000000 elements/);
    expect(res.body.error).toContain(`limited to ${MAX_GOLDEN_ELEMENTS} elements`);
    expect(artifactFiles()).toEqual([]);
    // Still serving, and still accepting good models.
    const ok = await t.api('POST', '/api/v1/models/small/versions?version=1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }));
    expect(ok.status).toBe(201);
  });

  it('puts the golden tensors of a [1,3,640,640] model in an artifact: small response, small manifest, small desired', async () => {
    const res = await t.api<ModelVersion>('POST', '/api/v1/models/detector/versions?version=1', imageModel());
    expect(res.status).toBe(201);
    const responseBytes = JSON.stringify(res.body).length;
    expect(responseBytes).toBeLessThan(8 * 1024);
    const manifest = verifyManifest(res.body.manifest, t.hub.hubPublicKey);
    expect(manifest.golden.inputs).toEqual([]);
    expect(manifest.golden.outputs).toEqual([]);
    const ref = manifest.golden.ref!;
    expect(ref.size).toBeGreaterThan(3 * 640 * 640 * 4);
    expect(artifactFiles().sort()).toEqual(expect.arrayContaining([manifest.sha256, ref.sha256]));

    // The device's retained desired document, as the broker delivers it.
    const rollout = await t.api('POST', '/api/v1/rollouts', { model: 'detector', version: '1', target: { deviceIds: [device.deviceId] } });
    expect(rollout.status).toBe(201);
    const client = await connectDevice(t, device);
    try {
      let desired: Buffer | undefined;
      client.on('message', (_topic, payload) => (desired = payload));
      await client.subscribeAsync(deviceTopic(device.deviceId, 'desired'), { qos: 1 });
      const payload = await eventually(() => desired, 'the retained desired document');
      expect(payload.byteLength).toBeLessThan(8 * 1024);
      expect((JSON.parse(payload.toString()) as DesiredMessage).models[0]!.manifest.manifest.golden.ref).toEqual(ref);
    } finally {
      await client.endAsync();
    }

    // The assigned device downloads the golden file; it holds the seeded input and the model's output.
    const file = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${ref.sha256}`, { headers: { authorization: basic(device) } });
    expect(file.status).toBe(200);
    const golden = decodeGoldenFile(new Uint8Array(await file.arrayBuffer()));
    const [expectedInput] = goldenInputTensors(manifest.inputs);
    expect(golden.inputs[0]).toMatchObject({ name: 'image', datatype: 'FP32', shape: [1, 3, 640, 640] });
    expect(Buffer.from(golden.inputs[0]!.data.buffer).equals(Buffer.from(expectedInput!.data.buffer))).toBe(true);
    expect(golden.outputs[0]).toMatchObject({ name: 'feat', datatype: 'FP32', shape: [1, 2] });
  });

  it('refuses a model whose declared output is over the golden bound before running it: onnxruntime would allocate it outside any heap limit', async () => {
    // 2^40 FP32 values (4 TB): run, onnxruntime would try to allocate it; the declared shape says so first.
    const res = await t.api<{ error: string; code: string }>('POST', '/api/v1/models/wide-out/versions?version=1', expandModel(2 ** 40));
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('INVALID_MODEL');
    expect(res.body.error).toMatch(/output y of shape \[1,1099511627776\] has 1099511627776 elements/);
    expect(res.body.error).toContain(`limited to ${MAX_GOLDEN_ELEMENTS} elements`);
  });

  it('keeps the manifest small when many golden tensors are each under the inline size but large together', async () => {
    // 16 inputs and 16 outputs of 60 KB each: 1.9 MB of golden data, none of it over 64 KB alone.
    const res = await t.api<ModelVersion>('POST', '/api/v1/models/many/versions?version=1', manyInputsModel(16, 15_000));
    expect(res.status).toBe(201);
    expect(JSON.stringify(res.body).length).toBeLessThan(16 * 1024);
    const manifest = verifyManifest(res.body.manifest, t.hub.hubPublicKey);
    expect(manifest.golden.inputs).toEqual([]);
    expect(manifest.golden.ref?.size).toBeGreaterThan(32 * 15_000 * 4);
  });
});

describe('model check worker under a memory limit', () => {
  it('turns a check worker that runs out of heap into a 400-class upload error, stores nothing, and the process lives', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ef-model-oom-'));
    const db = openDatabase(join(dir, 'hub.db'), pino({ level: 'silent' }));
    try {
      const artifacts = createArtifactStore(dir);
      const service = createModelService({
        repo: createModelRepo(db),
        variants: createVariantRepo(db),
        artifacts,
        privateKeyPem: generateSigningKeyPair().privateKeyPem,
        log: pino({ level: 'silent' }),
        // Far below what loading onnxruntime needs: the worker dies of heap exhaustion.
        checkLimits: { maxOldGenerationSizeMb: 4, maxYoungGenerationSizeMb: 1 },
      });
      const err = await service.upload('m', '1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 })).catch((e: unknown) => e);
      expect(isEdgefleetError(err) && err.code).toBe('INVALID_MODEL');
      expect((err as Error).message).toMatch(/ran out of memory \(worker heap limited to 4 MB\)/);
      expect(readdirSync(artifacts.dir).filter((f) => !f.startsWith('.'))).toEqual([]);
      expect(service.list()).toEqual([]);
    } finally {
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
