import type { DeviceDriftRow, DriftFeatureScore } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import { FLEET_SCOPE } from './evaluation-window.js';

/**
 * `drift_latest`: each scope's newest evaluation (scope '' = the fleet, else a device id), one row per
 * scope, upserted with every evaluation in its transaction. Whatever asks for "the latest per device"
 * reads here, so its cost follows the devices of a version, not every evaluation kept; the fleet
 * view and the gate read only the rows they show or judge.
 */

/** An active alert whose scope has had no evaluation window since `before` (or none at all). */
export interface StaleAlertRow {
  id: number;
  model: string;
  version: string;
  deviceId: string | null;
  /** The scope's last evaluation (epoch ms), null when it has none. */
  lastEvaluatedAt: number | null;
}

export function createDriftLatestRepo(db: Db) {
  const upsert = db.prepare(
    `INSERT INTO drift_latest (model, version, scope, evaluation_id, score, over, samples, window_end, evaluated_at, drifted)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (model, version, scope) DO UPDATE SET evaluation_id = excluded.evaluation_id, score = excluded.score, over = excluded.over,
       samples = excluded.samples, window_end = excluded.window_end, evaluated_at = excluded.evaluated_at, drifted = excluded.drifted`,
  );
  const devicesOver = db
    .prepare<[string, string], string>("SELECT scope FROM drift_latest WHERE model = ? AND version = ? AND over = 1 AND scope != '' ORDER BY scope")
    .pluck();
  const deviceCounts = db.prepare<[string, string], { total: number; over: number | null }>(
    "SELECT count(*) AS total, sum(over) AS over FROM drift_latest WHERE model = ? AND version = ? AND scope != ''",
  );
  // Backwards along drift_latest_by_score: devices over first, then the highest scores, stopping at the limit.
  const topDevices = db.prepare<[string, string, number], { scope: string; score: number; over: number; samples: number; window_end: number; drifted: string }>(
    "SELECT scope, score, over, samples, window_end, drifted FROM drift_latest WHERE model = ? AND version = ? AND scope != '' ORDER BY over DESC, score DESC, scope DESC LIMIT ?",
  );
  const ofScope = db.prepare<[string, string, string], { score: number; window_end: number }>(
    'SELECT score, window_end FROM drift_latest WHERE model = ? AND version = ? AND scope = ?',
  );
  const staleAlerts = db.prepare<[number], { id: number; model: string; version: string; device_id: string | null; evaluated_at: number | null }>(
    `SELECT a.id, a.model, a.version, a.device_id, l.evaluated_at FROM drift_alerts a
     LEFT JOIN drift_latest l ON l.model = a.model AND l.version = a.version AND l.scope = coalesce(a.device_id, '')
     WHERE a.state = 'active' AND (l.evaluated_at IS NULL OR l.evaluated_at < ?)`,
  );

  return {
    /** In the caller's transaction, with the evaluation it follows. */
    put(model: string, version: string, deviceId: string | null, id: number, e: { score: number; over: boolean; samples: number; windowEnd: number; evaluatedAt: number; features: readonly DriftFeatureScore[] }): void {
      const drifted = e.features.filter((f) => f.drifted).map((f) => f.name);
      upsert.run(model, version, deviceId ?? FLEET_SCOPE, id, e.score, e.over ? 1 : 0, e.samples, e.windowEnd, e.evaluatedAt, JSON.stringify(drifted));
    },
    /** Devices whose latest own evaluation of the version is over, by id. */
    devicesOver(model: string, version: string): string[] {
      return devicesOver.all(model, version);
    },
    /** Devices with an evaluation of the version, and how many of them are over now. */
    deviceCounts(model: string, version: string): { total: number; over: number } {
      const row = deviceCounts.get(model, version);
      return { total: row?.total ?? 0, over: row?.over ?? 0 };
    },
    /** At most `limit` devices' latest rows: those over first, then the highest scores. */
    topDevices(model: string, version: string, limit: number): DeviceDriftRow[] {
      return topDevices.all(model, version, limit).map((r) => ({
        deviceId: r.scope,
        score: r.score,
        over: r.over === 1,
        samples: r.samples,
        windowEnd: new Date(r.window_end).toISOString(),
        drifted: JSON.parse(r.drifted) as string[],
      }));
    },
    /**
     * Latest score of each device whose latest evaluation's window ended after `since` (epoch ms,
     * e.g. when it switched to the version); the others are absent. One key lookup per device.
     */
    scoresSince(model: string, version: string, devices: ReadonlyArray<{ deviceId: string; since: number }>): Map<string, number> {
      const scores = new Map<string, number>();
      for (const { deviceId, since } of devices) {
        const row = ofScope.get(model, version, deviceId);
        if (row !== undefined && row.window_end > since) scores.set(deviceId, row.score);
      }
      return scores;
    },
    /** Active alerts whose scope was last evaluated before `before` (epoch ms), or never. */
    staleAlerts(before: number): StaleAlertRow[] {
      return staleAlerts.all(before).map((r) => ({ id: r.id, model: r.model, version: r.version, deviceId: r.device_id, lastEvaluatedAt: r.evaluated_at }));
    },
  };
}
export type DriftLatestRepo = ReturnType<typeof createDriftLatestRepo>;
