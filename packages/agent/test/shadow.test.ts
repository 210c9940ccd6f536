import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_HEADER, joinBinaryBody, seededRandom, type ShadowResult } from '@edgefleet/shared';
import { buildConvNet, buildMlp, decodeModel, encodeModel, floatTensor, GraphBuilder, readSignature } from '@edgefleet/shared/onnx';
import type { PooledModel } from '../src/inference/model-runtime.js';
import { createShadowRegistry, MAX_CONCURRENT_SHADOW_RUNS, type ShadowRegistry, type ShadowTap } from '../src/inference/shadow-registry.js';
import type { LoadedModel } from '../src/inference/types.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { startLocalApiRig, type LocalApiRig } from './support/local-api-rig.js';
import { silentLogger } from './support/temp.js';

// Real local API on a Unix socket, real onnxruntime for the active and the candidate versions.

const SIZE = 32;
const convBytes = buildConvNet({ channels: 3, size: SIZE, filters: [8, 16], classes: 5, seed: 3 });
const WIDTH = 8;

/** probs = Softmax(x · (sign·I)): sign −1 ranks every class the other way round, so top-1 never agrees. */
function linearModel(sign: 1 | -1): Uint8Array {
  const g = new GraphBuilder('linear');
  const x = g.input('x', 'FP32', [-1, WIDTH]);
  const w = new Float32Array(WIDTH * WIDTH);
  for (let i = 0; i < WIDTH; i++) w[i * WIDTH + i] = sign;
  const y = g.node('MatMul', [x, g.initializer(floatTensor('w', [WIDTH, WIDTH], w))]);
  g.node('Softmax', [y], { axis: -1 }, 'probs');
  g.output('probs', 'FP32', [-1, WIDTH]);
  return encodeModel(g.build());
}

const rand = seededRandom(7);

/** A binary request of one 3×32×32 image: 12 KB, so the body's buffer is the request's to move to a worker. */
function convRequest(): { body: Buffer; headers: Record<string, string> } {
  const x = new Float32Array(3 * SIZE * SIZE).map(() => rand() * 2 - 1);
  const { body, headerLength } = joinBinaryBody(
    { inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 3, SIZE, SIZE], parameters: { binary_data_size: x.byteLength } }] },
    [new Uint8Array(x.buffer)],
  );
  return { body, headers: { 'content-type': 'application/octet-stream', [BINARY_HEADER]: String(headerLength) } };
}

function linearRequest(): { body: Buffer; headers: Record<string, string> } {
  const rows = 4;
  const data = Array.from({ length: rows * WIDTH }, () => rand() * 4 - 2);
  return { body: Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, WIDTH], data }] })), headers: { 'content-type': 'application/json' } };
}

describe('shadow phase on the request path', () => {
  let rig: LocalApiRig;
  let shadow: ShadowRegistry & ShadowTap;

  async function loadCandidate(name: string, bytes: Uint8Array, label: string): Promise<PooledModel> {
    const path = join(rig.dir.path, `${name}-${label}.onnx`);
    await writeFile(path, bytes);
    return rig.runtime.load({ name, version: '2', sha256: label, profile: 'fp32', path, ...readSignature(decodeModel(bytes)) });
  }

  /**
   * Sends requests (in `lanes` parallel loops) until the shadow run settles; every answer must come
   * from the active version, whatever the candidate does.
   */
  async function driveUntil(model: string, request: () => { body: Buffer; headers: Record<string, string> }, done: Promise<ShadowResult>, lanes = 1) {
    let finished = false;
    void done.finally(() => (finished = true));
    const failures: string[] = [];
    let sent = 0;
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (!finished) {
          const { body, headers } = request();
          const res = await unixRequest(rig.socketPath, 'POST', `/v2/models/${model}/infer`, body, headers);
          sent++;
          if (res.status !== 200) failures.push(`${res.status} ${res.body.toString()}`);
          else if (res.json<{ model_version: string }>().model_version !== '1') failures.push(`answered by version ${res.body.toString()}`);
        }
      }),
    );
    return { result: await done, failures, sent };
  }

  beforeAll(async () => {
    shadow = createShadowRegistry({ logger: silentLogger });
    rig = await startLocalApiRig('shadow', { cls: convBytes, lin: linearModel(1) }, { shadow });
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it('an identical candidate agrees on every sampled request, binary bodies moved to the worker included', async () => {
    const candidate = await loadCandidate('cls', convBytes, 'same');
    const progress: number[] = [];
    const run = shadow.run(candidate, { sampleRate: 1, minSamples: 12, maxDurationSec: 30 }, new AbortController().signal, (n) => progress.push(n));
    const { result, failures } = await driveUntil('cls', convRequest, run);
    expect(failures).toEqual([]);
    expect(result).toEqual({ samples: 12, agreement: 1, maxAbsDiff: 0, activeP50Ms: expect.any(Number), candidateP50Ms: expect.any(Number) });
    expect(result.activeP50Ms).toBeGreaterThan(0);
    expect(result.candidateP50Ms).toBeGreaterThan(0);
    expect(progress).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    await candidate.close();
  });

  it('a candidate with other weights disagrees, and the client still gets the active answer', async () => {
    const candidate = await loadCandidate('lin', linearModel(-1), 'flipped');
    const run = shadow.run(candidate, { sampleRate: 1, minSamples: 10, maxDurationSec: 30 }, new AbortController().signal);
    const { result, failures } = await driveUntil('lin', linearRequest, run);
    expect(failures).toEqual([]);
    expect(result.samples).toBe(10);
    expect(result.agreement).toBe(0);
    expect(result.maxAbsDiff).toBeGreaterThan(0.1);
    await candidate.close();
  });

  it('a candidate that throws on every request costs the clients nothing and counts as disagreement', async () => {
    // A real model whose input is "input", not "image": onnxruntime's signature check refuses every request.
    const candidate = await loadCandidate('cls', buildMlp({ inputSize: 4, hidden: [8], outputSize: 5 }), 'broken');
    const run = shadow.run(candidate, { sampleRate: 1, minSamples: 8, maxDurationSec: 30 }, new AbortController().signal);
    const { result, failures } = await driveUntil('cls', convRequest, run, 4);
    expect(failures).toEqual([]);
    expect(result).toMatchObject({ samples: 8, agreement: 0, maxAbsDiff: 0, candidateP50Ms: 0 });
    await candidate.close();
  });

  it(`never runs more than ${MAX_CONCURRENT_SHADOW_RUNS} candidate requests at once, however many clients`, async () => {
    const real = await loadCandidate('cls', convBytes, 'counted');
    let running = 0;
    let most = 0;
    const counted: LoadedModel = {
      ...real,
      async infer(inputs) {
        most = Math.max(most, ++running);
        try {
          return await real.infer(inputs);
        } finally {
          running--;
        }
      },
    };
    const run = shadow.run(counted, { sampleRate: 1, minSamples: 30, maxDurationSec: 30 }, new AbortController().signal);
    const { result, failures, sent } = await driveUntil('cls', convRequest, run, 8);
    expect(failures).toEqual([]);
    expect(result.samples).toBe(30);
    expect(result.agreement).toBe(1);
    expect(most).toBeLessThanOrEqual(MAX_CONCURRENT_SHADOW_RUNS);
    expect(sent).toBeGreaterThan(30);
    await real.close();
  });
});

describe('shadow sessions', () => {
  let rig: LocalApiRig;
  let candidate: PooledModel;

  beforeAll(async () => {
    rig = await startLocalApiRig('shadow-sessions', { lin: linearModel(1) });
    const bytes = linearModel(1);
    const path = join(rig.dir.path, 'lin-2.onnx');
    await writeFile(path, bytes);
    candidate = await rig.runtime.load({ name: 'lin', version: '2', sha256: 'x', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) });
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it('samples by its rate, holds a place per sampled request until compared or abandoned, and stops tapping on abort', async () => {
    const draws = [0.7, 0.3, 0.1, 0.2, 0.4];
    const registry = createShadowRegistry({ logger: silentLogger, random: () => draws.shift() ?? 0 });
    expect(registry.tap('lin')).toBeUndefined(); // no session
    const controller = new AbortController();
    const run = registry.run(candidate, { sampleRate: 0.5, minSamples: 100, maxDurationSec: 60 }, controller.signal);
    expect(registry.tap('other')).toBeUndefined();
    expect(registry.tap('lin')).toBeUndefined(); // 0.7 ≥ 0.5
    const first = registry.tap('lin'); // 0.3
    const second = registry.tap('lin'); // 0.1
    expect(first).toBeDefined();
    expect(second).toBeDefined();
    expect(registry.tap('lin')).toBeUndefined(); // at the cap: the 0.2 draw is not even taken
    first!.abandon();
    first!.abandon(); // a second call changes nothing
    expect(registry.tap('lin')).toBeDefined(); // 0.2
    controller.abort();
    await expect(run).resolves.toEqual({ samples: 0, agreement: 0, maxAbsDiff: 0, activeP50Ms: 0, candidateP50Ms: 0 });
    expect(registry.tap('lin')).toBeUndefined();
  });

  it('a second run for the same model ends the first; an aborted signal ends at once', async () => {
    const registry = createShadowRegistry({ logger: silentLogger });
    const controller = new AbortController();
    const first = registry.run(candidate, { sampleRate: 1, minSamples: 100, maxDurationSec: 60 }, controller.signal);
    const second = registry.run(candidate, { sampleRate: 1, minSamples: 100, maxDurationSec: 60 }, controller.signal);
    await expect(first).resolves.toMatchObject({ samples: 0 });
    expect(registry.tap('lin')).toBeDefined(); // the second session samples
    controller.abort();
    await expect(second).resolves.toMatchObject({ samples: 0 });
    await expect(registry.run(candidate, { sampleRate: 1, minSamples: 1, maxDurationSec: 60 }, controller.signal)).resolves.toMatchObject({ samples: 0 });
    expect(registry.tap('lin')).toBeUndefined();
  });

  it('ends at maxDurationSec with what it has', async () => {
    const registry = createShadowRegistry({ logger: silentLogger });
    const started = Date.now();
    const result = await registry.run(candidate, { sampleRate: 1, minSamples: 100, maxDurationSec: 1 }, new AbortController().signal);
    expect(result.samples).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    expect(registry.tap('lin')).toBeUndefined();
  });
});
