import { BenchmarkResult, MAX_BENCHMARK_LATENCY_MS, PROFILES, type Capabilities, type Profile, type VariantDetail, type VariantEvaluation } from '@edgefleet/shared';
import { Compile } from 'typebox/compile';
import { describe, expect, it } from 'vitest';
import { deviceClassOf } from '../src/compression/device-class.js';
import { classMedians, MIN_CLASS_DEVICES, planDevice, type MeasuredLatency, type PlanInput } from '../src/compression/planner.js';

const MB = 1024 * 1024;
const sha = (profile: string) => (profile.charCodeAt(0).toString(16) + profile.length.toString(16) + profile.charCodeAt(profile.length - 1).toString(16)).padEnd(64, '0');

function caps(over: Partial<Capabilities> = {}): Capabilities {
  return { arch: 'x64', platform: 'linux', cores: 4, memoryMb: 8192, cpuModel: 'cpu', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0', ...over };
}

function evaluation(latencyRatio: number, transferRatio = 0.3): VariantEvaluation {
  return {
    samples: 100,
    data: 'generated',
    agreement: 1,
    accuracy: null,
    fp32Accuracy: null,
    maxAbsError: 0.01,
    meanAbsError: 0.001,
    relativeError: 0.01,
    sizeRatio: 0.3,
    transferRatio,
    latencyMs: latencyRatio,
    fp32LatencyMs: 1,
    latencyRatio,
    quantizedWeightShare: 0.99,
    notes: [],
  };
}

/** An accepted variant; fp32 is `size` bytes, the others a share of it. */
function variant(profile: Profile, opts: { latencyRatio?: number; size?: number; transfer?: number } = {}): VariantDetail {
  const size = opts.size ?? 4 * MB;
  const s = sha(profile);
  return {
    model: 'm',
    version: '1',
    profile,
    state: 'accepted',
    reason: null,
    sha256: s,
    size,
    transfer: opts.transfer === undefined ? null : { encoding: 'zstd', size: opts.transfer, sha256: s.replace(/0/g, 'f') },
    evaluation: profile === 'fp32' ? null : evaluation(opts.latencyRatio ?? 1, (opts.transfer ?? size) / (4 * MB)),
    manifest: {
      manifest: { v: 1, model: 'm', version: '1', profile, sha256: s, size, inputs: [], outputs: [], golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } }, createdAt: '' },
      signature: 'sig',
    },
    createdAt: '',
    updatedAt: '',
  };
}

/** Every profile of a model big enough for int8 to pay (hub: int8-static 0.45x, int8-dynamic 0.6x). */
const BIG = [
  variant('fp32'),
  variant('fp16', { latencyRatio: 1.8, size: 2 * MB }),
  variant('int8-dynamic', { latencyRatio: 0.6, size: MB }),
  variant('int8-static', { latencyRatio: 0.45, size: MB }),
  variant('int8-weights', { latencyRatio: 1.02, size: MB }),
  variant('pruned', { latencyRatio: 1.0, size: MB, transfer: MB / 2 }),
];
/** A model too small for int8: the hub measured it slower. */
const SMALL = [variant('fp32'), variant('int8-static', { latencyRatio: 1.2 }), variant('int8-dynamic', { latencyRatio: 1.1 }), variant('fp16', { latencyRatio: 2 })];

const X86_VNNI = caps({ cpuFlags: ['sse4_2', 'avx2', 'avx512f', 'avx512_vnni'] });
const X86_AVX2 = caps({ cpuFlags: ['sse4_2', 'avx2'] });
const X86_OLD = caps({ cpuFlags: ['sse4_2'] });
const PI4 = caps({ arch: 'arm64', cpuFlags: ['fp', 'asimd', 'crc32'], memoryMb: 4096 });
const PI5 = caps({ arch: 'arm64', cpuFlags: ['fp', 'asimd', 'asimddp'] });
const JETSON = caps({ arch: 'arm64', cpuFlags: ['fp', 'asimd', 'asimddp'], accelerators: ['nvidia-jetson'], executionProviders: ['cuda', 'cpu'] });
const TINY = caps({ arch: 'arm', cpuFlags: ['half', 'neon'], memoryMb: 16 });

const plan = (over: Partial<PlanInput>) =>
  planDevice({ deviceId: 'd1', capabilities: X86_VNNI, model: 'm', version: '1', variants: BIG, deviceMeasurements: [], classMeasurements: [], plannedAt: 'now', ...over });
const measured = (deviceId: string, p50: Partial<Record<Profile, number>>): MeasuredLatency[] =>
  Object.entries(p50).map(([profile, p50Ms]) => ({ deviceId, sha256: sha(profile), p50Ms: p50Ms! }));

describe('device classes', () => {
  it.each([
    [X86_VNNI, 'x86_64 avx512-vnni'],
    [caps({ cpuFlags: ['avx2', 'avx_vnni'] }), 'x86_64 avx-vnni'],
    [X86_AVX2, 'x86_64 avx2'],
    [X86_OLD, 'x86_64 baseline'],
    [PI4, 'arm64 no-dotprod'],
    [PI5, 'arm64 dotprod'],
    [caps({ arch: 'aarch64', cpuFlags: ['asimddp', 'i8mm'] }), 'arm64 dotprod i8mm'],
    [JETSON, 'arm64 dotprod+gpu'],
    [caps({ arch: 'arm64', cpuFlags: [], executionProviders: ['CUDAExecutionProvider'] }), 'arm64 no-dotprod+gpu'],
    // onnxruntime-node bundles webgpu on every x64 Linux build: listed with or without a GPU.
    [caps({ cpuFlags: ['avx2'], executionProviders: ['cpu', 'webgpu'] }), 'x86_64 avx2'],
    [TINY, 'arm32 no-dotprod'],
    [caps({ arch: 'riscv64' }), 'riscv64 baseline'],
    [null, 'unknown'],
  ])('%# → %s', (c, name) => {
    expect(deviceClassOf(c).name).toBe(name);
  });
});

describe('planner rule (no measurements)', () => {
  it.each([
    // class, variants, expected profile, words the reason must hold
    ['x86 with VNNI, big model', X86_VNNI, BIG, 'int8-static', /int8 dot products.*int8-static at 0\.45x/],
    ['x86 with AVX2 only', X86_AVX2, BIG, 'int8-static', /x86_64 avx2 has int8 dot products/],
    ['old x86', X86_OLD, BIG, 'fp32', /no variant is expected to run faster than fp32 on x86_64 baseline.*fp16: float16 compute needs a GPU/],
    ['Pi 4 (no dotprod)', PI4, BIG, 'fp32', /int8-static: no int8 dot-product instructions on arm64 no-dotprod/],
    ['Pi 5 (dotprod)', PI5, BIG, 'int8-static', /arm64 dotprod has int8 dot products/],
    ['Jetson (GPU)', JETSON, BIG, 'fp16', /GPU, where float16/],
    ['x86 VNNI, small model', X86_VNNI, SMALL, 'fp32', /int8-static: the hub measured 1\.20x fp32 latency: the model is too small for int8 to pay/],
    ['no capabilities yet', null, BIG, 'fp32', /capabilities not reported yet/],
  ] as const)('%s → %s', (_name, capabilities, variants, profile, reason) => {
    const p = plan({ capabilities, variants });
    expect(p.profile).toBe(profile);
    expect(p.decidedBy).toBe('rule');
    expect(p.reason).toMatch(reason);
    expect(p.sha256).toBe(sha(profile));
    // Every accepted variant is a candidate with the rule's note on it.
    expect(p.candidates.map((c) => c.profile)).toEqual(PROFILES.filter((x) => variants.some((v) => v.profile === x)));
    expect(p.candidates.every((c) => c.note.length > 0 && c.measuredP50Ms === null)).toBe(true);
  });

  it('never picks int8-weights or pruned for speed, and says why', () => {
    const p = plan({ capabilities: X86_OLD });
    const weights = p.candidates.find((c) => c.profile === 'int8-weights')!;
    expect(weights).toMatchObject({ eligible: false, hubLatencyRatio: 1.02 });
    expect(weights.note).toMatch(/runs at fp32 speed \(weights widened at load\): only a smaller download \(0\.25x of fp32's\)/);
    expect(p.candidates.find((c) => c.profile === 'fp32')).toMatchObject({ eligible: true, hubLatencyRatio: null });
  });

  it('a device short of memory gets the smallest download that runs at fp32 speed', () => {
    const big = [variant('fp32', { size: 8 * MB }), variant('int8-weights', { size: 2 * MB }), variant('pruned', { size: 2 * MB, transfer: MB }), variant('int8-static', { latencyRatio: 1.3, size: 2 * MB })];
    const p = plan({ capabilities: TINY, variants: big });
    expect(p).toMatchObject({ profile: 'pruned', decidedBy: 'rule', deviceClass: 'arm32 no-dotprod' });
    expect(p.reason).toMatch(/the fp32 file \(8\.0 MB\) is more than 1\/8 of this device's 16 MB memory: pruned is the smallest download \(0\.13x\) and runs at fp32 speed/);
    expect(p.candidates.find((c) => c.profile === 'pruned')).toMatchObject({ eligible: true });
    // With memory to spare the same device class stays on fp32.
    expect(plan({ capabilities: { ...TINY, memoryMb: 1024 }, variants: big }).profile).toBe('fp32');
  });

  it('fp32 alone is the default; a pinned profile wins; an unaccepted pin names the accepted ones', () => {
    expect(plan({ variants: [variant('fp32')] })).toMatchObject({ profile: 'fp32', decidedBy: 'default', reason: 'fp32 is the only accepted variant of m@1' });
    expect(plan({ capabilities: PI4, pinned: 'int8-dynamic' })).toMatchObject({ profile: 'int8-dynamic', decidedBy: 'pinned', reason: 'pinned by the rollout to int8-dynamic' });
    expect(() => plan({ variants: SMALL, pinned: 'pruned' })).toThrow(/profile pruned is not an accepted variant of m@1: accepted are fp32, fp16, int8-dynamic, int8-static/);
  });

  it('leaves out variants that cannot be deployed (no manifest, not accepted)', () => {
    const rejected = { ...variant('int8-static', { latencyRatio: 0.4 }), state: 'rejected' as const };
    const unsigned = { ...variant('int8-dynamic', { latencyRatio: 0.4 }), manifest: null };
    const p = plan({ variants: [variant('fp32'), rejected, unsigned] });
    expect(p).toMatchObject({ profile: 'fp32', decidedBy: 'default' });
    expect(p.candidates).toHaveLength(1);
  });
});

describe('planner measurement (beats the rule)', () => {
  it.each([
    ['int8 measured faster where the rule says no', PI4, measured('d1', { fp32: 2.03, 'int8-static': 1.21 }), 'int8-static', /^measured on this device: int8-static p50 1\.21 ms vs fp32 2\.03 ms \(0\.60x\)$/],
    ['int8 measured slower where the rule says yes', X86_VNNI, measured('d1', { fp32: 2, 'int8-static': 2.6, 'int8-dynamic': 2.4 }), 'fp32', /fp32 p50 2\.00 ms; the fastest other, int8-dynamic at 2\.40 ms \(1\.20x\), is not at least 5 % faster/],
    ['within the 5 % noise margin fp32 stays', X86_VNNI, measured('d1', { fp32: 10, 'int8-static': 9.6 }), 'fp32', /int8-static at 9\.60 ms \(0\.96x\), is not at least 5 % faster/],
    ['fp16 measured fastest on a CPU is still chosen', X86_OLD, measured('d1', { fp32: 150, fp16: 120 }), 'fp16', /fp16 p50 120 ms vs fp32 150 ms \(0\.80x\)/],
  ] as const)('%s → %s', (_name, capabilities, deviceMeasurements, profile, reason) => {
    const p = plan({ capabilities, deviceMeasurements });
    expect(p).toMatchObject({ profile, decidedBy: 'measurement' });
    expect(p.reason).toMatch(reason);
  });

  it('fp32 alone measured is not a measurement: the rule decides', () => {
    expect(plan({ capabilities: PI4, deviceMeasurements: measured('d1', { fp32: 2 }) })).toMatchObject({ profile: 'fp32', decidedBy: 'rule' });
  });

  it('falls back to the median of other devices of the class, never mixing sources, and shows each candidate measured where', () => {
    const classMeasurements = [
      ...measured('d2', { fp32: 2, 'int8-static': 1 }),
      ...measured('d3', { fp32: 4, 'int8-static': 3 }),
      ...measured('d4', { fp32: 3, 'int8-static': 1.4 }),
      // The device's own row in the class list does not count twice.
      ...measured('d1', { fp32: 100, 'int8-static': 100 }),
    ];
    const p = plan({ capabilities: PI4, classMeasurements, deviceMeasurements: measured('d1', { 'int8-dynamic': 5 }) });
    expect(p).toMatchObject({ profile: 'int8-static', decidedBy: 'measurement' });
    expect(p.reason).toBe('measured on 3 other devices of class arm64 no-dotprod (median): int8-static p50 1.40 ms vs fp32 3.00 ms (0.47x)');
    expect(p.candidates.find((c) => c.profile === 'int8-dynamic')).toMatchObject({ measuredP50Ms: 5, measuredOn: 'device' });
    expect(p.candidates.find((c) => c.profile === 'int8-static')).toMatchObject({ measuredP50Ms: 1.4, measuredOn: 'class', eligible: true });
    expect(p.candidates.find((c) => c.profile === 'int8-static')!.note).toMatch(/no int8 dot-product instructions.*chosen by measurement/);
  });

  it('a device without capabilities does not borrow a class', () => {
    const p = plan({ capabilities: null, classMeasurements: [...measured('d2', { fp32: 2, 'int8-static': 1 }), ...measured('d3', { fp32: 2, 'int8-static': 1 })] });
    expect(p).toMatchObject({ profile: 'fp32', decidedBy: 'rule', deviceClass: 'unknown' });
  });

  it('class medians: middle value, mean of the two middle ones; a variant one device measured has none', () => {
    const m = classMedians([...measured('a', { fp32: 1 }), ...measured('b', { fp32: 5 }), ...measured('c', { fp32: 2 }), ...measured('d', { fp32: 4, pruned: 7 })], 'x');
    expect(m.devices).toBe(4);
    expect(m.p50.get(sha('fp32'))).toBe(3);
    expect(m.p50.has(sha('pruned'))).toBe(false);
    expect(MIN_CLASS_DEVICES).toBe(2);
  });

  it('one other device of the class does not re-plan the class: its numbers need a second device', () => {
    // One device claims int8 is 2000 times faster; the rule (fp32 on a Pi 4) stands.
    const one = measured('d2', { fp32: 2, 'int8-static': 0.001 });
    const alone = plan({ capabilities: PI4, classMeasurements: one });
    expect(alone).toMatchObject({ profile: 'fp32', decidedBy: 'rule' });
    expect(alone.candidates.every((c) => c.measuredP50Ms === null)).toBe(true);
    // The same device listed twice is still one device.
    expect(plan({ capabilities: PI4, classMeasurements: [...one, ...one] })).toMatchObject({ profile: 'fp32', decidedBy: 'rule' });
    // A second device that measured fp32 only: int8-static still has one device's number, and fp32 alone is not a measurement.
    expect(plan({ capabilities: PI4, classMeasurements: [...one, ...measured('d3', { fp32: 2.2 })] })).toMatchObject({ profile: 'fp32', decidedBy: 'rule' });
    const two = plan({ capabilities: PI4, classMeasurements: [...one, ...measured('d3', { fp32: 2.2, 'int8-static': 1.4 })] });
    expect(two).toMatchObject({ profile: 'int8-static', decidedBy: 'measurement' });
    expect(two.reason).toMatch(/^measured on 2 other devices of class arm64 no-dotprod \(median\)/);
  });
});

describe('benchmark measurement bounds (the device’s numbers)', () => {
  const check = Compile(BenchmarkResult);
  const result = (p50Ms: number, p90Ms = 1) => ({ model: 'm', version: '1', threads: 1, measurements: [{ profile: 'fp32', sha256: sha('fp32'), ok: true, p50Ms, p90Ms, runs: 30 }] });
  it.each([
    [0, false],
    [-1, false],
    [MAX_BENCHMARK_LATENCY_MS + 1, false],
    [0.001, true],
    [MAX_BENCHMARK_LATENCY_MS, true],
  ])('p50 %s ms → valid %s', (p50Ms, valid) => {
    expect(check.Check(result(p50Ms))).toBe(valid);
    expect(check.Check(result(1, p50Ms))).toBe(valid);
  });
});
