import type { VersionRef } from '@edgefleet/shared';
import type { RecordRepo } from '../records/record-repo.js';
import { NO_USAGE, usageOf, type DeviceUsage, type TelemetrySample } from './gates.js';

/** How far before its assignment a device's telemetry stands for the previous version. */
export const DEFAULT_LOOKBACK_MS = 30 * 60_000;

/** The parts of a rollout device row the metric gates need; times in ms. */
export interface SwitchedDeviceRow {
  deviceId: string;
  from: VersionRef | null;
  to: VersionRef;
  assignedAt: number;
  /** When the row became active on the new version; null while it has not switched. */
  switchedAt: number | null;
}

/**
 * Each switched device's usage of the previous version before the switch (from `lookbackMs` before
 * its assignment up to the switch) and of the new version since. Rows that have not switched are
 * left out; a first install (`from` null) has no previous usage. Telemetry times are the device's
 * clock and row times the hub's: a skew of less than one telemetry interval moves at most one
 * interval to the other side.
 */
export function collectDeviceUsage(
  records: Pick<RecordRepo, 'telemetryBetween'>,
  rows: readonly SwitchedDeviceRow[],
  now: number,
  lookbackMs = DEFAULT_LOOKBACK_MS,
): DeviceUsage[] {
  return rows.flatMap((row): DeviceUsage[] => {
    const switchedAt = row.switchedAt;
    if (switchedAt === null) return [];
    const before = row.from
      ? usageOf(records.telemetryBetween(row.deviceId, row.assignedAt - lookbackMs, switchedAt), row.from.model, row.from.version)
      : NO_USAGE;
    const around = records.telemetryBetween(row.deviceId, switchedAt - lookbackMs, now);
    const after = usageOf(fromLastSampleAtOrBefore(around, switchedAt), row.to.model, row.to.version);
    return [{ deviceId: row.deviceId, before, after }];
  });
}

/**
 * The samples from the last one made at or before `ts` on. That sample is the counters' starting
 * point, so the requests of the first interval after the switch count for the new version.
 */
export function fromLastSampleAtOrBefore(samples: readonly TelemetrySample[], ts: number): readonly TelemetrySample[] {
  let start = 0;
  samples.forEach((s, i) => {
    if (s.ts <= ts) start = i;
  });
  return samples.slice(start);
}
