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

/** What the device can do, gathered once at start (cpuFlags reads /proc/cpuinfo). */
export async function gatherCapabilities(opts: { executionProviders: string[]; agentVersion: string }): Promise<Capabilities> {
  let flags: string[] = [];
  try {
    flags = (await cpuFlags()).split(/\s+/).filter(Boolean);
  } catch {
    flags = [];
  }
  return {
    arch: arch(),
    platform: platform(),
    cores: Math.max(1, availableParallelism()),
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    cpuModel: cpus()[0]?.model?.trim() || 'unknown',
    cpuFlags: flags,
    executionProviders: opts.executionProviders.length > 0 ? opts.executionProviders : ['cpu'],
    accelerators: accelerators(),
    agentVersion: opts.agentVersion,
  };
}
