import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Compile } from 'typebox/compile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BenchmarkResult,
  generateSigningKeyPair,
  goldenInputTensors,
  signManifest,
  type BenchmarkArgs,
  type Manifest,
  type SignedManifest,
} from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { benchmarkCommand } from '../src/benchmark/benchmark-command.js';
import { BENCHMARK_MEMORY_MARGIN_BYTES, createBenchmarkRunner, DEPLOYMENT_BUSY_ERROR, type BenchmarkRunner, type BenchmarkRunnerOptions } from '../src/benchmark/benchmark-runner.js';
import { latencySummary } from '../src/benchmark/timing.js';
import { openBenchmarkSession } from '../src/inference/benchmark-session.js';
import { benchmarkStateDir } from '../src/benchmark/candidate-file.js';
import { createModelRuntime, type PooledModelRuntime } from '../src/inference/model-runtime.js';
import { createDownloader } from '../src/models/download.js';
import { ensureModelsDir, fileSize, modelPath, modelsDir } from '../src/models/model-files.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { assignmentFor, sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const creds = { username: 'dev-bench', password: 'pw-bench' };
const keys = generateSigningKeyPair();
const resultCheck = Compile(BenchmarkResult);

/** Two "variants" of one model version: different weights, the same signature. */
const fp32Bytes = buildMlp({ inputSize: 16, hidden: [32], outputSize: 4, seed: 1 });
const int8Bytes = buildMlp({ inputSize: 16, hidden: [32], outputSize: 4, seed: 2 });
const prunedBytes = buildMlp({ inputSize: 16, hidden: [32], outputSize: 4, seed: 3 });

/** A manifest's fields as a model file (whose `drift` is the verified baseline itself, not the manifest's entry). */
function withoutDrift(m: Manifest): Omit<Manifest, 'drift'> {
  const { drift: _drift, ...rest } = m;
  return rest;
}

describe('benchmark runner on real onnxruntime and a real artifact server', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let scratch: Awaited<ReturnType<typeof tempDir>>;
  let server: ArtifactServer;
  let runtime: PooledModelRuntime;
  let base: Manifest;

  beforeAll(async () => {
    state = await tempDir('bench-state');
    scratch = await tempDir('bench-scratch');
    server = await startArtifactServer(creds);
    runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    // A valid manifest (golden vector computed by onnxruntime) whose fields each variant then changes.
    base = (await assignmentFor({ name: 'net', version: '1', bytes: fp32Bytes, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: scratch.path })).manifest.manifest;
  });

  afterAll(async () => {
    await runtime.stop();
    await server.close();
    await state.remove();
    await scratch.remove();
  });

  /** Signs a variant of the base manifest for these bytes and serves them (unless told otherwise). */
  function variant(profile: string, bytes: Uint8Array, extra: Partial<Manifest> = {}, serve = true): SignedManifest {
    const sha256 = sha256Of(bytes);
    if (serve) server.files.set(sha256, bytes);
    return signManifest({ ...base, profile, sha256, size: bytes.byteLength, ...extra }, keys.privateKeyPem);
  }

  function runner(extra: Partial<Pick<BenchmarkRunnerOptions, 'now' | 'freeMemory' | 'deploymentBusy' | 'expiryMarginMs'>> = {}): BenchmarkRunner {
    return createBenchmarkRunner({
      stateDir: state.path,
      apiUrl: server.apiUrl,
      auth: creds,
      download: createDownloader({ logger: silentLogger, retries: 0, retryDelayMs: 1 }),
      hubPublicKey: keys.publicKeyPem,
      threads: 1,
      logger: silentLogger,
      ...extra,
    });
  }

  const args = (candidates: SignedManifest[], more: Partial<BenchmarkArgs> = {}): BenchmarkArgs => ({
    model: 'net',
    version: '1',
    candidates,
    runs: 7,
    warmup: 1,
    expiresAt: Date.now() + 60_000,
    ...more,
  });

  /** What is left of benchmark downloads: nothing once a run is over. */
  async function benchmarkLeftovers(): Promise<string[]> {
    try {
      return await readdir(modelsDir(benchmarkStateDir(state.path)));
    } catch {
      return [];
    }
  }

  it('measures each candidate (plain and gzip transfer) and leaves no candidate file behind', async () => {
    const packed = gzipSync(int8Bytes);
    server.files.set(sha256Of(packed), packed);
    const candidates = [
      variant('fp32', fp32Bytes),
      variant('int8-dynamic', int8Bytes, { transfer: { encoding: 'gzip', size: packed.byteLength, sha256: sha256Of(packed) } }, false),
    ];
    const result = await runner().run(args(candidates));

    expect(resultCheck.Check(result)).toBe(true);
    expect(result).toMatchObject({ model: 'net', version: '1', threads: 1 });
    expect(result.measurements.map((m) => [m.profile, m.sha256, m.ok, m.runs])).toEqual([
      ['fp32', sha256Of(fp32Bytes), true, 7],
      ['int8-dynamic', sha256Of(int8Bytes), true, 7],
    ]);
    for (const m of result.measurements) {
      expect(m.p50Ms).toBeGreaterThan(0);
      expect(m.p50Ms!).toBeLessThanOrEqual(m.p90Ms!);
    }
    // Fetched through the artifact route with the device's credentials; the gzip copy instead of the model.
    const paths = server.requests.map((r) => r.path);
    expect(paths).toContain(`/api/v1/artifacts/${sha256Of(packed)}`);
    expect(paths).not.toContain(`/api/v1/artifacts/${sha256Of(int8Bytes)}`);
    expect(await benchmarkLeftovers()).toEqual([]);
    expect(await fileSize(modelPath(state.path, sha256Of(fp32Bytes)))).toBeUndefined();
  });

  it('uses an installed file in place and never removes it', async () => {
    await ensureModelsDir(state.path);
    const installed = modelPath(state.path, sha256Of(prunedBytes));
    await writeFile(installed, prunedBytes);
    server.requests.length = 0;
    const result = await runner().run(args([variant('pruned', prunedBytes, {}, false), variant('fp32', fp32Bytes)], { runs: 3 }));

    expect(result.measurements.map((m) => [m.profile, m.ok, m.runs])).toEqual([
      ['pruned', true, 3],
      ['fp32', true, 3],
    ]);
    expect(server.requests.map((r) => r.path)).toEqual([`/api/v1/artifacts/${sha256Of(fp32Bytes)}`]);
    expect(await fileSize(installed)).toBe(prunedBytes.byteLength);
    expect(await benchmarkLeftovers()).toEqual([]);
  });

  it('fails a tampered, an unsigned or a foreign candidate by name while the others run', async () => {
    const tampered: SignedManifest = { ...variant('int8-static', int8Bytes), manifest: { ...variant('int8-static', int8Bytes).manifest, size: int8Bytes.byteLength + 1 } };
    const unsigned: SignedManifest = { ...variant('fp16', int8Bytes), signature: '' };
    const foreign = signManifest({ ...variant('fp32', fp32Bytes).manifest, model: 'other' }, keys.privateKeyPem);
    const otherKey = signManifest(variant('fp32', fp32Bytes).manifest, generateSigningKeyPair().privateKeyPem);
    const result = await runner().run(args([tampered, variant('fp32', fp32Bytes), unsigned, foreign, otherKey]));

    const [bad, good, empty, wrongModel, wrongKey] = result.measurements;
    expect(bad).toMatchObject({ profile: 'int8-static', ok: false, runs: 0, error: expect.stringMatching(/signature of net@1 does not verify with the pinned hub key/) });
    expect(good).toMatchObject({ profile: 'fp32', ok: true, runs: 7 });
    expect(empty).toMatchObject({ profile: 'fp16', ok: false, error: expect.stringMatching(/signature/) });
    expect(wrongModel).toMatchObject({ ok: false, error: 'candidate is other@1, but the benchmark is of net@1' });
    expect(wrongKey).toMatchObject({ ok: false, error: expect.stringMatching(/does not verify with the pinned hub key/) });
    expect(resultCheck.Check(result)).toBe(true);
  });

  it('fails a candidate whose served bytes do not match its sha256, naming the digest', async () => {
    const claimed = variant('int8-weights', int8Bytes);
    // The artifact route answers that digest with other bytes of the same size.
    server.files.set(claimed.manifest.sha256, int8Bytes.map((b) => b ^ 0xff));
    const result = await runner().run(args([claimed, variant('fp32', fp32Bytes)]));
    server.files.set(claimed.manifest.sha256, int8Bytes);

    expect(result.measurements[0]).toMatchObject({
      profile: 'int8-weights',
      ok: false,
      runs: 0,
      error: expect.stringMatching(new RegExp(`downloaded file has sha256 [0-9a-f]{64} and \\d+ bytes, expected ${claimed.manifest.sha256}`)),
    });
    expect(result.measurements[1]).toMatchObject({ ok: true });
    expect(await benchmarkLeftovers()).toEqual([]);
  });

  it('fails a candidate onnxruntime cannot load or whose names differ from its manifest', async () => {
    // A signature that names an input the file does not have.
    const renamed = variant('fp32', fp32Bytes, { inputs: base.inputs.map((s) => ({ ...s, name: 'pixels' })) });
    const garbage = new TextEncoder().encode('not an onnx model at all');
    const result = await runner().run(args([renamed, variant('fp32', garbage)]));
    expect(result.measurements[0]).toMatchObject({ ok: false, error: expect.stringMatching(/the manifest declares inputs \[pixels\].*the ONNX file has \[/) });
    expect(result.measurements[1]).toMatchObject({ ok: false, runs: 0, error: expect.stringMatching(/^onnxruntime cannot load .*Protobuf parsing failed/) });
  });

  it('refuses bad args, an expired request and a second concurrent benchmark', async () => {
    const r = runner();
    const command = benchmarkCommand(r);
    expect(await command({ model: 'net', version: '1', candidates: [] })).toEqual({
      ok: false,
      error: expect.stringMatching(/^benchmark args do not match the schema: /),
    });
    expect(await command({ ...args([variant('fp32', fp32Bytes)]), expiresAt: Date.now() - 1 })).toEqual({
      ok: false,
      error: expect.stringMatching(/^the benchmark request expired at .*; the hub no longer serves its candidates$/),
    });

    const first = command(args([variant('fp32', fp32Bytes)], { runs: 50 }));
    expect(r.running).toBe(true);
    expect(await command(args([variant('fp32', fp32Bytes)]))).toEqual({ ok: false, error: 'a benchmark is running; this agent runs one at a time' });
    const done = await first;
    expect(done).toMatchObject({ ok: true, result: { measurements: [{ ok: true, runs: 50 }] } });
    expect(r.running).toBe(false);
  });

  it('answers before the request expires: no candidate started within the margin, timing cut short with what it has', async () => {
    const start = Date.now();
    let ticks = 0;
    // Each look at the clock is 1 ms later; the answer is due 40 ms before expiresAt.
    const r = runner({ now: () => start + ticks++, expiryMarginMs: 40 });
    server.requests.length = 0;
    const result = await r.run(args([variant('fp32', fp32Bytes), variant('int8-dynamic', int8Bytes)], { expiresAt: start + 60, runs: 1000, warmup: 0 }));

    expect(resultCheck.Check(result)).toBe(true);
    const [cut, skipped] = result.measurements;
    expect(cut).toMatchObject({ profile: 'fp32', ok: true });
    expect(cut!.runs).toBeGreaterThan(0);
    expect(cut!.runs).toBeLessThan(1000);
    expect(skipped).toMatchObject({ profile: 'int8-dynamic', ok: false, runs: 0, error: expect.stringMatching(/^not measured: the request expires at .*Z and the answer must reach the hub before it/) });
    expect(server.requests.map((q) => q.path)).toEqual([`/api/v1/artifacts/${sha256Of(fp32Bytes)}`]);
  });

  it('fetches nothing when the request is already within the margin of its expiry', async () => {
    server.requests.length = 0;
    const result = await runner().run(args([variant('fp32', fp32Bytes)], { expiresAt: Date.now() + 10_000 }));
    expect(result.measurements).toEqual([{ profile: 'fp32', sha256: sha256Of(fp32Bytes), ok: false, runs: 0, error: expect.stringMatching(/^not measured: the request expires at /) }]);
    expect(server.requests).toEqual([]);
  });

  it('skips a candidate the device has not the free memory to load, and measures the rest', async () => {
    const bigBytes = buildMlp({ inputSize: 16, hidden: [512], outputSize: 4, seed: 4 });
    const free = 2 * fp32Bytes.byteLength + BENCHMARK_MEMORY_MARGIN_BYTES + 1;
    server.requests.length = 0;
    const result = await runner({ freeMemory: () => free }).run(args([variant('pruned', bigBytes), variant('fp32', fp32Bytes)], { runs: 3 }));
    expect(result.measurements[0]).toMatchObject({ profile: 'pruned', ok: false, runs: 0, error: expect.stringMatching(/^not enough free memory: pruned \(.* MB\) needs .* MB \(twice its size plus 64\.0 MB\), .* MB free$/) });
    expect(result.measurements[1]).toMatchObject({ profile: 'fp32', ok: true, runs: 3 });
    // Refused before its download.
    expect(server.requests.map((q) => q.path)).toEqual([`/api/v1/artifacts/${sha256Of(fp32Bytes)}`]);
  });

  it('refuses to benchmark while a deployment is in progress, and skips candidates once one starts', async () => {
    let deploying = true;
    const r = runner({ deploymentBusy: () => deploying });
    const command = benchmarkCommand(r, { deploymentBusy: () => deploying });
    expect(await command(args([variant('fp32', fp32Bytes)]))).toEqual({ ok: false, error: 'a deployment is in progress; benchmark later' });
    server.requests.length = 0;
    expect((await r.run(args([variant('fp32', fp32Bytes)]))).measurements).toEqual([{ profile: 'fp32', sha256: sha256Of(fp32Bytes), ok: false, runs: 0, error: DEPLOYMENT_BUSY_ERROR }]);
    expect(server.requests).toEqual([]);
    deploying = false;
    expect(await command(args([variant('fp32', fp32Bytes)], { runs: 2 }))).toMatchObject({ ok: true, result: { measurements: [{ ok: true, runs: 2 }] } });
  });

  it('clears the downloads a dead agent left behind', async () => {
    const dir = modelsDir(benchmarkStateDir(state.path));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${sha256Of(int8Bytes)}.onnx.part`), int8Bytes.subarray(0, 10));
    await runner().clearLeftovers();
    expect(await benchmarkLeftovers()).toEqual([]);
  });

  it('closes a session that is still loading when the agent stops, instead of waiting for the load', async () => {
    const path = join(scratch.path, 'loading.onnx');
    await writeFile(path, fp32Bytes);
    const stopping = new AbortController();
    const opening = openBenchmarkSession({ ...withoutDrift(base), name: 'net', path }, { threads: 1, logger: silentLogger, signal: stopping.signal });
    stopping.abort();
    await expect(opening).rejects.toThrow('the benchmark was stopped while net@1 (fp32) was loading');
  });

  it('never reports a latency of 0 ms (the hub refuses it): a tiny run counts as 1 µs', () => {
    expect(latencySummary([0.0001, 0.0002, 0.0003])).toEqual({ p50Ms: 0.001, p90Ms: 0.001 });
    expect(latencySummary([1.23456, 2])).toMatchObject({ p50Ms: expect.closeTo(1.235, 3) });
  });

  it('leaves serving working: a served model answers while a benchmark runs', async () => {
    await ensureModelsDir(state.path);
    const servedPath = modelPath(state.path, sha256Of(prunedBytes));
    await writeFile(servedPath, prunedBytes);
    const served = await runtime.load({ ...withoutDrift(base), name: 'served', path: servedPath });
    const r = runner();
    const benchmark = r.run(args([variant('fp32', fp32Bytes)], { runs: 2000, warmup: 0 }));
    await eventually(async () => (await benchmarkLeftovers()).length > 0, 'the candidate download');
    const inputs = goldenInputTensors(base.inputs);
    let answeredDuringBenchmark = 0;
    for (let i = 0; i < 5; i++) {
      const out = await served.infer(inputs.map((t) => ({ ...t, data: t.data.slice() })));
      expect(out[0]!.shape).toEqual(base.outputs[0]!.shape.map((d) => (d < 0 ? 1 : d)));
      if (r.running) answeredDuringBenchmark++;
    }
    expect(answeredDuringBenchmark).toBeGreaterThan(0);
    expect((await benchmark).measurements[0]).toMatchObject({ ok: true, runs: 2000 });
    await served.close();
  });

  it('stops between runs, answers that the agent stopped, and cleans up', async () => {
    const r = runner();
    const running = r.run(args([variant('fp32', fp32Bytes)], { runs: 1000, warmup: 0 }));
    await eventually(async () => (await benchmarkLeftovers()).length > 0, 'the candidate download');
    await r.stop();
    await expect(running).rejects.toThrow('the agent stopped during the benchmark');
    await expect(r.run(args([variant('fp32', fp32Bytes)]))).rejects.toThrow('the agent stopped during the benchmark');
    expect(await benchmarkLeftovers()).toEqual([]);
  });
});
