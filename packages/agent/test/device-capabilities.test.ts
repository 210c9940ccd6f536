import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage, encodeMessage, type Capabilities, type ReportedMessage, type TelemetryMessage } from '@edgefleet/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { capabilitiesFrom, withSessionProviders, type HostFacts } from '../src/telemetry/capabilities.js';
import { probeDevice } from '../src/telemetry/device-probe/probe-device.js';
import { createSystemSampler } from '../src/telemetry/system-stats.js';
import { noteSessionProviders, resetSessionProviders } from '../src/telemetry/session-providers.js';

// Acceptance 5: the captured device trees give the expected capabilities through the whole path,
// probe → capabilities → a `reported` message the hub's schema accepts.

const devices = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'devices');

/** What Node would say on each device (the probe cannot read it from the tree), and what its onnxruntime lists. */
const HOSTS: Record<string, { arch: string; cores: number; listed: string[] }> = {
  'raspberry-pi-4': { arch: 'arm64', cores: 4, listed: ['cpu'] },
  'jetson-orin': { arch: 'arm64', cores: 12, listed: ['cpu', 'cuda', 'tensorrt'] },
  'x86-box': { arch: 'x64', cores: 2, listed: ['cpu', 'webgpu'] },
};

async function fixtureCapabilities(name: string): Promise<Capabilities> {
  const facts = await probeDevice(join(devices, name));
  const h = HOSTS[name]!;
  // memoryMb 1 is Node's fallback: each tree's /proc/meminfo must win over it.
  const host: HostFacts = { arch: h.arch, platform: 'linux', cores: h.cores, memoryMb: 1, cpuFlags: [], cpuModel: facts.cpuModel ?? 'unknown' };
  return capabilitiesFrom(facts, host, { executionProviders: h.listed, agentVersion: '0.1.0' });
}

/** Through the wire as the agent publishes it and the hub decodes it. */
function roundTrip(capabilities: Capabilities): ReportedMessage {
  const message: ReportedMessage = { capabilities, models: [], desiredVersion: 0, ts: 1_700_000_000_000 };
  const decoded = decodeMessage('reported', encodeMessage('reported', message));
  if (!decoded.ok) throw new Error(`reported message rejected: ${decoded.error}`);
  return decoded.value;
}

afterEach(() => resetSessionProviders());

describe('capabilities from captured device trees', () => {
  it.each(Object.keys(HOSTS))('%s: probe → capabilities → schema-valid reported, equal to expected-capabilities.json', async (name) => {
    const caps = await fixtureCapabilities(name);
    expect(roundTrip(caps).capabilities).toEqual(caps);
    const expected = JSON.parse(await readFile(join(devices, name, 'expected-capabilities.json'), 'utf8')) as Capabilities;
    expect(caps).toEqual(expected);
  });

  it('Raspberry Pi 4: board, no dot product, its memory and one zone, no GPU facts', async () => {
    const caps = await fixtureCapabilities('raspberry-pi-4');
    expect(caps).toMatchObject({ board: 'Raspberry Pi 4 Model B Rev 1.4', cpuModel: 'Cortex-A72', memoryMb: 3794, accelerators: [], thermalZones: [{ name: 'cpu-thermal', celsius: 48.7 }] });
    expect(caps.cpuFlags).not.toContain('asimddp');
    expect(caps).not.toHaveProperty('l4tRelease');
    expect(caps).not.toHaveProperty('gpuLoadPercent');
  });

  it('Jetson Orin: L4T release, GPU load, named zones (the unpopulated one left out), dotprod', async () => {
    const caps = await fixtureCapabilities('jetson-orin');
    expect(caps).toMatchObject({ board: 'NVIDIA Jetson AGX Orin Developer Kit', l4tRelease: '35.4.1', gpuLoadPercent: 34.5, accelerators: ['nvidia-jetson'], memoryMb: 30292 });
    expect(caps.thermalZones).toEqual([
      { name: 'cpu-thermal', celsius: 47.5 },
      { name: 'gpu-thermal', celsius: 45.8 },
      { name: 'tj-thermal', celsius: 48.1 },
    ]);
    expect(caps.cpuFlags).toContain('asimddp');
  });

  it('x86 box: AVX2 and AVX512-VNNI, no board, two zones', async () => {
    const caps = await fixtureCapabilities('x86-box');
    expect(caps.cpuFlags).toEqual(expect.arrayContaining(['avx2', 'avx512_vnni']));
    expect(caps).not.toHaveProperty('board');
    expect(caps.thermalZones?.map((z) => z.name)).toEqual(['acpitz', 'x86_pkg_temp']);
  });

  it('an old agent\'s capabilities (no optional field) still validate', () => {
    const old: Capabilities = { arch: 'arm64', platform: 'linux', cores: 4, memoryMb: 3794, cpuModel: 'Cortex-A72', cpuFlags: ['fp'], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.0.9' };
    expect(roundTrip(old).capabilities).toEqual(old);
  });

  it('reports the providers sessions really opened with, and why others failed, once a model has loaded', async () => {
    const caps = withSessionProviders(await fixtureCapabilities('x86-box'));
    expect(roundTrip(caps).capabilities).not.toHaveProperty('usableExecutionProviders');
    expect(noteSessionProviders('cpu', [{ provider: 'cuda', reason: 'libonnxruntime_providers_cuda.so: cannot open shared object file' }])).toBe(true);
    // A second worker saying the same teaches nothing: the caller logs only what is new.
    expect(noteSessionProviders('cpu', [{ provider: 'cuda', reason: 'same' }])).toBe(false);
    const sent = roundTrip(caps).capabilities;
    expect(sent.usableExecutionProviders).toEqual(['cpu']);
    expect(sent.providerFallbacks).toEqual([{ provider: 'cuda', reason: 'libonnxruntime_providers_cuda.so: cannot open shared object file' }]);
  });

  it('keeps what a long provider list of the operator teaches within what `reported` carries', async () => {
    const caps = withSessionProviders(await fixtureCapabilities('x86-box'));
    const failed = Array.from({ length: 12 }, (_, i) => ({ provider: `made-up-${i}-${'x'.repeat(80)}`, reason: 'r'.repeat(2000) }));
    noteSessionProviders('cpu', failed);
    const sent = roundTrip(caps).capabilities;
    expect(sent.providerFallbacks).toHaveLength(8);
    expect(sent.providerFallbacks?.every((f) => f.provider.length === 64 && f.reason.length === 512)).toBe(true);
  });
});

describe('periodic GPU load and temperatures (telemetry)', () => {
  it('the Jetson tree gives GPU load and every named zone in a schema-valid telemetry record; a tree without them adds nothing', async () => {
    const dir = join(devices, 'jetson-orin');
    const system = await createSystemSampler({ stateDir: dir, rss: () => 50 * 1024 * 1024, sysRoot: dir }).sample();
    expect(system.gpuLoadPercent).toBe(34.5);
    expect(system.thermalZones?.map((z) => z.name)).toEqual(['cpu-thermal', 'gpu-thermal', 'tj-thermal']);
    const record: TelemetryMessage = { v: 1, seq: 1, ts: 1_700_000_000_000, system, models: [] };
    const decoded = decodeMessage('telemetry', encodeMessage('telemetry', record));
    expect(decoded.ok ? decoded.value.system : decoded.error).toEqual(system);
    const bare = await createSystemSampler({ stateDir: dir, rss: () => 0, sysRoot: join(dir, 'nothing-here') }).sample();
    expect(bare).not.toHaveProperty('gpuLoadPercent');
    expect(bare).not.toHaveProperty('thermalZones');
  });
});
