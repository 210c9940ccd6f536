import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarySamples, type DriftBaseline } from '@edgefleet/shared';
import { buildConvNet, buildMlp, decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { certainty } from '../src/inference/drift-tracker.js';
import { createModelRuntime, type PooledModel, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import type { ModelFile, Tensor } from '../src/inference/types.js';
import { baselineFor, expectedSummary, type Served } from './support/drift-baseline.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

// Drift tracking on real onnxruntime workers: every served row lands in exactly one worker's window,
// batched or not, and takeDrift() merges them.

const INPUT = 16;

async function modelFile(dir: string, name: string, bytes: Uint8Array): Promise<ModelFile> {
  const path = join(dir, `${name}.onnx`);
  await writeFile(path, bytes);
  return { name, version: '1', sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) };
}

function rows(seed: number, batch: number, spread = 2): Tensor {
  const data = new Float32Array(batch * INPUT);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed * 7.3 + i * 0.91) * spread;
  return { name: 'input', datatype: 'FP32', shape: [batch, INPUT], data };
}

/** Infers on a copy (the runtime transfers input buffers away) and keeps what was served. */
async function serve(model: PooledModel, input: Tensor, log: Served[]): Promise<Tensor[]> {
  const outputs = await model.infer([{ ...input, data: input.data.slice() }]);
  log.push({ inputs: [{ name: input.name, dims: input.shape, data: input.data }], outputs: outputs.map((o) => ({ name: o.name, dims: o.shape, data: o.data })) });
  return outputs;
}

describe('drift tracking in inference workers', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let mlp: ModelFile;
  let baseline: DriftBaseline;
  const runtimes: PooledModelRuntime[] = [];
  const runtime = (opts: Partial<Parameters<typeof createModelRuntime>[0]> = {}) => {
    const r = createModelRuntime({ workers: 2, threads: 1, logger: silentLogger, ...opts });
    runtimes.push(r);
    return r;
  };

  beforeAll(async () => {
    dir = await tempDir('drift');
    mlp = await modelFile(dir.path, 'mlp', buildMlp({ inputSize: INPUT, hidden: [32], outputSize: 4 }));
    // The reference: the model's own outputs on 300 rows, as the hub builds it from calibration data.
    const reference: Served[] = [];
    const plain = await runtime({ drift: false }).load(mlp);
    for (let i = 0; i < 30; i++) await serve(plain, rows(500 + i, 10), reference);
    baseline = baselineFor(mlp, reference);
  });

  afterAll(async () => {
    await Promise.all(runtimes.map((r) => r.stop()));
    await dir.remove();
  });

  it('sums to exactly the served rows, batched or not, with the counts computed directly; a second take starts empty', async () => {
    const rt = runtime({ workers: 1 }); // one worker, so a burst queues behind it and is batched
    const model = await rt.load({ ...mlp, drift: baseline });
    const served: Served[] = [];
    for (let i = 0; i < 10; i++) await serve(model, rows(i, 1 + (i % 4)), served); // batch sizes 1–4 per request
    await Promise.all(Array.from({ length: 48 }, (_, i) => serve(model, rows(100 + i, 1 + (i % 3)), served)));
    expect(model.stats().batches).toBeGreaterThan(0);
    const window = await model.takeDrift();
    const expected = expectedSummary(mlp, baseline, served);
    const n = served.reduce((s, r) => s + r.inputs[0]!.dims[0]!, 0);
    expect(summarySamples(baseline, window!.summary!)).toBe(n);
    expect(window!.summary!.counts).toEqual(expected.counts);
    expect(window!.summary!.sums).toEqual(expected.sums);
    expect(window!.summary!.missing).toEqual(expected.missing);
    expect(window!.samples).toEqual([]);
    expect(await model.takeDrift()).toEqual({ summary: null, samples: [] });
  });

  it('merges the windows of several workers', async () => {
    const model = await runtime({ workers: 2 }).load({ ...mlp, drift: baseline });
    const served: Served[] = [];
    await Promise.all(Array.from({ length: 40 }, (_, i) => serve(model, rows(200 + i, 2), served)));
    const window = await model.takeDrift();
    expect(window!.summary!.counts).toEqual(expectedSummary(mlp, baseline, served).counts);
    expect(summarySamples(baseline, window!.summary!)).toBe(80);
  });

  it('tracks nothing with drift off or without a baseline', async () => {
    const off = await runtime({ drift: false }).load({ ...mlp, drift: baseline });
    const bare = await runtime().load(mlp);
    for (const model of [off, bare]) {
      await model.infer([rows(1, 2)]);
      expect(await model.takeDrift()).toBeNull();
    }
  });

  it('keeps the most uncertain rows as hard examples and a bounded random choice', async () => {
    const probe: Served[] = [];
    const plain = await runtime({ drift: false }).load(mlp);
    const requests = Array.from({ length: 40 }, (_, i) => rows(300 + i, 1, 0.3));
    for (const r of requests) await serve(plain, r, probe);
    const out = new Float64Array(2);
    const margins = probe.map((s) => (certainty(s.outputs[0]!.data as Float32Array, 0, 4, false, out), out[0]!)).sort((a, b) => a - b);
    const hardMargin = margins[10]!; // ten rows are below it
    const model = await runtime({ fieldSamples: { randomPerWindow: 3, hardPerWindow: 4, hardMargin } }).load({ ...mlp, drift: baseline });
    await Promise.all(requests.map((r) => serve(model, r, [])));
    const { samples } = (await model.takeDrift())!;
    const hard = samples.filter((s) => s.reason === 'hard');
    expect(samples.filter((s) => s.reason === 'random')).toHaveLength(3);
    expect(hard.map((s) => s.margin)).toEqual(margins.slice(0, 4));
    for (const s of samples) {
      expect(s.inputs[0]).toMatchObject({ name: 'input', datatype: 'FP32', shape: [1, INPUT] });
      expect(requests.some((r) => (r.data as Float32Array).every((v, i) => v === s.inputs[0]!.data[i]))).toBe(true);
    }
  });

  it('keeps working when a worker is restarted, also during a take', async () => {
    const model = await runtime({ workers: 2 }).load({ ...mlp, drift: baseline });
    await Promise.all(Array.from({ length: 20 }, (_, i) => model.infer([rows(i, 2)])));
    const [window] = await Promise.all([model.takeDrift(), model.restartWorker(0)]);
    expect(window).not.toBeNull(); // the restarted worker's part may be lost, the take still answers
    await eventually(() => model.stats().ready === 2, 'the restarted worker to be ready');
    const served: Served[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) => serve(model, rows(400 + i, 3), served)));
    const after = await model.takeDrift();
    expect(summarySamples(baseline, after!.summary!)).toBe(60);
    expect(after!.summary!.counts).toEqual(expectedSummary(mlp, baseline, served).counts);
  });

  it('tracks an image model by its summary features', async () => {
    const conv = await modelFile(dir.path, 'conv', buildConvNet({ channels: 3, size: 16, filters: [4, 8], classes: 5 }));
    const image = (seed: number, batch: number): Tensor => {
      const data = new Float32Array(batch * 3 * 16 * 16);
      for (let i = 0; i < data.length; i++) data[i] = 0.5 + 0.5 * Math.sin(seed * 3.1 + i * 0.37);
      return { name: 'image', datatype: 'FP32', shape: [batch, 3, 16, 16], data };
    };
    const reference: Served[] = [];
    const plain = await runtime({ drift: false }).load(conv);
    for (let i = 0; i < 20; i++) await serve(plain, image(i, 5), reference);
    const convBaseline = baselineFor(conv, reference);
    expect(convBaseline.extraction!.inputs[0]).toMatchObject({ mode: 'image', layout: 'nchw', size: 3 });
    const model = await runtime({ workers: 1 }).load({ ...conv, drift: convBaseline });
    const served: Served[] = [];
    await Promise.all(Array.from({ length: 12 }, (_, i) => serve(model, image(50 + i, 1 + (i % 2)), served)));
    const window = await model.takeDrift();
    expect(window!.summary!.counts).toEqual(expectedSummary(conv, convBaseline, served).counts);
    expect(window!.summary!.sums).toEqual(expectedSummary(conv, convBaseline, served).sums);
  });
});
