import { existsSync, readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, platform, totalmem } from 'node:os';
import { cpuFlags } from 'systeminformation';
import type { Capabilities } from '@edgefleet/shared';

/** Accelerators visible without drivers: a Jetson shows itself in the device tree, not on PCI. */
function accelerators(): string[] {
  const found: string[] = [];
  try {
    const model = readFileSync('/proc/device-tree/model', 'utf8');
    if (/jetson/i.test(model)) found.push('nvidia-jetson');
  } catch {
    // no device tree (x86): nothing to add
  }
  if (existsSync('/dev/nvidia0')) found.push('nvidia-gpu');
  return found;
}

async function probedCpuFlags(): Promise<string[]> {
  try {
    return (await cpuFlags()).split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
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

/** What the device can do, gathered once at start (cpuFlags reads /proc/cpuinfo); declared lists replace the probed ones. */
export async function gatherCapabilities(opts: { executionProviders: string[]; agentVersion: string; declared?: CapabilityDeclarations }): Promise<Capabilities> {
  const declared = opts.declared ?? {};
  return {
    arch: arch(),
    platform: platform(),
    cores: Math.max(1, availableParallelism()),
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    cpuModel: cpus()[0]?.model?.trim() || 'unknown',
    cpuFlags: declared.cpuFlags ?? (await probedCpuFlags()),
    executionProviders: declared.executionProviders ?? (opts.executionProviders.length > 0 ? opts.executionProviders : ['cpu']),
    accelerators: declared.accelerators ?? accelerators(),
    agentVersion: opts.agentVersion,
  };
}
