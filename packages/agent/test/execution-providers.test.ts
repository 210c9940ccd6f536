import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMlp } from '@edgefleet/shared/onnx';
import { chooseProviders, createSession, detectNvidiaGpu } from '../src/inference/execution-providers.js';
import { createWorkerPool } from '../src/inference/worker-pool.js';
import { providerFallbacks, resetSessionProviders, usableExecutionProviders } from '../src/telemetry/session-providers.js';
import { eventually, tempDir } from './support/temp.js';

const devices = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'devices');
/** What this machine's onnxruntime-node 1.30 lists: cuda and tensorrt among them, their libraries not shipped. */
const listed = ort.listSupportedBackends().map((b) => b.name);

describe('choosing execution providers (pure)', () => {
  it('auto picks cpu on this x86 box: onnxruntime lists cuda and tensorrt, but there is no GPU', () => {
    expect(listed).toEqual(expect.arrayContaining(['cpu', 'cuda', 'tensorrt']));
    expect(detectNvidiaGpu('/')).toBe(false);
    expect(chooseProviders('auto', listed, detectNvidiaGpu('/'))).toEqual(['cpu']);
  });

  it('auto would pick tensorrt, cuda, cpu on the Jetson fixture, and cpu on the Pi and the x86 box', () => {
    const auto = (root: string, backends: string[]) => chooseProviders('auto', backends, detectNvidiaGpu(join(devices, root)));
    expect(auto('jetson-orin', ['cpu', 'cuda', 'tensorrt'])).toEqual(['tensorrt', 'cuda', 'cpu']);
    // A Jetson whose onnxruntime is the CPU-only arm64 prebuilt has nothing else to try.
    expect(auto('jetson-orin', ['cpu'])).toEqual(['cpu']);
    expect(auto('raspberry-pi-4', ['cpu'])).toEqual(['cpu']);
    expect(auto('x86-box', listed)).toEqual(['cpu']);
  });

  it('an explicit list is the operator\'s word, even without a GPU or a listing', () => {
    expect(chooseProviders(['cuda', 'cpu'], ['cpu'], false)).toEqual(['cuda', 'cpu']);
  });
});

describe('opening sessions with fallback (real onnxruntime)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let path: string;
  beforeAll(async () => {
    dir = await tempDir('providers');
    path = join(dir.path, 'mlp.onnx');
    await writeFile(path, buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 }));
  });
  afterAll(async () => {
    resetSessionProviders();
    await dir.remove();
  });

  it('cuda without its libraries fails at creation: cpu opens the session, the reason is onnxruntime\'s', async () => {
    const opened = await createSession(ort, path, {}, ['cuda', 'cpu']);
    try {
      expect(opened.provider).toBe('cpu');
      expect(opened.fallbacks).toHaveLength(1);
      expect(opened.fallbacks[0]!.provider).toBe('cuda');
      expect(opened.fallbacks[0]!.reason.length).toBeGreaterThan(0);
      const out = await opened.session.run({ input: new ort.Tensor('float32', new Float32Array(4), [1, 4]) });
      expect(Object.values(out)[0]!.dims).toEqual([1, 3]);
    } finally {
      await opened.session.release();
    }
  });

  it('no provider working is an error naming every provider tried', async () => {
    await expect(createSession(ort, path, {}, ['tensorrt', 'cuda'])).rejects.toThrow(/no execution provider could open .*mlp\.onnx \(tried tensorrt, cuda\): tensorrt: .*; cuda: /);
  });

  it('providers cuda,cpu: the real worker pool logs the fallback once, records it, and serves', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const pool = createWorkerPool({ path, workers: 2, threads: 1, executionProviders: ['cuda', 'cpu'], logger: pino({ level: 'info' }, sink) });
    try {
      await pool.start();
      const result = await pool.run([{ name: 'input', type: 'float32', dims: [1, 4], data: new Float32Array([1, 2, 3, 4]) }]);
      expect(result.outputs[0]!.dims).toEqual([1, 3]);
      const warned = await eventually(() => lines.filter((l) => l.provider === 'cuda' && l.level === 40), 'fallback warning');
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ module: 'worker-slots', using: 'cpu' });
      expect(warned[0]!.msg).toMatch(/^execution provider cuda failed; falling back to cpu: ./);
      expect(usableExecutionProviders()).toEqual(['cpu']);
      expect(providerFallbacks().map((f) => f.provider)).toEqual(['cuda']);
    } finally {
      await pool.close();
    }
  });
});
