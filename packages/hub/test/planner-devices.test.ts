import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Capabilities, Profile, VariantDetail } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { deviceClassOf } from '../src/compression/device-class.js';
import { planDevice } from '../src/compression/planner.js';

// The planner ranks variants from what the three captured devices report (the agent's fixture tests
// keep expected-capabilities.json equal to what probe → capabilities gives for each device tree).

const devices = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'agent', 'test', 'fixtures', 'devices');
const reported = (name: string): Capabilities => JSON.parse(readFileSync(join(devices, name, 'expected-capabilities.json'), 'utf8')) as Capabilities;
const PI4 = reported('raspberry-pi-4');
const JETSON = reported('jetson-orin');
const X86 = reported('x86-box');
/** The Jetson once a session fell back: its onnxruntime (the arm64 prebuilt) opened only cpu. */
const JETSON_CPU_ONLY: Capabilities = { ...JETSON, usableExecutionProviders: ['cpu'], providerFallbacks: [{ provider: 'tensorrt', reason: 'Failed to load shared library' }, { provider: 'cuda', reason: 'Failed to load shared library' }] };
const JETSON_TENSORRT: Capabilities = { ...JETSON, usableExecutionProviders: ['tensorrt'] };

const MB = 1024 * 1024;
const sha = (profile: string) => Buffer.from(profile).toString('hex').padEnd(64, '0');

/** An accepted variant whose hub-measured latency is `latencyRatio` of fp32's (the measured speedups of REFERENCES.md). */
function variant(profile: Profile, latencyRatio: number, size: number): VariantDetail {
  const s = sha(profile);
  return {
    model: 'm',
    version: '1',
    profile,
    state: 'accepted',
    reason: null,
    sha256: s,
    size,
    transfer: null,
    evaluation:
      profile === 'fp32'
        ? null
        : { samples: 100, data: 'generated', agreement: 1, accuracy: null, fp32Accuracy: null, maxAbsError: 0.01, meanAbsError: 0.001, relativeError: 0.01, sizeRatio: size / (4 * MB), transferRatio: size / (4 * MB), latencyMs: latencyRatio, fp32LatencyMs: 1, latencyRatio, quantizedWeightShare: 0.99, notes: [] },
    manifest: { manifest: { v: 1, model: 'm', version: '1', profile, sha256: s, size, inputs: [], outputs: [], golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } }, createdAt: '' }, signature: 'sig' },
    createdAt: '',
    updatedAt: '',
  };
}

/** A conv net as measured here: int8-static 0.48x, int8-dynamic 0.6x; fp16 on a CPU slower (casts). */
const CONV_NET = [variant('fp32', 1, 4 * MB), variant('fp16', 1.8, 2 * MB), variant('int8-dynamic', 0.6, MB), variant('int8-static', 0.48, MB)];
/** A digits-sized model: int8 measured 1.2x slower (the Q/DQ nodes cost more than the tiny matmuls save). */
const TINY = [variant('fp32', 1, 40_000), variant('fp16', 2, 20_000), variant('int8-static', 1.2, 12_000)];

const plan = (capabilities: Capabilities, variants: VariantDetail[]) =>
  planDevice({ deviceId: 'd1', capabilities, model: 'm', version: '1', variants, deviceMeasurements: [], classMeasurements: [], plannedAt: 'now' });
const eligible = (capabilities: Capabilities, variants: VariantDetail[]) => plan(capabilities, variants).candidates.filter((c) => c.eligible).map((c) => c.profile);

describe('planning from the captured devices’ capabilities', () => {
  it('classes: VNNI x86, a Pi 4 without dot product, a Jetson with a GPU provider only while one opens', () => {
    expect(deviceClassOf(X86).name).toBe('x86_64 avx512-vnni');
    expect(deviceClassOf(PI4).name).toBe('arm64 no-dotprod');
    expect(deviceClassOf(JETSON).name).toBe('arm64 dotprod+gpu');
    expect(deviceClassOf(JETSON_TENSORRT).name).toBe('arm64 dotprod+gpu');
    expect(deviceClassOf(JETSON_CPU_ONLY).name).toBe('arm64 dotprod');
  });

  it.each([
    ['x86 box (avx512_vnni)', X86, 'int8-static', ['fp32', 'int8-dynamic', 'int8-static'], /x86_64 avx512-vnni has int8 dot products/],
    ['Raspberry Pi 4 (no asimddp)', PI4, 'fp32', ['fp32'], /int8-static: no int8 dot-product instructions on arm64 no-dotprod/],
    ['Jetson Orin, TensorRT opened', JETSON_TENSORRT, 'fp16', ['fp32', 'fp16', 'int8-dynamic', 'int8-static'], /GPU, where float16/],
    ['Jetson Orin, GPU providers listed (before a model loaded)', JETSON, 'fp16', ['fp32', 'fp16', 'int8-dynamic', 'int8-static'], /GPU, where float16/],
    ['Jetson Orin, fell back to cpu', JETSON_CPU_ONLY, 'int8-static', ['fp32', 'int8-dynamic', 'int8-static'], /arm64 dotprod has int8 dot products/],
  ] as const)('conv net on %s → %s', (_name, caps, profile, eligibleProfiles, reason) => {
    const p = plan(caps, CONV_NET);
    expect(p.profile).toBe(profile);
    expect(p.reason).toMatch(reason);
    expect(eligible(caps, CONV_NET)).toEqual(eligibleProfiles);
  });

  it('fp16 ranks below fp32 on every CPU-only device, int8 below fp32 where there is no dot product', () => {
    for (const caps of [X86, PI4, JETSON_CPU_ONLY]) expect(plan(caps, CONV_NET).candidates.find((c) => c.profile === 'fp16')!.note).toMatch(/needs a GPU/);
    expect(plan(PI4, CONV_NET).candidates.find((c) => c.profile === 'int8-dynamic')).toMatchObject({ eligible: false });
  });

  it('a model too small for int8 stays fp32 even with dot products', () => {
    expect(plan(X86, TINY).profile).toBe('fp32');
    expect(plan(JETSON_CPU_ONLY, TINY).profile).toBe('fp32');
  });
});
