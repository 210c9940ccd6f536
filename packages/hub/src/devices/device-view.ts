import { Capabilities, InstalledModel, Labels, type Device } from '@edgefleet/shared';
import { Type, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { readTelemetryPoint } from '../records/telemetry-view.js';

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

function checker<S extends TSchema>(schema: S) {
  const validator = Compile(schema);
  return (value: unknown): string | null => {
    if (validator.Check(value)) return null;
    const first = validator.Errors(value)[0];
    return `does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
  };
}

const check = {
  labels: checker(Labels),
  capabilities: checker(Capabilities),
  models: checker(Type.Array(InstalledModel)),
};

/** Parses one stored JSON column and checks it; the problem, named, instead of an exception. */
function parseColumn<T>(text: string, problem: (value: unknown) => string | null): { value: T } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `is not JSON (${(err as Error).message})` };
  }
  const error = problem(value);
  return error ? { error } : { value: value as T };
}

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
  const column = <T>(name: string, text: string | null, problem: (value: unknown) => string | null, fallback: T): T => {
    if (text === null) return fallback;
    const parsed = parseColumn<T>(text, problem);
    if ('value' in parsed) return parsed.value;
    problems.push(`stored ${name} ${parsed.error}`);
    return fallback;
  };
  const device: Device = {
    id: String(row.id),
    name: String(row.name),
    labels: column<Labels>('labels', row.labels, check.labels, {}),
    online: row.online === 1,
    revoked: row.revoked === 1,
    enrolledAt: String(row.enrolled_at),
    lastSeen: row.last_seen === null ? null : String(row.last_seen),
    capabilities: column<Capabilities | null>('capabilities', row.capabilities, check.capabilities, null),
    models: column<InstalledModel[]>('models', row.models, check.models, []),
    desiredVersion: versionOf(row.desired_version, 'desired_version', problems),
    reportedVersion: versionOf(row.reported_version, 'reported_version', problems),
    telemetry: telemetryOf(row, problems),
  };
  if (problems.length > 0) device.error = problems.join('; ');
  return device;
}
