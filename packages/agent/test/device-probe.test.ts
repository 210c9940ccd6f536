import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseDeviceTreeModel, parseTegraRelease } from '../src/telemetry/device-probe/board.js';
import { parseCpuInfo } from '../src/telemetry/device-probe/cpuinfo.js';
import { parseGpuLoad, parseThermalTemp } from '../src/telemetry/device-probe/jetson-sysfs.js';
import { probeDevice } from '../src/telemetry/device-probe/probe-device.js';
import { tempDir } from './support/temp.js';

const devices = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'devices');

describe('device probe on captured device trees', () => {
  it('Raspberry Pi 4: board, Cortex-A72 without dot product, one thermal zone, no accelerator', async () => {
    const facts = await probeDevice(join(devices, 'raspberry-pi-4'));
    expect(facts).toEqual({
      board: 'Raspberry Pi 4 Model B Rev 1.4',
      cpuModel: 'Cortex-A72',
      cpuFeatures: ['fp', 'asimd', 'evtstrm', 'crc32', 'cpuid'],
      memTotalMb: 3794,
      accelerators: [],
      temperaturesC: { 'cpu-thermal': 48.7 },
    });
  });

  it('Jetson AGX Orin: Cortex-A78AE with asimddp but no i8mm, L4T release, GPU load, populated zones', async () => {
    const facts = await probeDevice(join(devices, 'jetson-orin'));
    expect(facts).toMatchObject({
      board: 'NVIDIA Jetson AGX Orin Developer Kit',
      l4tRelease: '35.4.1',
      cpuModel: 'Cortex-A78AE',
      accelerators: ['nvidia-jetson'],
      gpuLoadPercent: 34.5,
      temperaturesC: { 'cpu-thermal': 47.5, 'gpu-thermal': 45.8, 'tj-thermal': 48.1 },
    });
    expect(facts.cpuFeatures).toContain('asimddp');
    expect(facts.cpuFeatures).not.toContain('i8mm');
    expect(new Set(facts.cpuFeatures).size).toBe(facts.cpuFeatures.length);
  });

  it('x86 box: model name, AVX2 and AVX512-VNNI, no board and no Jetson facts', async () => {
    const facts = await probeDevice(join(devices, 'x86-box'));
    expect(facts.cpuModel).toBe('Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz');
    expect(facts.cpuFeatures).toEqual(expect.arrayContaining(['avx2', 'avx512_vnni', 'avx512f']));
    expect(facts).not.toHaveProperty('board');
    expect(facts).not.toHaveProperty('l4tRelease');
    expect(facts).not.toHaveProperty('gpuLoadPercent');
    expect(facts.accelerators).toEqual([]);
    expect(facts.temperaturesC).toEqual({ acpitz: 27.8, x86_pkg_temp: 52 });
  });

  it('treats missing files as absent facts, and /dev/nvidia0 as an NVIDIA GPU', async () => {
    const dir = await tempDir('device-probe');
    try {
      expect(await probeDevice(join(dir.path, 'nothing-here'))).toEqual({ cpuFeatures: [], accelerators: [], temperaturesC: {} });
      await mkdir(join(dir.path, 'dev'));
      await writeFile(join(dir.path, 'dev', 'nvidia0'), '');
      // An L4T file alone (no device tree) still says Jetson, and the older GPU path is read.
      await mkdir(join(dir.path, 'etc'));
      await writeFile(join(dir.path, 'etc', 'nv_tegra_release'), '# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n');
      await mkdir(join(dir.path, 'sys', 'devices', 'gpu.0'), { recursive: true });
      await writeFile(join(dir.path, 'sys', 'devices', 'gpu.0', 'load'), '1000\n');
      expect(await probeDevice(dir.path)).toEqual({ l4tRelease: '32.7.1', cpuFeatures: [], accelerators: ['nvidia-jetson', 'nvidia-gpu'], gpuLoadPercent: 100, temperaturesC: {} });
    } finally {
      await dir.remove();
    }
  });
});

describe('device file parsers', () => {
  it('name big.LITTLE cores together, and report an unknown part raw', () => {
    const core = (part: string): string => `processor\t: 0\nFeatures\t: fp ASIMD asimddp i8mm\nCPU implementer\t: 0x41\nCPU part\t: ${part}\n\n`;
    expect(parseCpuInfo(core('0xd0b') + core('0xd05') + core('0xd0b'))).toEqual({ model: 'Cortex-A76 + Cortex-A55', features: ['fp', 'asimd', 'asimddp', 'i8mm'] });
    expect(parseCpuInfo(core('0xfff')).model).toBe('CPU part 0xfff');
    expect(parseCpuInfo('')).toEqual({ features: [] });
  });

  it('cut the device-tree model at its NUL, and read only a well-formed L4T line', () => {
    expect(parseDeviceTreeModel('Raspberry Pi 4 Model B Rev 1.4\0')).toBe('Raspberry Pi 4 Model B Rev 1.4');
    expect(parseDeviceTreeModel('\0')).toBeUndefined();
    expect(parseTegraRelease('# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64, DATE: Fri Jul 19 23:24:25 UTC 2024\n')).toBe('36.3.0');
    expect(parseTegraRelease('R35 4.1')).toBeUndefined();
  });

  it('reject GPU loads and temperatures that are not readings', () => {
    expect(parseGpuLoad('0\n')).toBe(0);
    expect(parseGpuLoad('1001')).toBeUndefined();
    expect(parseGpuLoad('n/a')).toBeUndefined();
    expect(parseThermalTemp('-5000\n')).toBe(-5);
    expect(parseThermalTemp('-256000')).toBeUndefined();
    expect(parseThermalTemp('1000001')).toBeUndefined(); // past what the schemas carry: a broken sensor
    expect(parseThermalTemp('')).toBeUndefined();
  });
});
