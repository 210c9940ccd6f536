import { armCoreName } from './arm-cpu-parts.js';

export interface CpuInfo {
  /** Lowercase, deduplicated, in first-seen order: x86 `flags`, ARM `Features`. */
  features: string[];
  model?: string;
}

/** Splits "key\t\t: value" lines into blocks, one per `processor` (blank lines separate them). */
function blocks(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let current = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (line.trim() === '' || colon < 0) {
      if (current.size > 0) out.push(current);
      current = new Map();
      continue;
    }
    current.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (current.size > 0) out.push(current);
  return out;
}

/**
 * /proc/cpuinfo is one block of "key : value" lines per logical CPU. x86 names its model in
 * `model name` and its features in `flags`; arm64 prints `Features` and the core's MIDR fields
 * (`CPU implementer`, `CPU part`) but no model name, and vendor kernels (Raspberry Pi) may add a
 * trailing `Hardware` block for the SoC. A known core name beats `model name` because 32-bit ARM
 * kernels fill that with "ARMv7 Processor rev 3 (v7l)"; big.LITTLE parts are joined ("A76 + A55").
 */
export function parseCpuInfo(text: string): CpuInfo {
  const features = new Set<string>();
  const cores: string[] = [];
  const rawParts: string[] = [];
  let modelName: string | undefined;
  let hardware: string | undefined;
  for (const block of blocks(text)) {
    for (const key of ['flags', 'features']) {
      for (const f of (block.get(key) ?? '').split(/\s+/)) if (f) features.add(f.toLowerCase());
    }
    modelName ??= block.get('model name') || undefined;
    hardware ??= block.get('hardware') || undefined;
    const part = block.get('cpu part');
    if (part) {
      const name = armCoreName(block.get('cpu implementer') ?? '', part);
      if (name && !cores.includes(name)) cores.push(name);
      if (!name && !rawParts.includes(part)) rawParts.push(part);
    }
  }
  const model = cores.length > 0 ? cores.join(' + ') : (modelName ?? hardware ?? (rawParts.length > 0 ? `CPU part ${rawParts.join(' + ')}` : undefined));
  return model === undefined ? { features: [...features] } : { features: [...features], model };
}
