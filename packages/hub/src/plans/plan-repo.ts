import { Capabilities, DevicePlan, EdgefleetError, type DeviceBenchmark, type Profile } from '@edgefleet/shared';
import { Type } from 'typebox';
import type { Db } from '../store/database.js';
import { storedJsonReader } from '../store/stored-json.js';

/** A benchmark request as stored: which artifacts the device may fetch for it, and until when. */
export interface BenchmarkRequestRow {
  id: string;
  deviceId: string;
  model: string;
  version: string;
  artifacts: string[];
  state: 'sent' | 'done' | 'failed';
  error: string | null;
  requestedAt: number;
  expiresAt: number;
}

/** What the planner needs of a device: its id and reported capabilities (null before the first report, or when the stored ones do not read). */
export interface PlannedDevice {
  id: string;
  capabilities: Capabilities | null;
}

/** One successful measurement: a variant's file and its p50 on the device. */
export interface MeasuredP50 {
  sha256: string;
  p50Ms: number;
}

interface BenchmarkSqlRow {
  device_id: string;
  model: string;
  version: string;
  profile: string;
  sha256: string;
  p50_ms: number | null;
  p90_ms: number | null;
  runs: number;
  error: string | null;
  measured_at: string;
}

interface RequestSqlRow {
  id: string;
  device_id: string;
  model: string;
  version: string;
  artifacts: string;
  state: string;
  error: string | null;
  requested_at: number;
  expires_at: number;
}

const readPlan = storedJsonReader(DevicePlan);
const readCapabilities = storedJsonReader(Capabilities);
const readArtifacts = storedJsonReader(Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' })));

function planOf(text: string, where: string): DevicePlan {
  const read = readPlan(text);
  if ('value' in read) return read.value;
  throw new EdgefleetError('STORAGE_ERROR', `stored plan of ${where} ${read.error}`);
}

const toBenchmark = (r: BenchmarkSqlRow): DeviceBenchmark => ({
  deviceId: r.device_id,
  model: r.model,
  version: r.version,
  profile: r.profile as Profile,
  sha256: r.sha256,
  p50Ms: r.p50_ms,
  p90Ms: r.p90_ms,
  runs: r.runs,
  error: r.error,
  measuredAt: r.measured_at,
});

function toRequest(r: RequestSqlRow): BenchmarkRequestRow {
  const artifacts = readArtifacts(r.artifacts);
  if ('error' in artifacts) throw new EdgefleetError('STORAGE_ERROR', `stored artifacts of benchmark request ${r.id} ${artifacts.error}`);
  return {
    id: r.id,
    deviceId: r.device_id,
    model: r.model,
    version: r.version,
    artifacts: artifacts.value,
    state: r.state as BenchmarkRequestRow['state'],
    error: r.error,
    requestedAt: r.requested_at,
    expiresAt: r.expires_at,
  };
}

/** SQL for device plans, device benchmarks and benchmark requests (and the slim device read planning needs). */
export function createPlanRepo(db: Db) {
  const upsertPlan = db.prepare(`
    INSERT INTO device_plans (device_id, model, version, profile, sha256, decided_by, plan, planned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (device_id, model, version) DO UPDATE SET profile = excluded.profile, sha256 = excluded.sha256,
      decided_by = excluded.decided_by, plan = excluded.plan, planned_at = excluded.planned_at`);
  const storedText = db.prepare('SELECT plan, planned_at FROM device_plans WHERE device_id = ? AND model = ? AND version = ?');
  // A filter left out matches everything: `? IS NULL OR column = ?`.
  const listPlans = db.prepare(`
    SELECT device_id, model, version, plan FROM device_plans
    WHERE (@model IS NULL OR model = @model) AND (@version IS NULL OR version = @version) AND (@deviceId IS NULL OR device_id = @deviceId)
    ORDER BY model, version, device_id`);
  // Only the two columns planning reads (the full device read joins telemetry), a page at a time by rowid
  // so a fleet-wide re-plan reads, parses and plans one slice per turn of the event loop.
  const devicePage = db.prepare('SELECT rowid, id, capabilities FROM devices WHERE revoked = 0 AND rowid > ? ORDER BY rowid LIMIT ?');
  const plannedDevice = db.prepare('SELECT id, capabilities FROM devices WHERE id = ? AND revoked = 0');
  const upsertBenchmark = db.prepare(`
    INSERT INTO device_benchmarks (device_id, model, version, profile, sha256, p50_ms, p90_ms, runs, error, measured_at)
    VALUES (@deviceId, @model, @version, @profile, @sha256, @p50Ms, @p90Ms, @runs, @error, @measuredAt)
    ON CONFLICT (device_id, sha256) DO UPDATE SET model = excluded.model, version = excluded.version, profile = excluded.profile,
      p50_ms = excluded.p50_ms, p90_ms = excluded.p90_ms, runs = excluded.runs, error = excluded.error, measured_at = excluded.measured_at`);
  const benchmarksOfDevice = db.prepare('SELECT * FROM device_benchmarks WHERE device_id = ? ORDER BY model, version, measured_at, profile');
  // What planning reads of a version's benchmarks, in two queries whatever the number of devices: each
  // successful p50, and the capabilities of each measuring device once (the text is ~1-2 KB; joined onto
  // every measurement it was read once per variant). Revoked devices measure for nobody.
  const measuredOfVersion = db.prepare('SELECT device_id, sha256, p50_ms FROM device_benchmarks WHERE model = ? AND version = ? AND p50_ms IS NOT NULL');
  const measuringDevices = db.prepare(`
    SELECT id, capabilities FROM devices WHERE revoked = 0
      AND id IN (SELECT device_id FROM device_benchmarks WHERE model = ? AND version = ? AND p50_ms IS NOT NULL)`);
  const insertRequest = db.prepare(`
    INSERT INTO benchmark_requests (id, device_id, model, version, artifacts, state, error, requested_at, expires_at)
    VALUES (@id, @deviceId, @model, @version, @artifacts, @state, @error, @requestedAt, @expiresAt)`);
  const oneRequest = db.prepare('SELECT * FROM benchmark_requests WHERE id = ?');
  const finishRequest = db.prepare("UPDATE benchmark_requests SET state = ?, error = ? WHERE id = ? AND state = 'sent'");
  // Only while the hub waits for the answer: the agent fetches every candidate before it answers, so a
  // done or failed request opens nothing more.
  const liveArtifacts = db.prepare("SELECT id, artifacts FROM benchmark_requests WHERE device_id = ? AND expires_at > ? AND state = 'sent'");
  const purgeRequests = db.prepare('DELETE FROM benchmark_requests WHERE expires_at < ?');

  const toPlanned = (r: { id: string; capabilities: string | null }): PlannedDevice => {
    const caps = r.capabilities === null ? null : readCapabilities(r.capabilities);
    // Capabilities that do not read plan like none reported (fp32 by rule) rather than failing the fleet's re-plan.
    return { id: r.id, capabilities: caps && 'value' in caps ? caps.value : null };
  };

  return {
    /**
     * True when the stored plan says exactly this apart from when it was made. Compared as text (the
     * new plan written with the stored time), not parsed: a fleet re-plan that changes nothing then
     * costs a read and a stringify per device. A damaged row compares unequal and is rewritten.
     */
    storedSame(p: DevicePlan): boolean {
      const row = storedText.get(p.deviceId, p.model, p.version) as { plan: string; planned_at: string } | undefined;
      return row !== undefined && JSON.stringify({ ...p, plannedAt: row.planned_at }) === row.plan;
    },
    list(filter: { model?: string; version?: string; deviceId?: string }): DevicePlan[] {
      const rows = listPlans.all({ model: filter.model ?? null, version: filter.version ?? null, deviceId: filter.deviceId ?? null }) as Array<{ device_id: string; model: string; version: string; plan: string }>;
      return rows.map((r) => planOf(r.plan, `${r.device_id} for ${r.model}@${r.version}`));
    },
    savePlan(p: DevicePlan): void {
      upsertPlan.run(p.deviceId, p.model, p.version, p.profile, p.sha256, p.decidedBy, JSON.stringify(p), p.plannedAt);
    },
    /** Devices that are not revoked, `limit` of them after the row `after` (0 to start); `next` is the cursor of the following page. */
    plannedDevicePage(after: number, limit: number): { devices: PlannedDevice[]; next: number | null } {
      const rows = devicePage.all(after, limit) as Array<{ rowid: number; id: string; capabilities: string | null }>;
      return { devices: rows.map(toPlanned), next: rows.length < limit ? null : rows[rows.length - 1]!.rowid };
    },
    plannedDevice(id: string): PlannedDevice | undefined {
      const row = plannedDevice.get(id) as { id: string; capabilities: string | null } | undefined;
      return row && toPlanned(row);
    },
    saveBenchmark(b: DeviceBenchmark): void {
      upsertBenchmark.run(b);
    },
    benchmarksOfDevice(deviceId: string): DeviceBenchmark[] {
      return (benchmarksOfDevice.all(deviceId) as BenchmarkSqlRow[]).map(toBenchmark);
    },
    /**
     * The successful measurements of a version by devices that are not revoked, grouped by device with
     * its capabilities (read once per device).
     */
    measuredDevicesOfVersion(model: string, version: string): Array<{ device: PlannedDevice; measured: MeasuredP50[] }> {
      const byDevice = new Map<string, MeasuredP50[]>();
      for (const r of measuredOfVersion.all(model, version) as Array<{ device_id: string; sha256: string; p50_ms: number }>) {
        const measured = byDevice.get(r.device_id);
        if (measured) measured.push({ sha256: r.sha256, p50Ms: r.p50_ms });
        else byDevice.set(r.device_id, [{ sha256: r.sha256, p50Ms: r.p50_ms }]);
      }
      // Identical boxes report identical capabilities: each distinct text is read and checked once.
      const parsed = new Map<string, Capabilities | null>();
      const rows = measuringDevices.all(model, version) as Array<{ id: string; capabilities: string | null }>;
      return rows.map((r) => {
        let capabilities = r.capabilities === null ? null : parsed.get(r.capabilities);
        if (capabilities === undefined) parsed.set(r.capabilities!, (capabilities = toPlanned(r).capabilities));
        return { device: { id: r.id, capabilities }, measured: byDevice.get(r.id) ?? [] };
      });
    },
    insertRequest(r: BenchmarkRequestRow): void {
      insertRequest.run({ ...r, artifacts: JSON.stringify(r.artifacts) });
    },
    request(id: string): BenchmarkRequestRow | undefined {
      const row = oneRequest.get(id) as RequestSqlRow | undefined;
      return row && toRequest(row);
    },
    /** Ends a request that was still waiting for its answer; false when it had already ended. */
    finishRequest(id: string, state: 'done' | 'failed', error: string | null): boolean {
      return finishRequest.run(state, error, id).changes === 1;
    },
    /** Artifacts of this device's benchmark requests still waiting for its answer and not expired (a damaged row grants nothing). */
    benchmarkArtifacts(deviceId: string, now: number): string[] {
      const rows = liveArtifacts.all(deviceId, now) as Array<{ id: string; artifacts: string }>;
      return rows.flatMap((r) => {
        const read = readArtifacts(r.artifacts);
        return 'value' in read ? read.value : [];
      });
    },
    /** Deletes requests that expired before `before` (ms). */
    purgeRequests(before: number): number {
      return purgeRequests.run(before).changes;
    },
  };
}
export type PlanRepo = ReturnType<typeof createPlanRepo>;
