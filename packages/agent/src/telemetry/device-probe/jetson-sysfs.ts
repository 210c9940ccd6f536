/**
 * The Jetson GPU's `load` attribute (/sys/devices/platform/gpu.0/load on L4T 35+,
 * /sys/devices/gpu.0/load before) is busy time in tenths of a percent, 0–1000.
 */
export function parseGpuLoad(raw: string): number | undefined {
  const text = raw.trim();
  if (!/^\d+$/.test(text)) return undefined;
  const permille = Number(text);
  return permille <= 1000 ? permille / 10 : undefined;
}

/**
 * A thermal zone's `temp` (/sys/class/thermal/thermal_zoneN/temp) is millidegrees Celsius as a
 * signed integer; a disabled or absent sensor reads an error or a sentinel far below zero
 * (Jetsons report -256000 for an unused zone), which is no reading at all; so is one past 1000 °C
 * (a broken sensor), which the reported and telemetry schemas would refuse.
 */
export function parseThermalTemp(raw: string): number | undefined {
  const text = raw.trim();
  if (!/^-?\d+$/.test(text)) return undefined;
  const milli = Number(text);
  return milli > -50_000 && milli <= 1_000_000 ? Math.round(milli / 100) / 10 : undefined;
}
