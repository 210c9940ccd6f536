import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgefleetError } from '@edgefleet/shared';
import { buildConvNet, buildMlp, decodeModel, encodeModel, GraphBuilder, int64Tensor, readSignature } from '@edgefleet/shared/onnx';
import { createModelRuntime, poolSize, type PooledModel, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import { validateInputs } from '../src/inference/tensor-signature.js';
import type { ModelFile, Tensor } from '../src/inference/types.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

async function modelFile(dir: string, name: string, bytes: Uint8Array, version = '1'): Promise<ModelFile> {
  const path = join(dir, `${name}-${version}.onnx`);
  await writeFile(path, bytes);
  return { name, version, sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) };
}

async function runDirect(path: string, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(path);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** x[batch,3] int64 + [10,20,30] → y int64: exercises a non-float datatype end to end. */
function int64Model(): Uint8Array {
  const g = new GraphBuilder('add-int64');
  const x = g.input('x', 'INT64', [-1, 3]);
  const c = g.initializer(int64Tensor('offset', [3], [10, 20, 30]));
  g.node('Add', [x, c], {}, 'y');
  g.output('y', 'INT64', [-1, 3]);
  return encodeModel(g.build());
}

const mlpBytes = buildMlp({ inputSize: 4, hidden: [16], outputSize: 3 });
// Slow enough (a large batch through convolutions) that a test can act while it runs.
const slowBytes = buildConvNet({ channels: 3, size: 64, filters: [32, 64, 64], classes: 4 });

function mlpInput(values: number[], batch = 1): Tensor {
  return { name: 'input', datatype: 'FP32', shape: [batch, 4], data: Float32Array.from(values) };
}

describe('validateInputs', () => {
  const specs = [{ name: 'image', datatype: 'FP32', shape: [-1, 3, 64, 64] }];
  const tensor = (over: Partial<Tensor>): Tensor => ({ name: 'image', datatype: 'FP32', shape: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64), ...over });
  const message = (inputs: Tensor[]) => {
    try {
      validateInputs(specs, inputs);
    } catch (err) {
      expect(err).toBeInstanceOf(EdgefleetError);
      expect((err as EdgefleetError).code).toBe('INVALID_TENSOR');
      return (err as Error).message;
    }
    return 'valid';
  };

  it('accepts a matching tensor with any batch size', () => {
    expect(message([tensor({ shape: [2, 3, 64, 64], data: new Float32Array(2 * 3 * 64 * 64) })])).toBe('valid');
  });
  it('names the expected signature for each kind of mismatch', () => {
    expect(message([tensor({ shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) })])).toBe('input "image" expects FP32 [-1,3,64,64], got FP32 [1,3,32,32]');
    expect(message([tensor({ datatype: 'INT32', data: new Int32Array(3 * 64 * 64) })])).toBe('input "image" expects FP32 [-1,3,64,64], got INT32 [1,3,64,64]');
    expect(message([tensor({ shape: [1, 3, 64] })])).toContain('expects FP32 [-1,3,64,64], got FP32 [1,3,64]');
    expect(message([tensor({ data: new Float32Array(5) })])).toBe(
      'input "image" expects FP32 [-1,3,64,64], got shape [1,3,64,64] (12288 values) with 5 values of data',
    );
    expect(message([tensor({ name: 'img' })])).toBe('unknown input "img"; the model expects "image": FP32 [-1,3,64,64]');
    expect(message([])).toBe('missing input "image"; the model expects "image": FP32 [-1,3,64,64]');
    expect(message([tensor({}), tensor({})])).toContain('is given twice');
  });
});

describe('poolSize', () => {
  it('is adaptive by default on several cores: up to a 1-thread worker per core', () => {
    expect(poolSize(2)).toEqual({ workers: 2, threads: 1, adaptive: true });
    expect(poolSize(8)).toEqual({ workers: 8, threads: 1, adaptive: true });
  });

  it('keeps an explicit fixed pool within the cores unless both are given', () => {
    expect(poolSize(2, 1)).toEqual({ workers: 1, threads: 2, adaptive: false });
    expect(poolSize(8, undefined, 2)).toEqual({ workers: 4, threads: 2, adaptive: false });
    expect(poolSize(8, 2)).toEqual({ workers: 2, threads: 4, adaptive: false });
    expect(poolSize(1)).toEqual({ workers: 1, threads: 1, adaptive: false });
    expect(poolSize(2, 3, 1)).toEqual({ workers: 3, threads: 1, adaptive: false });
  });
});

describe('model runtime on real onnxruntime worker threads', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let runtime: PooledModelRuntime;
  let mlp: PooledModel;
  let mlpFile: ModelFile;

  beforeAll(async () => {
    dir = await tempDir('inference');
    // No dynamic batching here (inference-batching.test.ts covers it): a burst of cheap requests would
    // otherwise queue behind the first worker as batches instead of spreading over both.
    runtime = createModelRuntime({ workers: 2, threads: 1, maxBatch: 1, logger: silentLogger });
    mlpFile = await modelFile(dir.path, 'mlp', mlpBytes);
    mlp = await runtime.load(mlpFile);
  });

  afterAll(async () => {
    await runtime.stop();
    await dir.remove();
  });

  it('returns what a direct onnxruntime session returns, and transfers the input buffer', async () => {
    const values = [0.5, -1, 2, 0.25, 1, 1, 1, 1];
    const input = mlpInput(values, 2);
    const [out] = await mlp.infer([input]);
    expect(input.data.byteLength).toBe(0); // detached: moved to the worker, not copied
    const direct = await runDirect(mlpFile.path, { input: new ort.Tensor('float32', Float32Array.from(values), [2, 4]) });
    expect(out).toMatchObject({ name: 'probs', datatype: 'FP32', shape: [2, 3] });
    expect(Array.from(out!.data as Float32Array)).toEqual(Array.from(direct.probs!.data as Float32Array));
  });

  it('serves concurrent requests across both workers, each with its own answer', async () => {
    const dispatched = new Set<number>();
    const onDispatch = (e: { worker: number }) => dispatched.add(e.worker);
    mlp.events.on('dispatch', onDispatch);
    const inputs = Array.from({ length: 40 }, (_, i) => [i, -i, i / 2, 1]);
    const results = await Promise.all(inputs.map((v) => mlp.infer([mlpInput(v)])));
    mlp.events.off('dispatch', onDispatch);
    const expected = await runDirect(mlpFile.path, { input: new ort.Tensor('float32', Float32Array.from(inputs.flat()), [40, 4]) });
    const all = results.flatMap((r) => Array.from(r[0]!.data as Float32Array));
    all.forEach((v, i) => expect(v).toBeCloseTo((expected.probs!.data as Float32Array)[i]!, 6));
    expect([...dispatched].sort()).toEqual([0, 1]);
  });

  it('rejects bad tensors before dispatching them', async () => {
    let dispatches = 0;
    const count = () => dispatches++;
    mlp.events.on('dispatch', count);
    await expect(mlp.infer([mlpInput([1, 2, 3])])).rejects.toThrow('input "input" expects FP32 [-1,4], got shape [1,4] (4 values) with 3 values of data');
    await expect(mlp.infer([{ name: 'input', datatype: 'FP64', shape: [1, 4], data: new Float64Array(4) }])).rejects.toMatchObject({ code: 'INVALID_TENSOR' });
    mlp.events.off('dispatch', count);
    expect(dispatches).toBe(0);
  });

  it('runs int64 models', async () => {
    const file = await modelFile(dir.path, 'add', int64Model());
    const model = await runtime.load(file);
    try {
      const [y] = await model.infer([{ name: 'x', datatype: 'INT64', shape: [1, 3], data: BigInt64Array.from([1n, 2n, -3n]) }]);
      expect(y).toMatchObject({ name: 'y', datatype: 'INT64', shape: [1, 3] });
      expect(Array.from(y!.data as BigInt64Array)).toEqual([11n, 22n, 27n]);
    } finally {
      await model.close();
    }
  });

  it('survives a worker crash: in-flight requests fail, the worker is replaced, serving continues', async () => {
    const file = await modelFile(dir.path, 'slow', slowBytes);
    const model = await runtime.load(file);
    try {
      const dispatched = new Promise<{ worker: number }>((resolve) => model.events.once('dispatch', resolve));
      const inflight = model.infer([{ name: 'image', datatype: 'FP32', shape: [16, 3, 64, 64], data: new Float32Array(16 * 3 * 64 * 64).fill(0.1) }]);
      const { worker } = await dispatched;
      await model.restartWorker(worker);
      await expect(inflight).rejects.toThrow(/inference worker \d exited/);
      await eventually(() => model.stats().ready === 2, 'the crashed worker to be replaced');
      const [probs] = await model.infer([{ name: 'image', datatype: 'FP32', shape: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64).fill(0.1) }]);
      expect(probs!.shape).toEqual([1, 4]);
      expect(model.isReady()).toBe(true);
    } finally {
      await model.close();
    }
    expect(model.isReady()).toBe(false);
    await expect(model.infer([mlpInput([1, 2, 3, 4])])).rejects.toThrow();
  });

  it('refuses files onnxruntime cannot load and manifests that do not match the file', async () => {
    const garbage = join(dir.path, 'garbage.onnx');
    await writeFile(garbage, 'not an onnx model');
    await expect(runtime.load({ ...mlpFile, path: garbage })).rejects.toMatchObject({ code: 'INVALID_MODEL' });
    await expect(runtime.load({ ...mlpFile, inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }] })).rejects.toThrow(
      /declares inputs \[x\].*the ONNX file has \[input\]/,
    );
    expect(mlp.stats()).toMatchObject({ workers: 2, ready: 2 });
  });
});

describe('model table', () => {
  const fake = (name: string, version: string) => ({ name, version }) as unknown as PooledModel;

  it('keeps one active model per name and hands back the one it replaced', () => {
    const table = createModelTable();
    const a1 = fake('a', '1');
    const a2 = fake('a', '2');
    expect(table.activate(a1)).toBeUndefined();
    expect(table.activate(a2)).toBe(a1);
    expect(table.get('a')).toBe(a2);
    expect(table.list()).toEqual([a2]);
    expect(table.deactivate('a')).toBe(a2);
    expect(table.get('a')).toBeUndefined();
  });

  it('counts requests since start and reports latency percentiles since the last snapshot', () => {
    const table = createModelTable();
    table.activate(fake('a', '1'));
    for (let ms = 1; ms <= 100; ms++) table.record('a', '1', ms, ms % 10 !== 0);
    expect(table.snapshot()).toEqual([{ name: 'a', version: '1', requests: 100, errors: 10, latencyMs: { p50: 50, p90: 90, p99: 99 } }]);
    table.record('a', '1', 7, true);
    expect(table.snapshot()).toEqual([{ name: 'a', version: '1', requests: 101, errors: 10, latencyMs: { p50: 7, p90: 7, p99: 7 } }]);
    expect(table.snapshot()[0]!.latencyMs).toEqual({ p50: 0, p90: 0, p99: 0 });
  });
});
