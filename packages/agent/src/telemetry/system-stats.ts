import { readdir, readFile, statfs } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { cpuTemperature, mem } from 'systeminformation';
import type { SystemStats } from '@edgefleet/shared';
import { probeSensors } from './device-probe/probe-device.js';

/** Temperature and disk change slowly and cost more (si.cpuTemperature spawns processes): sample rarely. */
const SLOW_SAMPLE_MS = 60_000;
const THERMAL_DIR = '/sys/class/thermal';

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total };
}

/** Highest thermal zone in °C from sysfs (Raspberry Pi, Jetson, most ARM boards), or undefined. */
async function sysfsTemperature(): Promise<number | undefined> {
  let zones: string[];
  try {
    zones = (await readdir(THERMAL_DIR)).filter((z) => z.startsWith('thermal_zone'));
  } catch {
    return undefined;
  }
  let best: number | undefined;
  for (const zone of zones) {
    try {
      const milli = Number((await readFile(`${THERMAL_DIR}/${zone}/temp`, 'utf8')).trim());
      if (Number.isFinite(milli) && milli > -50_000) best = Math.max(best ?? -Infinity, milli / 1000);
    } catch {
      // unreadable zone: skip it
    }
  }
  return best;
}

async function temperature(): Promise<number | null> {
  const sysfs = await sysfsTemperature();
  if (sysfs !== undefined) return Math.round(sysfs * 10) / 10;
  try {
    const t = await cpuTemperature();
    return typeof t.main === 'number' && t.main > 0 ? t.main : null;
  } catch {
    return null;
  }
}

async function diskUsedPercent(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    if (s.blocks === 0) return null;
    return Math.round(((s.blocks - s.bfree) / s.blocks) * 1000) / 10;
  } catch {
    return null;
  }
}

/** Jetson GPU load and every named thermal zone, only those the device has (fields absent otherwise). */
async function sensorStats(root: string): Promise<Pick<SystemStats, 'gpuLoadPercent' | 'thermalZones'>> {
  const { gpuLoadPercent, temperaturesC } = await probeSensors(root);
  const zones = Object.entries(temperaturesC).map(([name, celsius]) => ({ name: name.slice(0, 80), celsius }));
  return { ...(gpuLoadPercent !== undefined && { gpuLoadPercent }), ...(zones.length > 0 && { thermalZones: zones }) };
}

export interface SystemSampler {
  sample(): Promise<SystemStats>;
}

/**
 * CPU% from os.cpus() deltas between samples; memory from si.mem() (a file read); the rest cached.
 * `rss` gives the agent's resident set size in bytes (main.ts owns `process`).
 */
export function createSystemSampler(opts: { stateDir: string; now?: () => number; rss: () => number; sysRoot?: string }): SystemSampler {
  const now = opts.now ?? Date.now;
  let lastCpu = cpuTimes();
  let slowAt = -Infinity;
  let slow: { temperatureC: number | null; diskUsedPercent: number | null } = { temperatureC: null, diskUsedPercent: null };
  let sensors: Pick<SystemStats, 'gpuLoadPercent' | 'thermalZones'> = {};
  return {
    async sample() {
      const cpu = cpuTimes();
      const dTotal = cpu.total - lastCpu.total;
      const cpuPercent = dTotal > 0 ? Math.max(0, Math.min(100, (1 - (cpu.idle - lastCpu.idle) / dTotal) * 100)) : 0;
      lastCpu = cpu;
      if (now() - slowAt >= SLOW_SAMPLE_MS) {
        slowAt = now();
        slow = { temperatureC: await temperature(), diskUsedPercent: await diskUsedPercent(opts.stateDir) };
        sensors = await sensorStats(opts.sysRoot ?? '/');
      }
      const m = await mem();
      const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
      return {
        cpuPercent: Math.round(cpuPercent * 10) / 10,
        memUsedMb: mb(Math.max(0, m.total - m.available)),
        memTotalMb: mb(m.total),
        temperatureC: slow.temperatureC,
        diskUsedPercent: slow.diskUsedPercent,
        agentRssMb: mb(opts.rss()),
        loadAvg1: Math.max(0, loadavg()[0] ?? 0),
        ...sensors,
      };
    },
  };
}
