import type { AlertState, DriftAlert, DriftEvaluation, DriftFeatureScore, DriftSummary } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import type { AlertFeature } from './alert-rules.js';
import { createDriftLatestRepo } from './drift-latest-repo.js';
import type { PendingWindow } from './evaluation-window.js';

/** A `drift` record as evaluation reads it: what the device sent, not yet parsed. */
export interface DriftRecordRow {
  id: number;
  deviceId: string;
  ts: number;
  payload: string;
}

export interface NewEvaluation {
  model: string;
  version: string;
  deviceId: string | null;
  windowStart: number;
  windowEnd: number;
  samples: number;
  score: number;
  over: boolean;
  features: DriftFeatureScore[];
  evaluatedAt: number;
}

export interface AlertFields {
  score: number;
  devices: string[];
  features: AlertFeature[];
  message: string;
}

/** Evaluations kept per scope (model, version, device or fleet); older ones are pruned. */
export const EVALUATIONS_PER_SCOPE = 2000;

interface EvaluationSql {
  id: number;
  model: string;
  version: string;
  device_id: string | null;
  window_start: number;
  window_end: number;
  samples: number;
  score: number;
  over: number;
  features: string;
  evaluated_at: number;
}
interface AlertSql {
  id: number;
  model: string;
  version: string;
  device_id: string | null;
  state: AlertState;
  raised_at: number;
  cleared_at: number | null;
  score: number;
  devices: string;
  features: string;
  message: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

function evaluationOf(r: EvaluationSql): DriftEvaluation {
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    deviceId: r.device_id,
    windowStart: iso(r.window_start),
    windowEnd: iso(r.window_end),
    samples: r.samples,
    score: r.score,
    over: r.over === 1,
    features: JSON.parse(r.features) as DriftFeatureScore[],
    evaluatedAt: iso(r.evaluated_at),
  };
}

function alertOf(r: AlertSql): DriftAlert {
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    deviceId: r.device_id,
    state: r.state,
    raisedAt: iso(r.raised_at),
    clearedAt: r.cleared_at === null ? null : iso(r.cleared_at),
    score: r.score,
    devices: JSON.parse(r.devices) as string[],
    features: JSON.parse(r.features) as AlertFeature[],
    message: r.message,
  };
}

/** SQL of drift evaluation (migration 006 tables, and the `drift` record table it reads). Device ids null = the fleet. */
export function createDriftRepo(db: Db) {
  const recordsAfter = db.prepare<[number, number], { id: number; device_id: string; ts: number; payload: string }>(
    'SELECT id, device_id, ts, payload FROM drift WHERE id > ? ORDER BY id LIMIT ?',
  );
  const cursorGet = db.prepare<[], { last_record: number }>('SELECT last_record FROM drift_cursor WHERE id = 1');
  const cursorSet = db.prepare('UPDATE drift_cursor SET last_record = ? WHERE id = 1');
  const pendingGet = db.prepare<[string, string, string], { samples: number; summary: string }>(
    'SELECT samples, summary FROM drift_pending WHERE model = ? AND version = ? AND scope = ?',
  );
  const pendingPut = db.prepare(
    `INSERT INTO drift_pending (model, version, scope, samples, summary) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (model, version, scope) DO UPDATE SET samples = excluded.samples, summary = excluded.summary`,
  );
  const pendingDelete = db.prepare('DELETE FROM drift_pending WHERE model = ? AND version = ? AND scope = ?');
  const pendingFull = db.prepare<[string, number], { model: string; version: string; samples: number; summary: string }>(
    'SELECT model, version, samples, summary FROM drift_pending WHERE scope = ? AND samples >= ?',
  );
  const insertEvaluation = db.prepare(
    `INSERT INTO drift_evaluations (model, version, device_id, window_start, window_end, samples, score, over, features, evaluated_at)
     VALUES (@model, @version, @deviceId, @windowStart, @windowEnd, @samples, @score, @over, @features, @evaluatedAt)`,
  );
  const latestInScope = db.prepare<[string, string, string | null], EvaluationSql>(
    'SELECT * FROM drift_evaluations WHERE model = ? AND version = ? AND device_id IS ? ORDER BY id DESC LIMIT 1',
  );
  const fleetSeries = db.prepare<[string, string, number], EvaluationSql>(
    'SELECT * FROM (SELECT * FROM drift_evaluations WHERE model = ? AND version = ? AND device_id IS NULL ORDER BY id DESC LIMIT ?) ORDER BY id',
  );
  const latestRows = createDriftLatestRepo(db);
  const pruneScope = db.prepare(
    `DELETE FROM drift_evaluations WHERE id IN (
       SELECT id FROM drift_evaluations WHERE model = ? AND version = ? AND device_id IS ? ORDER BY id DESC LIMIT -1 OFFSET ?)`,
  );
  // By arrival (id), never by `ts` (the device's clock: one future-dated record would stop pruning for
  // good), a bounded batch at a time. Only ids below a cursor evaluation reached, and never the record
  // at the cursor: `drift.id` has no AUTOINCREMENT, so with it gone SQLite would hand its id (and lower
  // ones) to new records, which evaluation (id > cursor) would then never read.
  const pruneRecords = db.prepare(
    `DELETE FROM drift WHERE id IN (
       SELECT id FROM drift WHERE id < min(?, (SELECT last_record FROM drift_cursor WHERE id = 1)) ORDER BY id LIMIT ?)`,
  );
  const activeAlert = db.prepare<[string, string, string | null], AlertSql>(
    "SELECT * FROM drift_alerts WHERE state = 'active' AND model = ? AND version = ? AND device_id IS ?",
  );
  const alertsByState = db.prepare<[string, string, number], AlertSql>(
    "SELECT * FROM drift_alerts WHERE (? = 'all' OR state = ?) ORDER BY state = 'active' DESC, id DESC LIMIT ?",
  );
  const alertsOfVersion = db.prepare<[string, string, number], AlertSql>(
    "SELECT * FROM drift_alerts WHERE model = ? AND version = ? ORDER BY state = 'active' DESC, id DESC LIMIT ?",
  );
  const insertAlert = db.prepare(
    `INSERT INTO drift_alerts (model, version, device_id, state, raised_at, cleared_at, score, devices, features, message)
     VALUES (?, ?, ?, 'active', ?, NULL, ?, ?, ?, ?)`,
  );
  const updateAlert = db.prepare('UPDATE drift_alerts SET score = ?, devices = ?, features = ?, message = ? WHERE id = ?');
  const clearAlert = db.prepare("UPDATE drift_alerts SET state = 'cleared', cleared_at = ?, message = coalesce(?, message) WHERE id = ?");
  const alertById = db.prepare<[number], AlertSql>('SELECT * FROM drift_alerts WHERE id = ?');
  const activeCount = db.prepare<[string, string], { n: number }>("SELECT count(*) AS n FROM drift_alerts WHERE state = 'active' AND model = ? AND version = ?");

  return {
    recordsAfter(cursor: number, limit: number): DriftRecordRow[] {
      return recordsAfter.all(cursor, limit).map((r) => ({ id: r.id, deviceId: r.device_id, ts: r.ts, payload: r.payload }));
    },
    cursor(): number {
      return cursorGet.get()?.last_record ?? 0;
    },
    setCursor(id: number): void {
      cursorSet.run(id);
    },
    pending(model: string, version: string, scope: string): PendingWindow | null {
      const row = pendingGet.get(model, version, scope);
      return row ? { samples: row.samples, summary: JSON.parse(row.summary) as DriftSummary } : null;
    },
    /** Every version's pending window of `scope` that holds at least `minSamples` samples. */
    fullPending(scope: string, minSamples: number): Array<{ model: string; version: string; window: PendingWindow }> {
      return pendingFull.all(scope, minSamples).map((r) => ({ model: r.model, version: r.version, window: { samples: r.samples, summary: JSON.parse(r.summary) as DriftSummary } }));
    },
    putPending(model: string, version: string, scope: string, window: PendingWindow | null): void {
      if (window === null) pendingDelete.run(model, version, scope);
      else pendingPut.run(model, version, scope, window.samples, JSON.stringify(window.summary));
    },
    /** The evaluation, and its scope's row in drift_latest (call in a transaction). */
    insertEvaluation(e: NewEvaluation): number {
      const id = Number(insertEvaluation.run({ ...e, over: e.over ? 1 : 0, features: JSON.stringify(e.features) }).lastInsertRowid);
      latestRows.put(e.model, e.version, e.deviceId, id, e);
      return id;
    },
    /** Reads of each scope's latest evaluation (drift_latest). */
    latestRows,
    /** The scope's newest evaluation (deviceId null: the fleet's). */
    latest(model: string, version: string, deviceId: string | null): DriftEvaluation | undefined {
      const row = latestInScope.get(model, version, deviceId);
      return row ? evaluationOf(row) : undefined;
    },
    /** The fleet's last `limit` evaluations, oldest first. */
    fleetSeries(model: string, version: string, limit: number): DriftEvaluation[] {
      return fleetSeries.all(model, version, limit).map(evaluationOf);
    },
    pruneEvaluations(model: string, version: string, deviceId: string | null, keep = EVALUATIONS_PER_SCOPE): number {
      return pruneScope.run(model, version, deviceId, keep).changes;
    },
    /** Deletes up to `batch` of the oldest records with id below `belowId` (and below the cursor). */
    pruneRecords(belowId: number, batch: number): number {
      return pruneRecords.run(belowId, batch).changes;
    },
    activeAlert(model: string, version: string, deviceId: string | null): DriftAlert | undefined {
      const row = activeAlert.get(model, version, deviceId);
      return row ? alertOf(row) : undefined;
    },
    activeAlertCount(model: string, version: string): number {
      return activeCount.get(model, version)?.n ?? 0;
    },
    alerts(state: AlertState | 'all', limit = 500): DriftAlert[] {
      return alertsByState.all(state, state, limit).map(alertOf);
    },
    alertsOfVersion(model: string, version: string, limit = 50): DriftAlert[] {
      return alertsOfVersion.all(model, version, limit).map(alertOf);
    },
    raiseAlert(model: string, version: string, deviceId: string | null, at: number, f: AlertFields): DriftAlert {
      const id = Number(insertAlert.run(model, version, deviceId, at, f.score, JSON.stringify(f.devices), JSON.stringify(f.features), f.message).lastInsertRowid);
      return alertOf(alertById.get(id)!);
    },
    updateAlert(id: number, f: AlertFields): DriftAlert {
      updateAlert.run(f.score, JSON.stringify(f.devices), JSON.stringify(f.features), f.message, id);
      return alertOf(alertById.get(id)!);
    },
    /** `message`: replaces the alert's (why it was cleared), else it stays. */
    clearAlert(id: number, at: number, message?: string): DriftAlert {
      clearAlert.run(at, message ?? null, id);
      return alertOf(alertById.get(id)!);
    },
  };
}
export type DriftRepo = ReturnType<typeof createDriftRepo>;
