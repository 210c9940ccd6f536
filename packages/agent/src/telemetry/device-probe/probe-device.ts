import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isJetsonBoard, parseDeviceTreeModel, parseTegraRelease } from './board.js';
import { parseCpuInfo } from './cpuinfo.js';
import { parseGpuLoad, parseThermalTemp } from './jetson-sysfs.js';

export interface DeviceFacts {
  board?: string;
  l4tRelease?: string;
  cpuModel?: string;
  /** Empty when /proc/cpuinfo is unreadable or lists none: callers treat empty as unknown. */
  cpuFeatures: string[];
  /** MemTotal from /proc/meminfo in MB; absent when unreadable. */
  memTotalMb?: number;
  accelerators: string[];
  gpuLoadPercent?: number;
  /** Keyed by the zone's `type`; a repeated type is keyed "type (thermal_zoneN)". */
  temperaturesC: Record<string, number>;
}

/** `MemTotal:  3884740 kB` from /proc/meminfo, in MB (the kernel's kB are KiB). */
function parseMemTotalMb(text: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text);
  return m ? Math.round(Number(m[1]) / 1024) : undefined;
}

/** L4T 35+ moved the GPU under platform/; older releases keep it at the top of /sys/devices. */
const GPU_LOAD_PATHS = ['sys/devices/platform/gpu.0/load', 'sys/devices/gpu.0/load'];
const THERMAL_DIR = 'sys/class/thermal';
/** The most zones the reported and telemetry schemas carry (ThermalZones' maxItems); boards have a dozen at most. */
const MAX_THERMAL_ZONES = 64;

/** A file's text, or undefined: a missing or unreadable file is an absent fact, never an error. */
async function readText(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(join(root, path), 'utf8');
  } catch {
    return undefined;
  }
}

async function exists(root: string, path: string): Promise<boolean> {
  return access(join(root, path)).then(
    () => true,
    () => false,
  );
}

async function gpuLoad(root: string): Promise<number | undefined> {
  for (const path of GPU_LOAD_PATHS) {
    const raw = await readText(root, path);
    if (raw !== undefined) return parseGpuLoad(raw);
  }
  return undefined;
}

export async function temperatures(root: string): Promise<Record<string, number>> {
  let zones: string[];
  try {
    zones = (await readdir(join(root, THERMAL_DIR))).filter((z) => /^thermal_zone\d+$/.test(z));
  } catch {
    return {};
  }
  zones.sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
  const out: Record<string, number> = {};
  for (const zone of zones) {
    if (Object.keys(out).length >= MAX_THERMAL_ZONES) break;
    const type = (await readText(root, `${THERMAL_DIR}/${zone}/type`))?.trim() || zone;
    const raw = await readText(root, `${THERMAL_DIR}/${zone}/temp`);
    const celsius = raw === undefined ? undefined : parseThermalTemp(raw);
    if (celsius === undefined) continue;
    out[type in out ? `${type} (${zone})` : type] = celsius;
  }
  return out;
}

/** The readings that change while the agent runs (telemetry samples them): GPU load and thermal zones. */
export async function probeSensors(root = '/'): Promise<{ gpuLoadPercent?: number; temperaturesC: Record<string, number> }> {
  const [gpuLoadPercent, temperaturesC] = await Promise.all([gpuLoad(root), temperatures(root)]);
  return { ...(gpuLoadPercent !== undefined && { gpuLoadPercent }), temperaturesC };
}

/**
 * What the device's /proc, /sys and /etc say about it, read under `root` so tests can point it at a
 * captured tree. The agent calls it once at start; nothing here throws for a file a board lacks.
 */
export async function probeDevice(root = '/'): Promise<DeviceFacts> {
  const [cpuinfoText, meminfoText, modelText, tegraText, nvidia0, gpuLoadPercent, temperaturesC] = await Promise.all([
    readText(root, 'proc/cpuinfo'),
    readText(root, 'proc/meminfo'),
    readText(root, 'proc/device-tree/model'),
    readText(root, 'etc/nv_tegra_release'),
    exists(root, 'dev/nvidia0'),
    gpuLoad(root),
    temperatures(root),
  ]);
  const cpu = cpuinfoText === undefined ? { features: [] } : parseCpuInfo(cpuinfoText);
  const board = modelText === undefined ? undefined : parseDeviceTreeModel(modelText);
  const l4tRelease = tegraText === undefined ? undefined : parseTegraRelease(tegraText);
  const memTotal = meminfoText === undefined ? undefined : parseMemTotalMb(meminfoText);
  const accelerators: string[] = [];
  // Only L4T writes nv_tegra_release, so its presence says Jetson even when its line is unparseable.
  if ((board !== undefined && isJetsonBoard(board)) || tegraText !== undefined) accelerators.push('nvidia-jetson');
  if (nvidia0) accelerators.push('nvidia-gpu');
  return {
    ...(board !== undefined && { board }),
    ...(l4tRelease !== undefined && { l4tRelease }),
    ...(cpu.model !== undefined && { cpuModel: cpu.model }),
    cpuFeatures: cpu.features,
    ...(memTotal !== undefined && { memTotalMb: memTotal }),
    accelerators,
    ...(gpuLoadPercent !== undefined && { gpuLoadPercent }),
    temperaturesC,
  };
}
