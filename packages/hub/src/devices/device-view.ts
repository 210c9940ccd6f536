import { Capabilities, InstalledModel, Labels, type Device } from '@edgefleet/shared';
import { Type } from 'typebox';
import { readTelemetryPoint } from '../records/telemetry-view.js';
import { storedJsonReader, type StoredJson } from '../store/stored-json.js';

/** A devices row joined with its newest telemetry row, as SQLite hands it back (hand-edited or old rows included). */
export interface DeviceRow {
  id: string;
  name: string;
  labels: string;
  revoked: number;
  enrolled_at: string;
  last_seen: string | null;
  online: number;
  capabilities: string | null;
  models: string;
  desired_version: number;
  reported_version: number;
  tel_seq: number | null;
  tel_ts: number | null;
  tel_payload: string | null;
}

/** Readers of the stored JSON columns. */
const readColumn = {
  labels: storedJsonReader(Labels),
  capabilities: storedJsonReader(Capabilities),
  models: storedJsonReader(Type.Array(InstalledModel)),
};

function telemetryOf(row: DeviceRow, problems: string[]): Device['telemetry'] {
  if (row.tel_payload === null || row.tel_ts === null) return null;
  const read = readTelemetryPoint({ seq: row.tel_seq ?? Number.NaN, ts: row.tel_ts, payload: row.tel_payload });
  if ('error' in read) {
    problems.push(read.error);
    return null;
  }
  return { ts: read.point.ts, system: read.point.system, models: read.point.models };
}

function versionOf(value: unknown, column: string, problems: string[]): number {
  if (Number.isSafeInteger(value)) return value as number;
  problems.push(`stored ${column} ${String(value)} is not an integer`);
  return 0;
}

/**
 * Renders a stored device. Stored state is not trusted (old rows from before a bound existed,
 * hand-edited databases): a part that cannot be read is left empty and named in `error`, so one
 * bad row shows as an error on that device instead of failing every list it appears in.
 */
export function renderDevice(row: DeviceRow): Device {
  const problems: string[] = [];
  const column = <T>(name: string, text: string | null, reader: (text: string) => StoredJson<T>, fallback: T): T => {
    if (text === null) return fallback;
    const parsed = reader(text);
    if ('value' in parsed) return parsed.value;
    problems.push(`stored ${name} ${parsed.error}`);
    return fallback;
  };
  const device: Device = {
    id: String(row.id),
    name: String(row.name),
    labels: column<Labels>('labels', row.labels, readColumn.labels, {}),
    online: row.online === 1,
    revoked: row.revoked === 1,
    enrolledAt: String(row.enrolled_at),
    lastSeen: row.last_seen === null ? null : String(row.last_seen),
    capabilities: column<Capabilities | null>('capabilities', row.capabilities, readColumn.capabilities, null),
    models: column<InstalledModel[]>('models', row.models, readColumn.models, []),
    desiredVersion: versionOf(row.desired_version, 'desired_version', problems),
    reportedVersion: versionOf(row.reported_version, 'reported_version', problems),
    telemetry: telemetryOf(row, problems),
  };
  if (problems.length > 0) device.error = problems.join('; ');
  return device;
}
