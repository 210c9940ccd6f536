import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMlp, decodeModel, encodeModel, GraphBuilder, int64Tensor, readSignature } from '@edgefleet/shared/onnx';
import { takeBatch } from '../src/inference/batching.js';
import { createModelRuntime, type PooledModel, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import type { ModelFile, Tensor } from '../src/inference/types.js';
import { silentLogger, tempDir } from './support/temp.js';

// Dynamic batching: requests queued behind a busy worker run as one batch and each gets its own rows back.

const INPUT = 16;
const mlpBytes = buildMlp({ inputSize: INPUT, hidden: [32], outputSize: 4 });

/** y = ReduceSum(x, axis 0, keepdims) declared as [-1,3]: its dimension 0 does not follow the batch. */
function reduceModel(): Uint8Array {
  const g = new GraphBuilder('reduce-batch');
  const x = g.input('x', 'FP32', [-1, 3]);
  g.node('ReduceSum', [x, g.initializer(int64Tensor('axes', [1], [0]))], { keepdims: 1 }, 'y');
  g.output('y', 'FP32', [-1, 3]);
  return encodeModel(g.build());
}

/** y = Gather(table, idx): an index out of range fails the run of the request that carries it. */
function gatherModel(): Uint8Array {
  const g = new GraphBuilder('gather');
  const idx = g.input('idx', 'INT64', [-1]);
  g.node('Gather', [g.initializer(int64Tensor('table', [4], [10, 20, 30, 40])), idx], { axis: 0 }, 'y');
  g.output('y', 'INT64', [-1]);
  return encodeModel(g.build());
}

async function modelFile(dir: string, name: string, bytes: Uint8Array): Promise<ModelFile> {
  const path = join(dir, `${name}.onnx`);
  await writeFile(path, bytes);
  return { name, version: '1', sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) };
}

function rows(seed: number, batch: number): Tensor {
  const data = new Float32Array(batch * INPUT);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed * 7.3 + i * 0.91) * 2;
  return { name: 'input', datatype: 'FP32', shape: [batch, INPUT], data };
}

const bits = (t: Tensor) => Array.from(new Uint32Array((t.data as Float32Array).slice().buffer));

describe('takeBatch', () => {
  const job = (id: number, rows: number, width = 4, name = 'x') => ({ id, rows, inputs: [{ name, type: 'float32', dims: [rows, width], data: new Float32Array(rows * width) }] });

  it('joins queued jobs of the same trailing shape, in order, within the row and share limits', () => {
    const queue = [job(1, 2), job(2, 1, 8), job(3, 3), job(4, 1, 4, 'y'), job(5, 4), job(6, 1)];
    expect(takeBatch(queue, 8, 10).map((j) => j.id)).toEqual([1, 3, 6]); // 5 would make 10 rows
    expect(queue.map((j) => j.id)).toEqual([2, 4, 5]);
    const many = Array.from({ length: 6 }, (_, i) => job(i, 1));
    expect(takeBatch(many, 32, 3).map((j) => j.id)).toEqual([0, 1, 2]);
    expect(takeBatch([job(1, 1), job(2, 1)], 1, 10).map((j) => j.id)).toEqual([1]);
  });
});

describe('dynamic batching on real onnxruntime workers', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let runtime: PooledModelRuntime;
  let mlp: PooledModel;

  beforeAll(async () => {
    dir = await tempDir('batching');
    // One worker, so that a burst queues behind it and is batched.
    runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    mlp = await runtime.load(await modelFile(dir.path, 'mlp', mlpBytes));
  });

  afterAll(async () => {
    await runtime.stop();
    await dir.remove();
  });

  it('answers each of many concurrent requests with its own rows, bit for bit as when run alone', async () => {
    // Requests of 1 to 3 rows each; alone (one at a time, so never batched) first.
    const sizes = Array.from({ length: 48 }, (_, i) => 1 + (i % 3));
    const alone: Tensor[] = [];
    for (let i = 0; i < sizes.length; i++) alone.push((await mlp.infer([rows(i, sizes[i]!)]))[0]!);
    expect(mlp.stats().batches).toBe(0);

    const batches: number[] = [];
    const onDispatch = (e: { batch: number }) => batches.push(e.batch);
    mlp.events.on('dispatch', onDispatch);
    const together = await Promise.all(sizes.map((n, i) => mlp.infer([rows(i, n)])));
    mlp.events.off('dispatch', onDispatch);

    expect(mlp.stats().batches).toBeGreaterThan(0);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    together.forEach(([out], i) => {
      expect(out).toMatchObject({ name: 'probs', datatype: 'FP32', shape: [sizes[i], 4] });
      expect(bits(out!)).toEqual(bits(alone[i]!));
    });
  });

  it('never batches a lone request', async () => {
    const before = mlp.stats().batchedJobs;
    for (let i = 0; i < 5; i++) await mlp.infer([rows(i, 2)]);
    expect(mlp.stats().batchedJobs).toBe(before);
  });

  it('keeps requests with different trailing shapes apart', async () => {
    const g = new GraphBuilder('identity');
    g.node('Identity', [g.input('x', 'FP32', [-1, -1])], {}, 'y');
    g.output('y', 'FP32', [-1, -1]);
    const model = await runtime.load(await modelFile(dir.path, 'identity', encodeModel(g.build())));
    try {
      const inputs = Array.from({ length: 12 }, (_, i): Tensor => {
        const width = 2 + (i % 3);
        return { name: 'x', datatype: 'FP32', shape: [1, width], data: Float32Array.from({ length: width }, (_, k) => i * 10 + k) };
      });
      const outs = await Promise.all(inputs.map((x) => model.infer([{ ...x, data: x.data.slice() }])));
      expect(model.stats().batches).toBeGreaterThan(0);
      outs.forEach(([y], i) => {
        expect(y!.shape).toEqual(inputs[i]!.shape);
        expect(Array.from(y!.data as Float32Array)).toEqual(Array.from(inputs[i]!.data as Float32Array));
      });
    } finally {
      await model.close();
    }
  });

  it('runs each request alone, and stops batching, when an output does not follow dimension 0', async () => {
    const model = await runtime.load(await modelFile(dir.path, 'reduce', reduceModel()));
    try {
      const inputs = Array.from({ length: 10 }, (_, i): Tensor => ({ name: 'x', datatype: 'FP32', shape: [2, 3], data: Float32Array.from([i, 1, 2, 3, 4, i]) }));
      const outs = await Promise.all(inputs.map((x) => model.infer([x])));
      outs.forEach(([y], i) => {
        expect(y!.shape).toEqual([1, 3]);
        expect(Array.from(y!.data as Float32Array)).toEqual([i + 3, 5, 2 + i]);
      });
      const before = model.stats().batches;
      await Promise.all(inputs.map((x) => model.infer([{ ...x, data: Float32Array.from([1, 1, 1, 1, 1, 1]) }])));
      expect(model.stats().batches).toBe(before);
    } finally {
      await model.close();
    }
  });

  it('fails only the request whose data breaks a batched run', async () => {
    const model = await runtime.load(await modelFile(dir.path, 'gather', gatherModel()));
    try {
      const idx = Array.from({ length: 10 }, (_, i) => (i === 6 ? 99 : i % 4));
      const results = await Promise.allSettled(idx.map((k) => model.infer([{ name: 'idx', datatype: 'INT64', shape: [1], data: BigInt64Array.from([BigInt(k)]) }])));
      expect(model.stats().batches).toBeGreaterThan(0);
      results.forEach((r, i) => {
        if (i === 6) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'INTERNAL' } });
        else expect(r).toEqual({ status: 'fulfilled', value: [expect.objectContaining({ data: BigInt64Array.from([BigInt((idx[i]! + 1) * 10)]) })] });
      });
    } finally {
      await model.close();
    }
  });
});
