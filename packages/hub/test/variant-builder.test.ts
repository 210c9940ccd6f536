import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { goldenInputTensors, type TypedTensor } from '@edgefleet/shared';
import { decodeModel, encodeModel, GraphBuilder, readSignature } from '@edgefleet/shared/onnx';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { fixtureModelUrl, fixtureSamples } from '../../../test/fixtures/onnx/fixture-data.mjs';
import { INT8_STATIC_NEEDS_CALIBRATION } from '../src/compression/profiles.js';
import { runVariantBuild, type BuildProgress, type BuiltVariant, type CalibrationSet, type VariantBuildJob, type VariantBuildLimits } from '../src/compression/variant-builder.js';

/** A fresh copy each time: the build transfers the model's buffer to its worker. */
const mlp = (): Uint8Array => new Uint8Array(readFileSync(fixtureModelUrl('torch-mlp')));
const cnn = (): Uint8Array => new Uint8Array(readFileSync(fixtureModelUrl('torch-cnn')));
const goldenInputs = (): TypedTensor[] => goldenInputTensors(readSignature(decodeModel(mlp())).inputs);

function calibrationSet(count: number): CalibrationSet {
  const { input, dims, labels } = fixtureSamples('torch-mlp', count, 16);
  return { samples: count, inputs: [{ name: 'input', datatype: 'FP32', shape: dims, data: input }], labels: labels! };
}

/** Few timing runs: the tests check that latency is measured, not what it is. */
function job(over: Partial<VariantBuildJob>): VariantBuildJob {
  return {
    model: mlp(),
    goldenInputs: goldenInputs(),
    profiles: ['fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned'],
    budget: {},
    pruneSparsity: 0.5,
    calibrationMethod: 'auto',
    timing: { runs: 3, warmup: 1 },
    ...over,
  };
}

async function build(j: VariantBuildJob, limits?: VariantBuildLimits) {
  const progress: BuildProgress[] = [];
  const variants: BuiltVariant[] = [];
  const run = runVariantBuild(j, { ...(limits ? { limits } : {}), onProgress: (p) => progress.push(p), onVariant: (v) => variants.push(v) });
  await run.done;
  return { progress, variants };
}

const EVALUATION_FIELDS = [
  'samples', 'data', 'agreement', 'accuracy', 'fp32Accuracy', 'maxAbsError', 'meanAbsError', 'relativeError',
  'sizeRatio', 'transferRatio', 'latencyMs', 'fp32LatencyMs', 'latencyRatio', 'quantizedWeightShare', 'notes',
];

describe('variant build worker', () => {
  it('builds, evaluates and compresses every profile of the PyTorch MLP on held-out calibration data', async () => {
    const { progress, variants } = await build(job({ calibration: calibrationSet(160) }));

    expect(variants.map((v) => v.profile)).toEqual(['fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned']);
    expect(variants.filter((v) => v.state === 'failed')).toEqual([]);
    for (const v of variants) {
      const e = v.evaluation!;
      expect(Object.keys(e).sort()).toEqual([...EVALUATION_FIELDS].sort());
      expect(e).toMatchObject({ samples: 80, data: 'calibration' });
      // Pruning half of every hidden weight flips about one sample in ten on this MLP; the rest flip at most one or two.
      expect(e.agreement).toBeGreaterThan(0.8);
      expect(e.accuracy).not.toBeNull();
      expect(e.fp32Accuracy).not.toBeNull();
      expect(e.latencyRatio).toBeGreaterThan(0);
      expect(e.sizeRatio).toBeLessThan(0.6);
      expect(e.transferRatio).toBeLessThanOrEqual(e.sizeRatio);
      expect(v.tolerance!.atol).toBeGreaterThanOrEqual(1e-4);
      expect(v.goldenOutputs!.map((t) => t.shape)).toEqual([[1, 10]]);
      if (v.state === 'rejected') expect(v.reason).toMatch(/required|allowed/);
    }
    const byProfile = Object.fromEntries(variants.map((v) => [v.profile, v]));
    expect(byProfile['fp16']!.evaluation!.quantizedWeightShare).toBeNull();
    for (const p of ['int8-dynamic', 'int8-static', 'int8-weights', 'pruned']) expect(byProfile[p]!.evaluation!.quantizedWeightShare).toBeGreaterThan(0.9);
    expect(byProfile['int8-static']!.evaluation!.notes.join('\n')).toMatch(/calibration: (minmax|percentile) chosen by auto/);
    expect(byProfile['pruned']!.transfer?.encoding).toBe('zstd');
    expect(byProfile['fp16']!.state).toBe('accepted');

    for (const v of variants.filter((x) => x.state === 'accepted')) {
      const session = await ort.InferenceSession.create(v.bytes!);
      const out = await session.run({ input: new ort.Tensor('float32', new Float32Array(256), [1, 256]) });
      expect(out[session.outputNames[0]!]!.dims).toEqual([1, 10]);
      await session.release();
    }

    const done = progress.map((p) => p.done);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect(progress.at(-1)).toEqual({ done: 5, total: 5, profile: null, step: null });
    expect(new Set(progress.map((p) => p.step))).toEqual(new Set(['transform', 'evaluate', 'compress', null]));
  });

  it('rejects int8-static without calibration data and evaluates the rest on generated samples', async () => {
    const { variants } = await build(job({ profiles: ['int8-static', 'int8-weights'] }));
    expect(variants[0]).toEqual({ profile: 'int8-static', state: 'rejected', reason: INT8_STATIC_NEEDS_CALIBRATION });
    expect(variants[1]!.evaluation).toMatchObject({ data: 'generated', samples: 64, accuracy: null });
  });

  it('rejects an int8 profile that quantized no weight: it would be fp32 with extra nodes', async () => {
    const g = new GraphBuilder('no-weights');
    const x = g.input('x', 'FP32', [-1, 8]);
    g.node('Relu', [x], {}, 'y');
    g.output('y', 'FP32', [-1, 8]);
    const model = encodeModel(g.build());
    const { variants } = await build(job({ model, goldenInputs: goldenInputTensors(readSignature(decodeModel(model)).inputs), profiles: ['int8-weights', 'fp16'] }));
    expect(variants[0]).toMatchObject({ profile: 'int8-weights', state: 'rejected' });
    expect(variants[0]!.reason).toMatch(/int8-weights quantized none of the Conv\/MatMul\/Gemm weights.*nothing to gain over fp32/);
    expect(variants[1]).toMatchObject({ profile: 'fp16', state: 'accepted' });
  });

  it('rejects lossy variants against a budget that allows no loss, naming the rule and its numbers', async () => {
    const { variants } = await build(job({ profiles: ['int8-dynamic', 'fp16'], budget: { minAgreement: 1, maxRelativeError: 1e-6 } }));
    for (const v of variants) {
      expect(v.state).toBe('rejected');
      expect(v.reason).toMatch(/relative error [\d.e-]+ > 0\.000001 allowed \(mean \|variant − fp32\| \/ mean \|fp32\|, 64 generated samples\)/);
      expect(v.bytes).toBeDefined();
    }
  });

  it('rejects `done` naming memory when the build process outgrows its heap limit, and the hub goes on', async () => {
    const limits = { maxOldGenerationSizeMb: 8 };
    await expect(build(job({ profiles: ['int8-weights'] }), limits)).rejects.toThrow(/ran out of memory \(heap limited to 8 MB/);
    const { variants } = await build(job({ profiles: ['int8-weights'] }));
    expect(variants[0]!.state).toBe('accepted');
  });

  it('rejects `done` naming decoding when the model is not ONNX', async () => {
    // A small Buffer lives in Node's shared pool: it must be copied for the worker, not detached.
    const notOnnx = Buffer.from('this is not a model, just text pretending to be one');
    await expect(build(job({ model: notOnnx, profiles: ['fp16'] }))).rejects.toThrow(/variant build failed: not an ONNX model: protobuf decoding failed/);
    expect(notOnnx.toString()).toMatch(/^this is not a model/);
  });

  it('cancels a running build', async () => {
    const run = runVariantBuild(job({ calibration: calibrationSet(160) }), { onProgress: () => {}, onVariant: () => {} });
    await run.cancel();
    await expect(run.done).rejects.toThrow(/cancelled/);
  });

  it('cancels builds mid-onnxruntime-run at ten different points and this process lives on', async () => {
    // Killing a worker thread while onnxruntime ran in it aborted the whole process (Napi::Error, exit 134).
    // The CNN keeps onnxruntime busy long enough after each message for a cancel to land inside it.
    const model = cnn();
    const cnnJob = () => job({ model: model.slice(), goldenInputs: goldenInputTensors(readSignature(decodeModel(model)).inputs), profiles: ['fp16', 'int8-dynamic', 'int8-weights', 'pruned'], timing: { runs: 20, warmup: 2 } });
    for (let point = 0; point < 10; point++) {
      let seen = 0;
      let reached!: () => void;
      const atPoint = new Promise<void>((resolve) => (reached = resolve));
      const run = runVariantBuild(cnnJob(), {
        // The points are progress messages; 'evaluate' (odd points here) opens sessions and runs onnxruntime right after it is sent.
        onProgress: () => ++seen > point && reached(),
        onVariant: () => {},
      });
      await atPoint;
      await run.cancel();
      await expect(run.done).rejects.toThrow('the variant build was cancelled');
    }
    // Still here, and a build after all that runs to its end.
    const { variants } = await build(job({ profiles: ['fp16'] }));
    expect(variants[0]!.state).toBe('accepted');
  });

  it('names a build process that dies from a signal', async () => {
    const run = runVariantBuild(job({ calibration: calibrationSet(160), timing: { runs: 200, warmup: 5 } }), {
      onProgress: () => {},
      onVariant: () => {},
    });
    // The build process is this test process's child running the build entry.
    const pids = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'variant-build-worker.js']).toString().trim().split('\n');
    expect(pids).toHaveLength(1);
    process.kill(Number(pids[0]), 'SIGKILL');
    await expect(run.done).rejects.toThrow(/variant build process was killed by SIGKILL/);
  });
});
