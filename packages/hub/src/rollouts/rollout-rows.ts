import {
  EdgefleetError,
  GateResult,
  HaltReason,
  RolloutSettings,
  RolloutTarget,
  ShadowReport,
  SignedManifest,
  VersionRef,
  WaveSpec,
  type RolloutDevice,
  type RolloutDeviceState,
  type RolloutState,
  type WaveState,
} from '@edgefleet/shared';
import { Type, type Static, type TSchema } from 'typebox';
import { storedJsonReader } from '../store/stored-json.js';
import type { DeviceChange, DeviceSnapshot } from './device-transitions.js';
import type { RolloutCore, WaveCore } from './rollout-machine.js';

/*
 * Rollout rows as the code sees them, and their reading from SQL rows: stored JSON is validated as it
 * is read (stored state is not trusted), so a damaged row names itself instead of misleading the machine.
 */

/** A rollout as stored, without its waves and devices. */
export interface RolloutRecord {
  core: RolloutCore;
  model: string;
  version: string;
  sha256: string;
  target: RolloutTarget;
  createdAt: string;
  updatedAt: string;
}

/** One device row of a rollout; times in ms since epoch. */
export interface DeviceRow extends DeviceSnapshot {
  rolloutId: string;
  deviceId: string;
  wave: number;
  position: number;
  progress: number | null;
  error: string | null;
  /** The signed manifest of the variant this device gets. */
  toManifest: SignedManifest | null;
  /** The signed manifest of the version it ran before (what a rollback writes back). */
  fromManifest: SignedManifest | null;
  /** Whether its desired assignment says switch now (false: prepare, the maintenance window is closed). */
  activate: boolean;
  assignedAt: number | null;
  switchedAt: number | null;
  shadow: ShadowReport | null;
  updatedAt: string;
}

export interface NewDeviceRow {
  deviceId: string;
  wave: number;
  position: number;
  from: VersionRef | null;
  to: VersionRef;
  toManifest: SignedManifest;
}

export interface RolloutSqlRow {
  id: string;
  model: string;
  version: string;
  sha256: string;
  target: string;
  state: string;
  settings: string;
  reason: string | null;
  window_open_until: number | null;
  created_at: string;
  updated_at: string | null;
}
export interface WaveSqlRow {
  idx: number;
  state: string;
  spec: string;
  started_at: number | null;
  bake_until: number | null;
  ended_at: number | null;
  gates: string;
  override: number;
}
export interface DeviceSqlRow {
  rollout_id: string;
  device_id: string;
  wave: number;
  position: number;
  state: string;
  progress: number | null;
  error: string | null;
  from_ref: string | null;
  to_ref: string | null;
  /** Keys into rollout_manifests: each distinct manifest of a rollout is stored once. */
  to_manifest_sha256: string | null;
  from_manifest_sha256: string | null;
  activate: number;
  assigned_at: number | null;
  deadline: number | null;
  switched_at: number | null;
  shadow: string | null;
  updated_at: string;
  // From the rollout, for rows written before to_ref existed.
  r_model: string;
  r_version: string;
  r_sha256: string;
}

/** A reader of one stored JSON column: STORAGE_ERROR naming the row and what is wrong with it. */
function reader<S extends TSchema>(schema: S, what: string) {
  const read = storedJsonReader(schema);
  return (text: string, where: string): Static<S> => {
    const r = read(text);
    if ('error' in r) throw new EdgefleetError('STORAGE_ERROR', `${what} of ${where} ${r.error}`);
    return r.value;
  };
}
const readSettings = reader(RolloutSettings, 'settings');
const readReason = reader(HaltReason, 'halt reason');
const readTarget = reader(RolloutTarget, 'target');
const readSpec = reader(WaveSpec, 'wave spec');
const readGates = reader(Type.Array(GateResult), 'gate results');
const readRefText = reader(VersionRef, 'version ref');
const readManifest = reader(SignedManifest, 'manifest');

/** Reads a stored version ref (from_ref, to_ref); `where` names the row in the error. */
export type RefReader = (text: string, where: string) => VersionRef;

/**
 * A ref reader with its own cache, one per repo: every row of a rollout carries the same `to` text
 * and few distinct `from` texts, so each is validated once, not once per row (reading 10,000 rows).
 * Bounded; the refs are shared and never mutated.
 */
export function createRefReader(): RefReader {
  const refs = new Map<string, VersionRef>();
  return (text, where) => {
    const known = refs.get(text);
    if (known) return known;
    const ref = readRefText(text, where);
    if (refs.size >= 1_000) refs.clear();
    refs.set(text, ref);
    return ref;
  };
}

/** Reads a stored manifest (rollout_manifests.manifest), validated like every stored JSON. */
export const readStoredManifest = (text: string, where: string): SignedManifest => readManifest(text, where);

/** A rollout's stored manifest by its artifact sha256 (a row that names none is not looked up). */
export type ManifestLookup = (rolloutId: string, sha256: string) => SignedManifest;
const readShadow = reader(ShadowReport, 'shadow report');

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toRecord(row: RolloutSqlRow): RolloutRecord {
  const where = `rollout ${row.id}`;
  return {
    core: {
      id: row.id,
      state: row.state as RolloutState,
      settings: readSettings(row.settings, where),
      reason: row.reason === null ? null : readReason(row.reason, where),
      windowOpenUntil: row.window_open_until,
    },
    model: row.model,
    version: row.version,
    sha256: row.sha256,
    target: readTarget(row.target, where),
    createdAt: row.created_at,
    updatedAt: row.updated_at ?? row.created_at,
  };
}

export function toWave(rolloutId: string, row: WaveSqlRow): WaveCore {
  const where = `rollout ${rolloutId} wave ${row.idx}`;
  return {
    index: row.idx,
    state: row.state as WaveState,
    spec: readSpec(row.spec, where),
    startedAt: row.started_at,
    bakeUntil: row.bake_until,
    endedAt: row.ended_at,
    gates: readGates(row.gates, where),
    override: row.override === 1,
  };
}

/** A device row; `manifest` resolves the manifests it names (rows read for viewing name none), `readRef` its version refs. */
export function toDeviceRow(row: DeviceSqlRow, manifest: ManifestLookup, readRef: RefReader): DeviceRow {
  const where = `rollout ${row.rollout_id} device ${row.device_id}`;
  return {
    rolloutId: row.rollout_id,
    deviceId: row.device_id,
    wave: row.wave,
    position: row.position,
    state: row.state as RolloutDeviceState,
    progress: row.progress,
    error: row.error,
    from: row.from_ref === null ? null : readRef(row.from_ref, where),
    to: row.to_ref === null ? { model: row.r_model, version: row.r_version, profile: 'fp32', sha256: row.r_sha256 } : readRef(row.to_ref, where),
    toManifest: row.to_manifest_sha256 === null ? null : manifest(row.rollout_id, row.to_manifest_sha256),
    fromManifest: row.from_manifest_sha256 === null ? null : manifest(row.rollout_id, row.from_manifest_sha256),
    activate: row.activate === 1,
    assignedAt: row.assigned_at,
    deadline: row.deadline,
    switchedAt: row.switched_at,
    shadow: row.shadow === null ? null : readShadow(row.shadow, where),
    updatedAt: row.updated_at,
  };
}

export function toApiDevice(d: DeviceRow): RolloutDevice {
  return {
    deviceId: d.deviceId,
    wave: d.wave,
    state: d.state,
    progress: d.progress,
    error: d.error,
    from: d.from,
    to: d.to,
    shadow: d.shadow,
    assignedAt: iso(d.assignedAt),
    updatedAt: d.updatedAt,
  };
}

/** Applies a device change to a row (pure). */
export function withChange(row: DeviceRow, change: DeviceChange): DeviceRow {
  return {
    ...row,
    state: change.state,
    ...(change.progress === undefined ? {} : { progress: change.progress }),
    ...(change.error === undefined ? {} : { error: change.error }),
    ...(change.shadow === undefined ? {} : { shadow: change.shadow }),
    ...(change.switchedAt === undefined ? {} : { switchedAt: change.switchedAt }),
    ...(change.deadline === undefined ? {} : { deadline: change.deadline }),
  };
}
