import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarySamples, type DriftBaseline } from '@edgefleet/shared';
import { buildMlp, decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { createModelRuntime, type PooledModel, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import type { ModelFile, Tensor } from '../src/inference/types.js';
import { createWorkerScaling } from '../src/inference/worker-scaling.js';
import { baselineFor, expectedSummary, type Served } from './support/drift-baseline.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

// The adaptive pool (the default on several cores) on real onnxruntime workers: one worker while
// requests come one at a time, a second once they queue (worker 0 then on its 1-thread session), the
// extra one retired when idle, with its drift window kept for the next take.

const INPUT = 16;

function rows(seed: number, batch: number): Tensor {
  const data = new Float32Array(batch * INPUT);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed * 7.3 + i * 0.91) * 2;
  return { name: 'input', datatype: 'FP32', shape: [batch, INPUT], data };
}

async function serve(model: PooledModel, input: Tensor, log: Served[]): Promise<Tensor[]> {
  const outputs = await model.infer([{ ...input, data: input.data.slice() }]);
  log.push({ inputs: [{ name: input.name, dims: input.shape, data: input.data }], outputs: outputs.map((o) => ({ name: o.name, dims: o.shape, data: o.data })) });
  return outputs;
}

interface Dispatch {
  worker: number;
  narrow: boolean;
}

describe('adaptive worker pool', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let mlp: ModelFile;
  let baseline: DriftBaseline;
  const reference: Served[] = [];
  const runtimes: PooledModelRuntime[] = [];
  const runtime = (opts: Partial<Parameters<typeof createModelRuntime>[0]> = {}) => {
    // Sized for 2 cores whatever this machine has; no batching, so a burst spreads over workers.
    const r = createModelRuntime({ cores: 2, maxBatch: 1, logger: silentLogger, ...opts });
    runtimes.push(r);
    return r;
  };

  beforeAll(async () => {
    dir = await tempDir('adaptive');
    const bytes = buildMlp({ inputSize: INPUT, hidden: [32], outputSize: 4 });
    const path = join(dir.path, 'mlp.onnx');
    await writeFile(path, bytes);
    mlp = { name: 'mlp', version: '1', sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) };
    const plain = await runtime({ drift: false, workers: 1, threads: 1 }).load(mlp);
    for (let i = 0; i < 30; i++) await serve(plain, rows(500 + i, 10), reference);
    baseline = baselineFor(mlp, reference);
  });

  afterAll(async () => {
    await Promise.all(runtimes.map((r) => r.stop()));
    await dir.remove();
  });

  it('is the default on several cores; explicit workers or threads make a fixed pool', () => {
    expect(runtime()).toMatchObject({ workers: 2, threads: 2, shape: 'adaptive 1-2 workers (2 threads alone, 1 each under load)' });
    expect(runtime({ workers: 2 })).toMatchObject({ workers: 2, threads: 1, shape: '2x1' });
    expect(runtime({ threads: 2 })).toMatchObject({ workers: 1, threads: 2, shape: '1x2' });
  });

  it('grows under load, retires the idle extra worker and keeps every served row in the drift windows', async () => {
    const model = await runtime({ idleRetireMs: 150 }).load({ ...mlp, drift: baseline });
    const seen: Dispatch[] = [];
    model.events.on('dispatch', (d: Dispatch) => seen.push(d));
    const served: Served[] = [];

    // Lone requests: one worker, on its wide session.
    for (let i = 0; i < 5; i++) await serve(model, rows(i, 1), served);
    expect(model.stats().workers).toBe(1);
    expect(seen.every((d) => d.worker === 0 && !d.narrow)).toBe(true);

    // Bursts: a second worker starts; while it runs, worker 0 runs on its 1-thread session.
    let seed = 100;
    await eventually(async () => {
      const burst = Array.from({ length: 24 }, () => serve(model, rows(seed++, 2), served));
      const answers = await Promise.all(burst);
      expect(answers.every((a) => a[0]!.shape[0] === 2)).toBe(true);
      return seen.some((d) => d.worker === 1) && seen.some((d) => d.worker === 0 && d.narrow);
    }, 'runs on the extra worker, and on worker 0 narrow beside it');

    // Idle: the extra worker retires; its window is part of the next take.
    await eventually(() => model.stats().workers === 1, 'the idle extra worker to retire');
    const window = await model.takeDrift();
    const n = served.reduce((s, r) => s + r.inputs[0]!.dims[0]!, 0);
    expect(summarySamples(baseline, window!.summary!)).toBe(n);
    expect(window!.summary!.counts).toEqual(expectedSummary(mlp, baseline, served).counts);

    // Alone again: worker 0 only, on its wide session.
    const before = seen.length;
    await serve(model, rows(1, 1), []);
    expect(seen.slice(before)).toEqual([expect.objectContaining({ worker: 0, narrow: false })]);
  });

  it('answers the same on the wide and the narrow session as a fixed 1-thread pool', async () => {
    const fixed = await runtime({ workers: 1, threads: 1, drift: false }).load(mlp);
    const model = await runtime({ drift: false }).load(mlp);
    const inputs = Array.from({ length: 32 }, (_, i) => rows(700 + i, 3));
    const expected = await Promise.all(inputs.map((r) => fixed.infer([{ ...r, data: r.data.slice() }])));
    let narrowRuns = 0;
    model.events.on('dispatch', (d: Dispatch) => (narrowRuns += d.narrow ? 1 : 0));
    await eventually(async () => {
      const got = await Promise.all(inputs.map((r) => model.infer([{ ...r, data: r.data.slice() }])));
      got.forEach((g, i) => {
        const want = expected[i]![0]!.data as Float32Array;
        (g[0]!.data as Float32Array).forEach((v, k) => expect(v).toBeCloseTo(want[k]!, 5));
      });
      return narrowRuns > 0;
    }, 'some runs on the narrow session');
  });

  it('closes while an extra worker is still starting: the burst is served and no worker is left', async () => {
    const model = await runtime({ drift: false }).load(mlp);
    const burst = Array.from({ length: 8 }, (_, i) => model.infer([rows(900 + i, 1)]).then(() => 'ok', (err: Error) => err.message));
    // The second request found worker 0 busy: the extra worker is spawned, its session not yet made.
    expect(model.stats()).toMatchObject({ workers: 2, ready: 1 });
    await model.close();
    expect(await Promise.all(burst)).toEqual(Array(8).fill('ok'));
    expect(model.stats()).toMatchObject({ workers: 0, ready: 0 });
  });
});

describe('worker 0 session choice', () => {
  // The policy alone, on stand-in slots (no workers run): which session a run goes to.
  const slot = (index: number, inFlight = 0) => ({ index, worker: {} as never, ready: true, inFlight: new Map(Array.from({ length: inFlight }, (_, i) => [i, []])) });

  it('runs lone requests wide, and narrow only while another worker of the pool is running', () => {
    const zero = slot(0);
    const slots: Array<ReturnType<typeof slot> | undefined> = [zero, undefined, undefined];
    const scaling = createWorkerScaling({ workers: { slots, add: () => true, dismiss: async () => {} } as never, idleRetireMs: 1000, logger: silentLogger });
    expect(scaling.narrow(zero)).toBe(false); // alone: wide
    zero.inFlight.set(1, []);
    expect(scaling.narrow(zero)).toBe(false); // its own run ahead does not make worker 0 narrow
    slots[1] = slot(1); // an extra worker, idle
    expect(scaling.narrow(zero)).toBe(false);
    slots[2] = slot(2, 1); // another worker running: contention from our own requests
    expect(scaling.narrow(zero)).toBe(true);
    expect(scaling.narrow(slots[1]!)).toBe(false); // extra workers have one session only
    slots[2] = undefined; // retired
    expect(scaling.narrow(zero)).toBe(false);
    scaling.stop();
  });
});
