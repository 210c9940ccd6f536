import { arch, availableParallelism, cpus, platform, totalmem } from 'node:os';
import { cpuFlags } from 'systeminformation';
import type { Capabilities } from '@edgefleet/shared';
import { probeDevice, type DeviceFacts } from './device-probe/probe-device.js';

/** systeminformation covers what /proc/cpuinfo cannot (macOS, Windows, a sandbox that hides /proc). */
async function probedCpuFlags(facts: DeviceFacts): Promise<string[]> {
  if (facts.cpuFeatures.length > 0) return facts.cpuFeatures;
  try {
    return (await cpuFlags()).split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Node's model comes from `model name`, which arm64 kernels do not print ("unknown" or empty);
 * there the probe's core name from `CPU part` ("Cortex-A72") is the better one.
 */
function cpuModel(facts: DeviceFacts): string {
  const fromNode = cpus()[0]?.model?.trim();
  const isArm = arch() === 'arm64' || arch() === 'arm';
  if (facts.cpuModel !== undefined && (isArm || !fromNode || fromNode === 'unknown')) return facts.cpuModel;
  return fromNode || 'unknown';
}

/**
 * Capabilities the operator declares in the agent's config; each list given REPLACES the probed one
 * in `reported`. For what the probe cannot see (a Jetson module without a device tree, a PCIe NPU
 * behind a vendor driver) and for fleet simulation (an x86 box reporting a Pi's CPU flags).
 * `executionProviders` changes only what is reported to the hub's planner: the sessions this agent
 * creates keep using the providers its onnxruntime build ships (CPU), so a declared "cuda" is a
 * claim for planning and benchmarking, never a provider a session is opened with.
 */
export interface CapabilityDeclarations {
  accelerators?: string[];
  executionProviders?: string[];
  cpuFlags?: string[];
}

/** What the device can do, gathered once at start from /proc, /sys and /etc; declared lists replace the probed ones. */
export async function gatherCapabilities(opts: { executionProviders: string[]; agentVersion: string; declared?: CapabilityDeclarations }): Promise<Capabilities> {
  const declared = opts.declared ?? {};
  const facts = await probeDevice();
  return {
    arch: arch(),
    platform: platform(),
    cores: Math.max(1, availableParallelism()),
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    cpuModel: cpuModel(facts),
    cpuFlags: declared.cpuFlags ?? (await probedCpuFlags(facts)),
    executionProviders: declared.executionProviders ?? (opts.executionProviders.length > 0 ? opts.executionProviders : ['cpu']),
    accelerators: declared.accelerators ?? facts.accelerators,
    agentVersion: opts.agentVersion,
  };
}
