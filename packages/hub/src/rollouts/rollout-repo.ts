import { EdgefleetError, type Rollout, type RolloutDeviceState, type RolloutState, type RolloutSummary, type RolloutWave, type SignedManifest, type VersionRef } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import { IN_FLIGHT_STATES } from './device-transitions.js';
import type { RolloutCore, StateCounts, WaveCore } from './rollout-machine.js';
import {
  createRefReader,
  iso,
  readStoredManifest,
  toApiDevice,
  toDeviceRow,
  toRecord,
  toWave,
  type DeviceRow,
  type DeviceSqlRow,
  type NewDeviceRow,
  type RolloutRecord,
  type RolloutSqlRow,
  type WaveSqlRow,
} from './rollout-rows.js';

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

const DEVICE_SELECT = `SELECT rd.*, r.model AS r_model, r.version AS r_version, r.sha256 AS r_sha256
  FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id`;
/** Rows to show or judge: without the manifests (large, with golden vectors), which only assignments need. */
const VIEW_SELECT = `SELECT rd.rollout_id, rd.device_id, rd.wave, rd.position, rd.state, rd.progress, rd.error, rd.from_ref, rd.to_ref,
  NULL AS to_manifest_sha256, NULL AS from_manifest_sha256, rd.activate, rd.assigned_at, rd.deadline, rd.switched_at, rd.shadow, rd.updated_at,
  r.model AS r_model, r.version AS r_version, r.sha256 AS r_sha256
  FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id`;

/** Manifests kept parsed (each is up to ~64 KB): those of the live rollouts, in practice. */
const MANIFEST_CACHE_SIZE = 64;

/**
 * SQL for rollouts, their waves and their device rows. Counts come from SQL (read from an index), not
 * from reading every row. Each distinct manifest of a rollout is stored once (rollout_manifests) and
 * parsed once while cached; rows name theirs by sha256.
 */
export function createRolloutRepo(db: Db) {
  const insertRollout = db.prepare(
    'INSERT INTO rollouts (id, model, version, sha256, target, state, settings, reason, window_open_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)',
  );
  const insertWave = db.prepare('INSERT INTO rollout_waves (rollout_id, idx, state, spec, gates) VALUES (?, ?, ?, ?, ?)');
  const insertDevice = db.prepare(
    'INSERT INTO rollout_devices (rollout_id, device_id, wave, position, state, from_ref, to_ref, to_manifest_sha256, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insertManifest = db.prepare('INSERT OR IGNORE INTO rollout_manifests (rollout_id, sha256, manifest) VALUES (?, ?, ?)');
  const manifestText = db.prepare('SELECT manifest FROM rollout_manifests WHERE rollout_id = ? AND sha256 = ?').pluck();
  const manifestStored = db.prepare('SELECT 1 FROM rollout_manifests WHERE rollout_id = ? AND sha256 = ?').pluck();
  const one = db.prepare('SELECT * FROM rollouts WHERE id = ?');
  const page = db.prepare('SELECT * FROM rollouts ORDER BY created_at DESC, rowid DESC LIMIT ?');
  // The counts of a whole page in one grouped query (read from the (rollout_id, state, ...) index).
  const pageCounts = db.prepare(
    'SELECT rollout_id, state, count(*) AS n FROM rollout_devices WHERE rollout_id IN (SELECT id FROM rollouts ORDER BY created_at DESC, rowid DESC LIMIT ?) GROUP BY rollout_id, state',
  );
  const inStates = (n: number) => db.prepare(`SELECT id FROM rollouts WHERE state IN (${placeholders(n)}) ORDER BY created_at, rowid`).pluck();
  // The service's 1 s tick asks for the same states every time: prepared once, not per tick.
  const inStatesCache = new Map<string, ReturnType<typeof inStates>>();
  const saveRollout = db.prepare('UPDATE rollouts SET state = ?, reason = ?, window_open_until = ?, updated_at = ? WHERE id = ?');
  const wavesOf = db.prepare('SELECT * FROM rollout_waves WHERE rollout_id = ? ORDER BY idx');
  const saveWave = db.prepare('UPDATE rollout_waves SET state = ?, started_at = ?, bake_until = ?, ended_at = ?, gates = ?, override = ? WHERE rollout_id = ? AND idx = ?');
  const countsOf = db.prepare('SELECT wave, state, count(*) AS n FROM rollout_devices WHERE rollout_id = ? GROUP BY wave, state');
  const devicesOf = db.prepare(`${VIEW_SELECT} WHERE rd.rollout_id = ? ORDER BY rd.wave, rd.position, rd.device_id`);
  const devicesOfWave = db.prepare(`${VIEW_SELECT} WHERE rd.rollout_id = ? AND rd.wave = ? ORDER BY rd.position, rd.device_id`);
  const oneDevice = db.prepare(`${VIEW_SELECT} WHERE rd.rollout_id = ? AND rd.device_id = ?`);
  const openWaves = db.prepare("UPDATE rollout_devices SET state = 'waiting', updated_at = ? WHERE rollout_id = ? AND state = 'pending' AND wave <= ?");
  const waiting = db.prepare(`${DEVICE_SELECT} WHERE rd.rollout_id = ? AND rd.state = 'waiting' ORDER BY rd.wave, rd.position LIMIT ?`);
  const saveDevice = db.prepare(
    'UPDATE rollout_devices SET state = ?, progress = ?, error = ?, shadow = ?, switched_at = ?, deadline = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?',
  );
  // Past its deadline (or without one, written before rollbacks had deadlines) a row still rolling back no longer holds the rollout.
  const overdueRollbacks = db
    .prepare("SELECT count(*) FROM rollout_devices WHERE rollout_id = ? AND state = 'rolling-back' AND (deadline IS NULL OR deadline <= ?)")
    .pluck();
  const assign = db.prepare(
    "UPDATE rollout_devices SET state = 'assigned', progress = NULL, error = NULL, from_ref = ?, from_manifest_sha256 = ?, activate = ?, assigned_at = ?, deadline = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?",
  );
  // `ready` devices told to prepare only wait for the maintenance window, which is not theirs to miss (onDeadline).
  const expired = db.prepare(
    `${DEVICE_SELECT} WHERE rd.rollout_id = ? AND rd.deadline <= ? AND rd.state IN (${placeholders(IN_FLIGHT_STATES.length)}) AND (rd.state != 'ready' OR rd.activate = 1)`,
  );
  const setActivate = db.prepare('UPDATE rollout_devices SET activate = ?, deadline = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?');
  const refreshDeadlines = (n: number) =>
    db.prepare(`UPDATE rollout_devices SET deadline = ? WHERE rollout_id = ? AND deadline IS NOT NULL AND state IN (${placeholders(n)})`);
  const refreshCache = new Map<string, ReturnType<typeof refreshDeadlines>>();
  const ofModelIn = (states: readonly RolloutDeviceState[]) =>
    db.prepare(`${VIEW_SELECT} WHERE r.model = ? AND rd.state IN (${placeholders(states.length)})`);
  const ofModelCache = new Map<string, ReturnType<typeof ofModelIn>>();

  // A variant a rollout gave this device: the `to` of a row whose turn came (assigned), or the `from` of a
  // row a rollback sent back. Matched on the rows' refs (small JSON), never on the manifest text.
  const givenTo = db.prepare(`
    SELECT rollout_id FROM rollout_devices
    WHERE device_id = @deviceId AND (
      (to_manifest_sha256 = @sha256 AND assigned_at IS NOT NULL
        AND json_extract(to_ref, '$.model') = @model AND json_extract(to_ref, '$.version') = @version)
      OR (from_manifest_sha256 = @sha256 AND state IN ('rolling-back', 'rolled-back')
        AND json_extract(from_ref, '$.model') = @model AND json_extract(from_ref, '$.version') = @version))
    ORDER BY rowid DESC LIMIT 1`).pluck();
  // Rows from before staged rollouts (to_ref NULL) name no manifest: they were given their rollout's version, which was fp32.
  const givenBeforeStaged = db.prepare(`
    SELECT v.manifest FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id
      JOIN model_versions v ON v.model = r.model AND v.version = r.version
    WHERE rd.device_id = @deviceId AND rd.to_ref IS NULL AND r.model = @model AND r.version = @version AND r.sha256 = @sha256
    LIMIT 1`).pluck();

  /** Parsed manifests by rollout and sha256; a (rollout, sha256) manifest never changes once stored. */
  const manifests = new Map<string, SignedManifest>();
  const remember = (key: string, m: SignedManifest) => {
    if (manifests.size >= MANIFEST_CACHE_SIZE) manifests.delete(manifests.keys().next().value!);
    manifests.set(key, m);
  };
  function manifest(rolloutId: string, sha256: string): SignedManifest {
    const key = `${rolloutId}\n${sha256}`;
    const known = manifests.get(key);
    if (known) return known;
    const text = manifestText.get(rolloutId, sha256) as string | undefined;
    if (text === undefined) throw new EdgefleetError('STORAGE_ERROR', `rollout ${rolloutId} names manifest ${sha256}, which it does not store`);
    const m = readStoredManifest(text, `rollout ${rolloutId} manifest ${sha256}`);
    remember(key, m);
    return m;
  }
  /**
   * Stores a manifest once per rollout (the first stored for an artifact stays: both sign the same
   * bytes); returns its key. Asks SQLite, not the cache, whether it is stored: a rolled-back
   * transaction may have cached one it never kept.
   */
  function storeManifest(rolloutId: string, m: SignedManifest): string {
    const sha256 = m.manifest.sha256;
    if (manifestStored.get(rolloutId, sha256) === undefined) insertManifest.run(rolloutId, sha256, JSON.stringify(m));
    return sha256;
  }
  const readRef = createRefReader();
  const toRow = (row: DeviceSqlRow): DeviceRow => toDeviceRow(row, manifest, readRef);

  const rowsIn = (states: readonly RolloutDeviceState[]) =>
    db.prepare(`${DEVICE_SELECT} WHERE rd.rollout_id = ? AND rd.state IN (${placeholders(states.length)}) ORDER BY rd.wave, rd.position`);
  const rowsInCache = new Map<string, ReturnType<typeof rowsIn>>();
  const ofDeviceIn = (states: readonly RolloutDeviceState[]) =>
    db.prepare(`${VIEW_SELECT} WHERE rd.device_id = ? AND rd.state IN (${placeholders(states.length)}) ORDER BY r.created_at DESC, r.rowid DESC`);
  const ofDeviceCache = new Map<string, ReturnType<typeof ofDeviceIn>>();
  const countIn = (states: readonly RolloutDeviceState[]) =>
    db.prepare(`SELECT count(*) FROM rollout_devices WHERE rollout_id = ? AND state IN (${placeholders(states.length)})`).pluck();
  const countInCache = new Map<string, ReturnType<typeof countIn>>();
  const cached = <T>(cache: Map<string, T>, states: readonly string[], make: () => T): T => {
    const key = states.join(',');
    let stmt = cache.get(key);
    if (!stmt) cache.set(key, (stmt = make()));
    return stmt;
  };

  function countsByWave(id: string, waves: number): StateCounts[] {
    const out: StateCounts[] = Array.from({ length: waves }, () => ({}));
    for (const r of countsOf.all(id) as Array<{ wave: number; state: RolloutDeviceState; n: number }>) {
      const c = (out[r.wave] ??= {});
      c[r.state] = r.n;
    }
    // An empty wave (a size no larger than the one before) has no rows: it counts as no devices, not a hole.
    for (let i = 0; i < out.length; i++) out[i] ??= {};
    return out;
  }

  const sumCounts = (byWave: readonly StateCounts[]): Record<string, number> => {
    const total: Record<string, number> = {};
    for (const c of byWave) for (const [s, n] of Object.entries(c)) total[s] = (total[s] ?? 0) + (n ?? 0);
    return total;
  };

  function summary(rec: RolloutRecord, counts: Record<string, number>): RolloutSummary {
    return {
      id: rec.core.id,
      model: rec.model,
      version: rec.version,
      target: rec.target,
      state: rec.core.state,
      settings: rec.core.settings,
      reason: rec.core.reason,
      windowOpenUntil: iso(rec.core.windowOpenUntil),
      createdAt: rec.createdAt,
      updatedAt: rec.updatedAt,
      counts,
    };
  }

  function record(id: string): RolloutRecord | undefined {
    const row = one.get(id) as RolloutSqlRow | undefined;
    return row && toRecord(row);
  }
  const waves = (id: string): WaveCore[] => (wavesOf.all(id) as WaveSqlRow[]).map((w) => toWave(id, w));
  /** Every row of a rollout, without manifests (toManifest/fromManifest are null here). */
  const devices = (id: string): DeviceRow[] => (devicesOf.all(id) as DeviceSqlRow[]).map(toRow);

  return {
    insert(rec: RolloutRecord, waves: readonly WaveCore[], rows: readonly NewDeviceRow[]): void {
      const { core } = rec;
      insertRollout.run(core.id, rec.model, rec.version, rec.sha256, JSON.stringify(rec.target), core.state, JSON.stringify(core.settings), core.windowOpenUntil, rec.createdAt, rec.updatedAt);
      for (const w of waves) insertWave.run(core.id, w.index, w.state, JSON.stringify(w.spec), '[]');
      // Rows share their manifest and refs: each distinct one is serialised (and stored) once.
      const keys = new Map<SignedManifest, string>();
      const texts = new Map<VersionRef, string>();
      const text = (ref: VersionRef) => texts.get(ref) ?? (texts.set(ref, JSON.stringify(ref)), texts.get(ref)!);
      for (const d of rows) {
        let key = keys.get(d.toManifest);
        if (key === undefined) keys.set(d.toManifest, (key = storeManifest(core.id, d.toManifest)));
        insertDevice.run(core.id, d.deviceId, d.wave, d.position, 'pending', d.from && text(d.from), text(d.to), key, rec.createdAt);
      }
    },
    record,
    waves,
    idsInStates(states: readonly RolloutState[]): string[] {
      return cached(inStatesCache, states, () => inStates(states.length)).all(...states) as string[];
    },
    saveRollout(core: RolloutCore, at: string): void {
      saveRollout.run(core.state, core.reason && JSON.stringify(core.reason), core.windowOpenUntil, at, core.id);
    },
    saveWave(rolloutId: string, w: WaveCore): void {
      saveWave.run(w.state, w.startedAt, w.bakeUntil, w.endedAt, JSON.stringify(w.gates), w.override ? 1 : 0, rolloutId, w.index);
    },
    countsByWave,
    counts(id: string): Record<string, number> {
      return sumCounts(countsByWave(id, 0));
    },
    countIn(id: string, states: readonly RolloutDeviceState[]): number {
      return cached(countInCache, states, () => countIn(states)).get(id, ...states) as number;
    },
    /** Pending rows of waves up to `through` now wait for a download slot. */
    openWaves(id: string, through: number, at: string): void {
      openWaves.run(at, id, through);
    },
    /** Rows still rolling back past their deadline: they converge when the device returns, and no longer hold the rollout. */
    overdueRollbacks(id: string, now: number): number {
      return overdueRollbacks.get(id, now) as number;
    },
    /** Rows past their deadline and not done. */
    expired(id: string, now: number): DeviceRow[] {
      return (expired.all(id, now, ...IN_FLIGHT_STATES) as DeviceSqlRow[]).map(toRow);
    },
    waiting(id: string, limit: number): DeviceRow[] {
      return (waiting.all(id, limit) as DeviceSqlRow[]).map(toRow);
    },
    /** One row, without manifests. */
    device(id: string, deviceId: string): DeviceRow | undefined {
      const row = oneDevice.get(id, deviceId) as DeviceSqlRow | undefined;
      return row && toRow(row);
    },
    devices,
    rowsIn(id: string, states: readonly RolloutDeviceState[]): DeviceRow[] {
      return (cached(rowsInCache, states, () => rowsIn(states)).all(id, ...states) as DeviceSqlRow[]).map(toRow);
    },
    /** A device's rows in these states across rollouts, newest rollout first (indexed by device; without manifests). */
    rowsOfDevice(deviceId: string, states: readonly RolloutDeviceState[]): DeviceRow[] {
      return (cached(ofDeviceCache, states, () => ofDeviceIn(states)).all(deviceId, ...states) as DeviceSqlRow[]).map(toRow);
    },
    /**
     * The signed manifest of exactly this variant (model, version and file digest) when a rollout gave
     * it to this device: as its assignment once its turn came, or as the version a rollback returned it
     * to. The rollout's own stored copy, so two versions that share a file never stand in for each other.
     */
    manifestGivenTo(deviceId: string, ref: { model: string; version: string; sha256: string }): SignedManifest | undefined {
      const params = { deviceId, model: ref.model, version: ref.version, sha256: ref.sha256 };
      const rolloutId = givenTo.get(params) as string | undefined;
      let found: SignedManifest | undefined;
      if (rolloutId !== undefined) found = manifest(rolloutId, ref.sha256);
      else {
        const text = givenBeforeStaged.get(params) as string | undefined;
        found = text === undefined ? undefined : readStoredManifest(text, `model ${ref.model}@${ref.version} manifest`);
      }
      const m = found?.manifest;
      return m && m.model === ref.model && m.version === ref.version && m.sha256 === ref.sha256 ? found : undefined;
    },
    saveDevice(row: DeviceRow, at: string): void {
      saveDevice.run(row.state, row.progress, row.error, row.shadow && JSON.stringify(row.shadow), row.switchedAt, row.deadline, at, row.rolloutId, row.deviceId);
    },
    assign(row: DeviceRow, a: { from: VersionRef | null; fromManifest: SignedManifest | null; activate: boolean; assignedAt: number; deadline: number }, at: string): void {
      assign.run(a.from && JSON.stringify(a.from), a.fromManifest && storeManifest(row.rolloutId, a.fromManifest), a.activate ? 1 : 0, a.assignedAt, a.deadline, at, row.rolloutId, row.deviceId);
    },
    setActivate(row: DeviceRow, activate: boolean, deadline: number | null, at: string): void {
      setActivate.run(activate ? 1 : 0, deadline, at, row.rolloutId, row.deviceId);
    },
    summary(id: string): RolloutSummary | undefined {
      const rec = record(id);
      return rec && summary(rec, sumCounts(countsByWave(id, 0)));
    },
    /** The newest `limit` rollouts with their counts: two queries for the page, not one per rollout. */
    list(limit: number): RolloutSummary[] {
      const counts = new Map<string, Record<string, number>>();
      for (const r of pageCounts.all(limit) as Array<{ rollout_id: string; state: string; n: number }>) {
        let c = counts.get(r.rollout_id);
        if (!c) counts.set(r.rollout_id, (c = {}));
        c[r.state] = r.n;
      }
      return (page.all(limit) as RolloutSqlRow[]).map((row) => summary(toRecord(row), counts.get(row.id) ?? {}));
    },
    /** Rows of one wave, without manifests. */
    devicesOfWave(id: string, wave: number): DeviceRow[] {
      return (devicesOfWave.all(id, wave) as DeviceSqlRow[]).map(toRow);
    },
    /** Rows of this model's rollouts in these states, any rollout state (a finished rollout may still have rows rolling back). */
    rowsOfModel(model: string, states: readonly RolloutDeviceState[]): DeviceRow[] {
      return (cached(ofModelCache, states, () => ofModelIn(states)).all(model, ...states) as DeviceSqlRow[]).map(toRow);
    },
    /** Rows in these states that have a deadline get `deadline` instead (the hub was down: their devices could not report). */
    refreshDeadlines(id: string, states: readonly RolloutDeviceState[], deadline: number): number {
      return cached(refreshCache, states, () => refreshDeadlines(states.length)).run(deadline, id, ...states).changes;
    },
    get(id: string): Rollout | undefined {
      const rec = record(id);
      if (!rec) return undefined;
      const ws = waves(id);
      const byWave = countsByWave(id, ws.length);
      const rows = devices(id);
      const apiWaves: RolloutWave[] = ws.map((w) => ({
        index: w.index,
        state: w.state,
        spec: w.spec,
        startedAt: iso(w.startedAt),
        bakeUntil: iso(w.bakeUntil),
        endedAt: iso(w.endedAt),
        gates: w.gates,
        counts: (byWave[w.index] ?? {}) as Record<string, number>,
        devices: rows.filter((d) => d.wave === w.index).map(toApiDevice),
      }));
      return { ...summary(rec, sumCounts(byWave)), waves: apiWaves };
    },
  };
}
export type RolloutRepo = ReturnType<typeof createRolloutRepo>;

