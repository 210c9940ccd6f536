import type { Capabilities, Device, InstalledModel, Labels } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import { renderDevice, type DeviceRow } from './device-view.js';

export interface DeviceFilter {
  labels?: Labels;
  online?: boolean;
}

const SELECT = `
SELECT d.*, t.seq AS tel_seq, t.ts AS tel_ts, t.payload AS tel_payload
FROM devices d
LEFT JOIN telemetry t ON t.rowid = (SELECT rowid FROM telemetry WHERE device_id = d.id ORDER BY rowid DESC LIMIT 1)`;

/**
 * A device-state write from the broker's delivery path. They are queued and applied many per
 * transaction: one transaction per CONNECT stalled a 10,000-device reconnect storm.
 */
export type StateWrite =
  | { kind: 'presence'; deviceId: string; online: boolean; at: string }
  | { kind: 'reported'; deviceId: string; reported: { capabilities: Capabilities; models: InstalledModel[]; desiredVersion: number }; at: string }
  | { kind: 'seen'; deviceId: string; at: string };

export function matchesLabels(labels: Labels, wanted: Labels): boolean {
  return Object.entries(wanted).every(([k, v]) => labels[k] === v);
}

/** SQL for the devices table. */
export function createDeviceRepo(db: Db) {
  const byId = db.prepare(`${SELECT} WHERE d.id = ?`);
  const all = db.prepare(`${SELECT} ORDER BY d.enrolled_at, d.id`);
  const credentials = db.prepare('SELECT secret_sha256, revoked FROM devices WHERE id = ?');
  const insert = db.prepare(
    'INSERT INTO devices (id, name, labels, secret_sha256, enrolled_at) VALUES (@id, @name, @labels, @secretSha256, @enrolledAt)',
  );
  const setOnline = db.prepare('UPDATE devices SET online = ?, last_seen = ? WHERE id = ?');
  const allOffline = db.prepare('UPDATE devices SET online = 0');
  const setLabels = db.prepare('UPDATE devices SET labels = ? WHERE id = ?');
  const revoke = db.prepare('UPDATE devices SET revoked = 1, online = 0 WHERE id = ?');
  const restore = db.prepare('UPDATE devices SET revoked = 0 WHERE id = ?');
  const setReported = db.prepare(
    'UPDATE devices SET capabilities = ?, models = ?, reported_version = ?, last_seen = ? WHERE id = ?',
  );
  const touch = db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?');
  const setDesiredVersion = db.prepare('UPDATE devices SET desired_version = ? WHERE id = ?');
  const ids = db.prepare('SELECT id FROM devices WHERE revoked = 0 ORDER BY enrolled_at, id').pluck();
  const applyStateWrites = db.transaction((writes: readonly StateWrite[]) => {
    for (const w of writes) {
      if (w.kind === 'presence') setOnline.run(w.online ? 1 : 0, w.at, w.deviceId);
      else if (w.kind === 'reported') setReported.run(JSON.stringify(w.reported.capabilities), JSON.stringify(w.reported.models), w.reported.desiredVersion, w.at, w.deviceId);
      else touch.run(w.at, w.deviceId);
    }
  });

  return {
    get(id: string): Device | undefined {
      const row = byId.get(id) as DeviceRow | undefined;
      return row && renderDevice(row);
    },
    list(filter: DeviceFilter = {}): Device[] {
      return (all.all() as DeviceRow[])
        .map(renderDevice)
        .filter((d) => (filter.online === undefined || d.online === filter.online) && (!filter.labels || matchesLabels(d.labels, filter.labels)));
    },
    activeIds(): string[] {
      return ids.all() as string[];
    },
    credentials(id: string): { secretSha256: string; revoked: boolean } | undefined {
      const row = credentials.get(id) as { secret_sha256: string; revoked: number } | undefined;
      return row && { secretSha256: row.secret_sha256, revoked: row.revoked === 1 };
    },
    insert(d: { id: string; name: string; labels: Labels; secretSha256: string; enrolledAt: string }): void {
      insert.run({ ...d, labels: JSON.stringify(d.labels) });
    },
    markAllOffline(): void {
      allOffline.run();
    },
    setLabels(id: string, labels: Labels): boolean {
      return setLabels.run(JSON.stringify(labels), id).changes === 1;
    },
    revoke(id: string): boolean {
      return revoke.run(id).changes === 1;
    },
    /** Undoes a revoke: the device may connect again with its secret. */
    restore(id: string): boolean {
      return restore.run(id).changes === 1;
    },
    setDesiredVersion(id: string, version: number): void {
      setDesiredVersion.run(version, id);
    },
    /** Applies queued state writes in order, in one transaction. */
    applyStateWrites(writes: readonly StateWrite[]): void {
      applyStateWrites(writes);
    },
  };
}
export type DeviceRepo = ReturnType<typeof createDeviceRepo>;
