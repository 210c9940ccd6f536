import { Compile } from 'typebox/compile';
import { describe, expect, it } from 'vitest';
import { Capabilities } from '@edgefleet/shared';
import { parseCommand, type RunConfig } from '../src/config.js';
import { gatherCapabilities } from '../src/telemetry/capabilities.js';

const capabilitiesCheck = Compile(Capabilities);

function runConfig(argv: string[], env: Record<string, string>): RunConfig {
  const command = parseCommand(['run', ...argv], env);
  if (command.command !== 'run') throw new Error(`expected run, got ${command.command}`);
  return command.config;
}

describe('declared capabilities', () => {
  it('are absent unless declared, and read from env or flags (flags win)', () => {
    expect(runConfig([], {}).capabilities).toBeUndefined();
    expect(runConfig([], { EDGEFLEET_ACCELERATORS: '' }).capabilities).toBeUndefined();
    expect(runConfig([], { EDGEFLEET_ACCELERATORS: 'nvidia-jetson, hailo-8,nvidia-jetson' }).capabilities).toEqual({ accelerators: ['nvidia-jetson', 'hailo-8'] });
    // CPU flags as /proc/cpuinfo lists them (spaces) or as a comma list.
    expect(
      runConfig(['--cpu-flags', 'fp,asimd'], { EDGEFLEET_CPU_FLAGS: 'fp asimd asimddp', EDGEFLEET_EXECUTION_PROVIDERS: 'cpu,cuda', EDGEFLEET_ACCELERATORS: 'none' }).capabilities,
    ).toEqual({ cpuFlags: ['fp', 'asimd'], executionProviders: ['cpu', 'cuda'], accelerators: [] });
  });

  it('name the key when a value is out of bounds', () => {
    expect(() => runConfig([], { EDGEFLEET_ACCELERATORS: 'nvidia gpu!' })).toThrow(
      'accelerators (--accelerators, EDGEFLEET_ACCELERATORS) has "gpu!", expected names of 1 to 64 characters of [A-Za-z0-9_.+-] separated by commas',
    );
    expect(() => runConfig(['--execution-providers', 'x'.repeat(65)], {})).toThrow(/^executionProviders \(--execution-providers, EDGEFLEET_EXECUTION_PROVIDERS\) has "x{65}"/);
    const many = Array.from({ length: 33 }, (_, i) => `npu${i}`).join(',');
    expect(() => runConfig([], { EDGEFLEET_ACCELERATORS: many })).toThrow('accelerators (--accelerators, EDGEFLEET_ACCELERATORS) lists 33 names, expected at most 32');
    const flags = Array.from({ length: 513 }, (_, i) => `f${i}`).join(' ');
    expect(() => runConfig([], { EDGEFLEET_CPU_FLAGS: flags })).toThrow(/^cpuFlags \(--cpu-flags, EDGEFLEET_CPU_FLAGS\) lists 513 names, expected at most 512$/);
  });

  it('replace the probed values in the reported capabilities, and only the declared ones', async () => {
    const probed = await gatherCapabilities({ executionProviders: ['cpu'], agentVersion: '0.1.0' });
    const declared = runConfig([], { EDGEFLEET_ACCELERATORS: 'hailo-8', EDGEFLEET_CPU_FLAGS: 'fp asimd' }).capabilities!;
    const reported = await gatherCapabilities({ executionProviders: ['cpu'], agentVersion: '0.1.0', declared });
    expect(reported).toEqual({ ...probed, accelerators: ['hailo-8'], cpuFlags: ['fp', 'asimd'] });
    expect(capabilitiesCheck.Check(reported)).toBe(true);

    const simulated = await gatherCapabilities({ executionProviders: ['cpu'], agentVersion: '0.1.0', declared: { executionProviders: ['cpu', 'cuda', 'tensorrt'], accelerators: [] } });
    expect(simulated).toMatchObject({ executionProviders: ['cpu', 'cuda', 'tensorrt'], accelerators: [], cpuFlags: probed.cpuFlags });
    expect(capabilitiesCheck.Check(simulated)).toBe(true);
  });
});
