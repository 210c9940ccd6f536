import { MAX_TIMESTAMP_MS, ModelStats, SystemStats, type TelemetryMessage } from '@edgefleet/shared';
import { Type } from 'typebox';
import { storedJsonReader } from '../store/stored-json.js';

/** A stored telemetry row as SQLite hands it back; old rows and hand-edited ones included. */
export interface TelemetryRow {
  seq: number;
  ts: number;
  payload: string;
}

export interface TelemetryPoint {
  seq: number;
  ts: string;
  system: TelemetryMessage['system'];
  models: TelemetryMessage['models'];
}

const readParts = storedJsonReader(Type.Object({ system: SystemStats, models: Type.Array(ModelStats) }));

/**
 * Reads one stored telemetry record, or says why it cannot be shown. Rows are not trusted: a hub
 * without the `ts` bound stored `ts: 1e16`, for which `toISOString()` throws.
 */
export function readTelemetryPoint(row: TelemetryRow): { point: TelemetryPoint } | { error: string } {
  const what = `stored telemetry (seq ${String(row.seq)})`;
  if (!Number.isSafeInteger(row.ts) || row.ts < 0 || row.ts > MAX_TIMESTAMP_MS) {
    return { error: `${what} has ts ${String(row.ts)}, expected an integer 0..${MAX_TIMESTAMP_MS} (ms since 1970, before year 10000)` };
  }
  const parts = readParts(row.payload);
  if ('error' in parts) return { error: `${what} ${parts.error}` };
  const { system, models } = parts.value;
  return { point: { seq: row.seq, ts: new Date(row.ts).toISOString(), system, models } };
}
