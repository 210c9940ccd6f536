import { arch, availableParallelism, cpus, platform, totalmem } from 'node:os';
import { cpuFlags } from 'systeminformation';
import type { Capabilities } from '@edgefleet/shared';
import { probeDevice, type DeviceFacts } from './device-probe/probe-device.js';
import { providerFallbacks, usableExecutionProviders } from './session-providers.js';

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
 * `executionProviders` is also the order sessions try providers in (EDGEFLEET_EXECUTION_PROVIDERS,
 * execution-providers.ts): one that fails falls back to the next, and `usableExecutionProviders`
 * says what really opened, which the hub's planner trusts over the declared list.
 */
export interface CapabilityDeclarations {
  accelerators?: string[];
  executionProviders?: string[];
  cpuFlags?: string[];
}

/** What the probe cannot read from a device tree: the running Node's view of this host. */
export interface HostFacts {
  arch: string;
  platform: string;
  cores: number;
  /** Used when /proc/meminfo is unreadable. */
  memoryMb: number;
  cpuFlags: string[];
  cpuModel: string;
}

export interface CapabilityOptions {
  /** What this onnxruntime build ships (or lists): the providers a session may ask for. */
  executionProviders: string[];
  agentVersion: string;
  declared?: CapabilityDeclarations;
}

/** Thermal zones as the reported schema carries them, hottest names kept in zone order. */
function thermalZones(temperaturesC: Record<string, number>): Capabilities['thermalZones'] {
  return Object.entries(temperaturesC).map(([name, celsius]) => ({ name: name.slice(0, 80), celsius }));
}

/**
 * The capabilities from probed facts and the host's own view. Pure: the fixture tests feed it captured
 * device trees. Declared lists replace the probed ones; optional facts a device lacks are left out.
 */
export function capabilitiesFrom(facts: DeviceFacts, host: HostFacts, opts: CapabilityOptions): Capabilities {
  const declared = opts.declared ?? {};
  const zones = thermalZones(facts.temperaturesC);
  return {
    arch: host.arch,
    platform: host.platform,
    cores: Math.max(1, host.cores),
    memoryMb: facts.memTotalMb ?? host.memoryMb,
    cpuModel: host.cpuModel.slice(0, 256),
    cpuFlags: declared.cpuFlags ?? (facts.cpuFeatures.length > 0 ? facts.cpuFeatures : host.cpuFlags),
    executionProviders: declared.executionProviders ?? (opts.executionProviders.length > 0 ? opts.executionProviders : ['cpu']),
    accelerators: declared.accelerators ?? facts.accelerators,
    agentVersion: opts.agentVersion,
    ...(facts.board !== undefined && { board: facts.board.slice(0, 256) }),
    ...(facts.l4tRelease !== undefined && { l4tRelease: facts.l4tRelease }),
    ...(facts.gpuLoadPercent !== undefined && { gpuLoadPercent: facts.gpuLoadPercent }),
    ...(zones && zones.length > 0 && { thermalZones: zones }),
  };
}

/**
 * Adds what the session workers learned to `caps`, read each time `reported` is built: the first model
 * load tells which providers really open a session (cuda is listed here but not shipped), and the
 * agent gathers its capabilities before any model loads. Getters, enumerable, so JSON and schema
 * checks see them as plain fields; absent until a session has been opened.
 */
export function withSessionProviders(caps: Capabilities): Capabilities {
  Object.defineProperty(caps, 'usableExecutionProviders', {
    enumerable: true,
    get: () => (usableExecutionProviders().length > 0 ? usableExecutionProviders() : undefined),
  });
  Object.defineProperty(caps, 'providerFallbacks', {
    enumerable: true,
    get: () => (providerFallbacks().length > 0 ? providerFallbacks() : undefined),
  });
  return caps;
}

/** What the device can do, gathered once at start from /proc, /sys and /etc; declared lists replace the probed ones. */
export async function gatherCapabilities(opts: CapabilityOptions): Promise<Capabilities> {
  const facts = await probeDevice();
  const host: HostFacts = {
    arch: arch(),
    platform: platform(),
    cores: availableParallelism(),
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    cpuFlags: await probedCpuFlags(facts),
    cpuModel: cpuModel(facts),
  };
  return withSessionProviders(capabilitiesFrom(facts, host, opts));
}
