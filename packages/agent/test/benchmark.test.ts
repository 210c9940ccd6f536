import { readdir, writeFile } from 'node:fs/promises';
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
import { createBenchmarkRunner, type BenchmarkRunner } from '../src/benchmark/benchmark-runner.js';
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

  function runner(extra: { now?: () => number } = {}): BenchmarkRunner {
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

  it('does not fetch a candidate it reaches after expiresAt', async () => {
    const start = Date.now();
    let calls = 0;
    // The first candidate starts in time, the second after the request expired.
    const r = runner({ now: () => start + (calls++ === 0 ? 0 : 2000) });
    server.requests.length = 0;
    const result = await r.run(args([variant('fp32', fp32Bytes), variant('int8-dynamic', int8Bytes)], { expiresAt: start + 1000, runs: 1 }));
    expect(result.measurements[0]).toMatchObject({ ok: true });
    expect(result.measurements[1]).toMatchObject({ ok: false, runs: 0, error: expect.stringMatching(/^the request expired at .* before this candidate was fetched/) });
    expect(server.requests.map((r) => r.path)).toEqual([`/api/v1/artifacts/${sha256Of(fp32Bytes)}`]);
  });

  it('leaves serving working: a served model answers while a benchmark runs', async () => {
    await ensureModelsDir(state.path);
    const servedPath = modelPath(state.path, sha256Of(prunedBytes));
    await writeFile(servedPath, prunedBytes);
    const served = await runtime.load({ ...base, name: 'served', path: servedPath });
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
