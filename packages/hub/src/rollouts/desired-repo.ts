import type { DesiredMessage } from '@edgefleet/shared';
import type { Db } from '../store/database.js';

/** SQL for each device's desired document: SQLite is the truth, the broker's retained copy is republished from it. */
export function createDesiredRepo(db: Db) {
  const get = db.prepare('SELECT payload FROM desired WHERE device_id = ?').pluck();
  const put = db.prepare(
    'INSERT INTO desired (device_id, version, payload) VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET version = excluded.version, payload = excluded.payload',
  );
  const all = db.prepare('SELECT device_id, payload FROM desired d JOIN devices v ON v.id = d.device_id WHERE v.revoked = 0');
  return {
    get(deviceId: string): DesiredMessage | undefined {
      const raw = get.get(deviceId) as string | undefined;
      return raw === undefined ? undefined : (JSON.parse(raw) as DesiredMessage);
    },
    put(deviceId: string, doc: DesiredMessage): void {
      put.run(deviceId, doc.version, JSON.stringify(doc));
    },
    all(): Array<{ deviceId: string; doc: DesiredMessage }> {
      return (all.all() as Array<{ device_id: string; payload: string }>).map((r) => ({ deviceId: r.device_id, doc: JSON.parse(r.payload) as DesiredMessage }));
    },
  };
}
export type DesiredRepo = ReturnType<typeof createDesiredRepo>;
