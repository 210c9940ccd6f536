import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { summarySamples, type DriftBaseline } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMetricsText } from '../../../test/support/promtool.js';
import { hasTool } from '../../../test/support/tools.js';
import { createDriftReporter, type DriftReporter } from '../src/drift/drift-reporter.js';
import type { RecordBody } from '../src/hub-link/hub-link.js';
import { createModelRuntime, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import type { LoadedModel, ModelFile, ModelTable, Tensor } from '../src/inference/types.js';
import { createDriftMetrics, type DriftMetrics } from '../src/local-api/metrics.js';
import { baselineFor } from './support/drift-manifests.js';
import { mlp } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const promtool = hasTool('promtool', 'prometheus');

describe('drift reporter on a real runtime', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let runtime: PooledModelRuntime;
  let baseline: DriftBaseline;
  const bytes = mlp(3);
  const inputName = readSignature(decodeModel(bytes)).inputs[0]!.name;

  async function load(version: string): Promise<LoadedModel> {
    const path = join(dir.path, `scorer-${version}.onnx`);
    await writeFile(path, bytes);
    const file: ModelFile = { name: 'scorer', version, sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)), drift: baseline };
    return runtime.load(file);
  }

  /** Serves `n` requests of `rows` rows and records each as the local API does. */
  async function serve(table: ModelTable, model: LoadedModel, n: number, rows = 1): Promise<void> {
    for (let i = 0; i < n; i++) {
      const input: Tensor = { name: inputName, datatype: 'FP32', shape: [rows, 4], data: Float32Array.from({ length: rows * 4 }, (_, k) => ((i + k) % 10) / 10) };
      await model.infer([input]);
      table.record(model.name, model.version, 1, true);
    }
  }

  function rig(opts: { windowSec: number; windowRequests: number }): { table: ModelTable; reporter: DriftReporter; published: Array<RecordBody<'drift'>>; metrics: DriftMetrics } {
    const table = createModelTable();
    const published: Array<RecordBody<'drift'>> = [];
    const metrics = createDriftMetrics(new Registry());
    const reporter = createDriftReporter({ table, publish: (b) => published.push(b), ...opts, metrics, logger: silentLogger });
    return { table, reporter, published, metrics };
  }

  beforeAll(async () => {
    dir = await tempDir('drift-reporter');
    baseline = baselineFor(bytes);
    runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
  });
  afterAll(async () => {
    await runtime?.stop();
    await dir?.remove();
  });

  it('publishes a window once the request count is reached, with every row served in it', async () => {
    const { table, reporter, published, metrics } = rig({ windowSec: 3600, windowRequests: 5 });
    const model = await load('1');
    table.activate(model);
    reporter.start();
    await serve(table, model, 4, 2);
    expect(published).toHaveLength(0);
    await serve(table, model, 1, 2);
    const first = await eventually(() => published[0], 'the count window');
    expect(first).toMatchObject({ model: 'scorer', version: '1' });
    expect(summarySamples(baseline, first.summary)).toBe(10);
    // The next window starts empty.
    await serve(table, model, 5, 1);
    const second = await eventually(() => published[1], 'the second count window');
    expect(summarySamples(baseline, second.summary)).toBe(5);
    await reporter.stop();
    expect(published).toHaveLength(2);

    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^edgefleet_drift_windows_total\{model="scorer",version="1"\} 2$/m);
    expect(text).toMatch(/^edgefleet_drift_samples_total\{model="scorer",version="1"\} 15$/m);
    if (promtool) expect(checkMetricsText(text).output).toBe('');
    table.deactivate('scorer');
    await model.close();
  });

  it('publishes a window when its time is up, and none for a window with nothing served', async () => {
    const { table, reporter, published } = rig({ windowSec: 0.05, windowRequests: 1_000_000 });
    const model = await load('2');
    table.activate(model);
    reporter.start();
    // One request of 3 rows: a window boundary cannot split it.
    await serve(table, model, 1, 3);
    const window = await eventually(() => published[0], 'the time window');
    expect(window).toMatchObject({ model: 'scorer', version: '2' });
    expect(summarySamples(baseline, window.summary)).toBe(3);
    expect(window.summary.window.start).toBeLessThanOrEqual(window.summary.window.end);
    // Idle windows come and go without a record; the next served request shows up in its own.
    await serve(table, model, 1);
    await eventually(() => published[1], 'the window of the next request');
    expect(published.map((p) => summarySamples(baseline, p.summary))).toEqual([3, 1]);
    await reporter.stop();
    table.deactivate('scorer');
    await model.close();
  });

  it('takes the replaced version\'s window at a switch, before it closes, and the last window at stop', async () => {
    const { table, reporter, published, metrics } = rig({ windowSec: 3600, windowRequests: 1_000_000 });
    const watched = reporter.watch(table);
    const v3 = await load('3');
    const v4 = await load('4');
    watched.activate(v3);
    reporter.start();
    await serve(table, v3, 2);
    expect(watched.activate(v4)).toBe(v3);
    // The take is asked for at the switch itself (the standby keeper may hold v3 a while, or close it at once).
    const old = await eventually(() => published[0], 'the replaced version\'s window');
    await v3.close();
    expect(old.version).toBe('3');
    expect(summarySamples(baseline, old.summary)).toBe(2);
    // Its last window counted, the replaced version's series go: labels of untracked versions never pile up.
    await eventually(async () => !(await metrics.registry.metrics()).includes('version="3"'), 'the replaced version\'s series removed');
    await serve(table, v4, 3);
    await reporter.stop();
    expect(published.map((p) => [p.version, summarySamples(baseline, p.summary)])).toEqual([
      ['3', 2],
      ['4', 3],
    ]);
    expect(await metrics.registry.metrics()).toMatch(/^edgefleet_drift_windows_total\{model="scorer",version="4"\} 1$/m);
    watched.deactivate('scorer');
    await v4.close();
  });

  it('tracks nothing for a version loaded without a baseline', async () => {
    const { table, reporter, published } = rig({ windowSec: 0.02, windowRequests: 1 });
    const path = join(dir.path, 'plain.onnx');
    await writeFile(path, bytes);
    const plain = await runtime.load({ name: 'plain', version: '1', sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) });
    table.activate(plain);
    reporter.start();
    await serve(table, plain, 3);
    await reporter.stop();
    expect(published).toEqual([]);
    table.deactivate('plain');
    await plain.close();
  });
});
