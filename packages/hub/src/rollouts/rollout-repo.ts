import type { Rollout, RolloutDevice, RolloutDeviceState, RolloutTarget } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import { countStates, type RolloutState } from './rollout-state.js';

interface RolloutRow {
  id: string;
  model: string;
  version: string;
  sha256: string;
  target: string;
  state: RolloutState;
  created_at: string;
}
interface DeviceRow {
  rollout_id: string;
  device_id: string;
  wave: number;
  state: RolloutDeviceState;
  progress: number | null;
  error: string | null;
  updated_at: string;
}

export interface OpenAssignment {
  rolloutId: string;
  deviceId: string;
  model: string;
  version: string;
  sha256: string;
  state: RolloutDeviceState;
}

/** SQL for rollouts and their per-device rows. */
export function createRolloutRepo(db: Db) {
  const insert = db.prepare('INSERT INTO rollouts (id, model, version, sha256, target, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insertDevice = db.prepare('INSERT INTO rollout_devices (rollout_id, device_id, wave, state, updated_at) VALUES (?, ?, 0, ?, ?)');
  const one = db.prepare('SELECT * FROM rollouts WHERE id = ?');
  const all = db.prepare('SELECT * FROM rollouts ORDER BY created_at DESC, rowid DESC');
  const devicesOf = db.prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? ORDER BY device_id');
  const statesOf = db.prepare('SELECT state FROM rollout_devices WHERE rollout_id = ?').pluck();
  const updateDevice = db.prepare('UPDATE rollout_devices SET state = ?, progress = ?, error = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?');
  const setState = db.prepare('UPDATE rollouts SET state = ? WHERE id = ?');
  const open = db.prepare(`
    SELECT rd.rollout_id AS rolloutId, rd.device_id AS deviceId, r.model, r.version, r.sha256, rd.state
    FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id
    WHERE rd.device_id = ? AND rd.state NOT IN ('active', 'failed', 'removed')
    ORDER BY r.created_at DESC, r.rowid DESC`);
  const assignment = db.prepare(`
    SELECT rd.rollout_id AS rolloutId, rd.device_id AS deviceId, r.model, r.version, r.sha256, rd.state
    FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id WHERE rd.rollout_id = ? AND rd.device_id = ?`);

  function toRollout(row: RolloutRow): Rollout {
    const devices: RolloutDevice[] = (devicesOf.all(row.id) as DeviceRow[]).map((d) => ({
      deviceId: d.device_id,
      state: d.state,
      progress: d.progress,
      error: d.error,
      updatedAt: d.updated_at,
    }));
    return {
      id: row.id,
      model: row.model,
      version: row.version,
      target: JSON.parse(row.target) as RolloutTarget,
      state: row.state,
      createdAt: row.created_at,
      waves: [{ index: 0, devices }],
      counts: countStates(devices.map((d) => d.state)),
    };
  }

  return {
    insert(r: { id: string; model: string; version: string; sha256: string; target: RolloutTarget; state: RolloutState; createdAt: string }, deviceIds: string[]) {
      insert.run(r.id, r.model, r.version, r.sha256, JSON.stringify(r.target), r.state, r.createdAt);
      for (const id of deviceIds) insertDevice.run(r.id, id, 'pending', r.createdAt);
    },
    get(id: string): Rollout | undefined {
      const row = one.get(id) as RolloutRow | undefined;
      return row && toRollout(row);
    },
    list(): Rollout[] {
      return (all.all() as RolloutRow[]).map(toRollout);
    },
    deviceStates(rolloutId: string): RolloutDeviceState[] {
      return statesOf.all(rolloutId) as RolloutDeviceState[];
    },
    updateDevice(rolloutId: string, deviceId: string, u: { state: RolloutDeviceState; progress: number | null; error: string | null }, at: string) {
      updateDevice.run(u.state, u.progress, u.error, at, rolloutId, deviceId);
    },
    setState(id: string, state: RolloutState) {
      setState.run(state, id);
    },
    openAssignments(deviceId: string): OpenAssignment[] {
      return open.all(deviceId) as OpenAssignment[];
    },
    assignment(rolloutId: string, deviceId: string): OpenAssignment | undefined {
      return assignment.get(rolloutId, deviceId) as OpenAssignment | undefined;
    },
  };
}
export type RolloutRepo = ReturnType<typeof createRolloutRepo>;
