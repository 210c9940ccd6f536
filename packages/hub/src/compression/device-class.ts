import type { Capabilities } from '@edgefleet/shared';

/** How a CPU computes int8 dot products: what decides whether int8 variants can pay on it. */
export type Int8Support = 'avx512-vnni' | 'avx-vnni' | 'avx2' | 'baseline' | 'dotprod' | 'no-dotprod';

/**
 * A device class: devices the planner treats alike, and whose benchmarks stand in for each other's.
 * `name` is what plans show and what class medians group by, e.g. "x86_64 avx512-vnni",
 * "arm64 no-dotprod+gpu"; "unknown" until the device has reported its capabilities.
 */
export interface DeviceClass {
  name: string;
  arch: string | null;
  int8: Int8Support | null;
  /** ARMv8.6 int8 matrix multiply (i8mm): noted in the name, since it makes int8 faster still. */
  i8mm: boolean;
  /** A GPU execution provider float16 can run on (see gpuComputeOf). */
  gpu: boolean;
}

export const UNKNOWN_CLASS: DeviceClass = { name: 'unknown', arch: null, int8: null, i8mm: false, gpu: false };

const ARCH_NAMES: Record<string, string> = {
  x64: 'x86_64',
  x86_64: 'x86_64',
  amd64: 'x86_64',
  arm64: 'arm64',
  aarch64: 'arm64',
  arm: 'arm32',
  armv7l: 'arm32',
  armhf: 'arm32',
};

/**
 * Execution providers that run on a GPU (or a GPU-like accelerator with float16 units), lower-case
 * without the "ExecutionProvider" suffix. Not webgpu: onnxruntime-node bundles it on every x64 Linux
 * build, so an agent lists it whether or not the device has a GPU at all.
 */
const GPU_PROVIDERS = new Set(['cuda', 'tensorrt', 'rocm', 'migraphx', 'dml', 'directml', 'coreml']);

const providerName = (ep: string) => ep.toLowerCase().replace(/executionprovider$/, '').replace(/[^a-z0-9]/g, '');

/** int8 dot-product support from the CPU flags (/proc/cpuinfo names, lower-cased). */
function int8SupportOf(arch: string, flags: ReadonlySet<string>): Int8Support {
  if (arch === 'x86_64') {
    if (flags.has('avx512_vnni') || flags.has('avx512vnni')) return 'avx512-vnni';
    if (flags.has('avx_vnni') || flags.has('avxvnni')) return 'avx-vnni';
    if (flags.has('avx2')) return 'avx2';
    return 'baseline';
  }
  if (arch === 'arm64' || arch === 'arm32') return flags.has('asimddp') || flags.has('dotprod') ? 'dotprod' : 'no-dotprod';
  return 'baseline';
}

/**
 * Whether float16 can run on a GPU here: a GPU execution provider a session really opened with
 * (`usableExecutionProviders`, reported once a model has loaded), else one the agent lists (agents
 * before issue 18 listed only the providers their onnxruntime ships). A Jetson board alone is not
 * enough: the arm64 onnxruntime-node build is CPU-only, and fp16 on its CPU runs slower than fp32.
 */
function gpuComputeOf(caps: Capabilities): boolean {
  const providers = caps.usableExecutionProviders ?? caps.executionProviders;
  return providers.some((ep) => GPU_PROVIDERS.has(providerName(ep)));
}

/** The class of a device from its reported capabilities (UNKNOWN_CLASS before it has reported any). */
export function deviceClassOf(caps: Capabilities | null | undefined): DeviceClass {
  if (!caps) return UNKNOWN_CLASS;
  const rawArch = caps.arch.toLowerCase();
  const arch = ARCH_NAMES[rawArch] ?? rawArch;
  const flags = new Set(caps.cpuFlags.map((f) => f.toLowerCase()));
  const int8 = int8SupportOf(arch, flags);
  const i8mm = int8 === 'dotprod' && flags.has('i8mm');
  const gpu = gpuComputeOf(caps);
  const name = `${arch} ${int8}${i8mm ? ' i8mm' : ''}${gpu ? '+gpu' : ''}`;
  return { name, arch, int8, i8mm, gpu };
}

/** Classes whose CPUs have int8 dot-product instructions: where int8 compute can beat float32. */
export function hasInt8DotProduct(cls: DeviceClass): boolean {
  return cls.int8 === 'avx512-vnni' || cls.int8 === 'avx-vnni' || cls.int8 === 'avx2' || cls.int8 === 'dotprod';
}
