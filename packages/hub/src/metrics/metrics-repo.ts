import { ROLLOUT_DEVICE_STATES, ROLLOUT_STATES, type RolloutState } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import type { CountByLabel, DeviceStatusCounts, DriftAlertCount, DriftScore, ModelDevices, RolloutCounts } from './hub-metrics.js';

/** Rollouts that no longer change (rollout-runner's FINAL): the others are the active ones a scrape reports. */
const ENDED: readonly RolloutState[] = ['succeeded', 'aborted', 'rolled-back'];
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ROLLOUT_STATES.filter((s) => !ENDED.includes(s));
const ACTIVE_IN = `(${ACTIVE_ROLLOUT_STATES.map((s) => `'${s}'`).join(', ')})`;

/**
 * The aggregate reads behind /metrics. One GROUP BY per metric family, so a scrape costs the same few
 * index or table scans at 10,000 devices as at 10 — never a query per device.
 */
export function createMetricsRepo(db: Db) {
  const deviceStatus = db.prepare(`
    SELECT CASE WHEN revoked = 1 THEN 'revoked' WHEN online = 1 THEN 'online' ELSE 'offline' END AS label, count(*) AS n
    FROM devices GROUP BY label`);
  // Devices on the same versions report the same list, so there are few distinct texts: SQLite groups
  // them and only those are parsed. (json_each over every row took ~150 ms at 10,000 devices; this 20–30 ms, unindexed: see migration 006.)
  const reportedModels = db.prepare('SELECT models, count(*) AS n FROM devices WHERE revoked = 0 GROUP BY models');
  // Reported names are the device's word: only versions the registry holds become label values, so a device cannot mint series.
  const registeredVersions = db.prepare('SELECT model, version FROM model_versions');
  const rolloutsByState = db.prepare(`SELECT state AS label, count(*) AS n FROM rollouts WHERE state IN ${ACTIVE_IN} GROUP BY state`);
  const rolloutDevicesByState = db.prepare(`
    SELECT rd.state AS label, count(*) AS n
    FROM rollouts r JOIN rollout_devices rd ON rd.rollout_id = r.id
    WHERE r.state IN ${ACTIVE_IN} GROUP BY rd.state`);
  // The fleet's latest evaluation per version: one row each in drift_latest (scope ''), read by its partial index.
  const driftScores = db.prepare("SELECT model, version, score FROM drift_latest WHERE scope = ''");
  const driftAlerts = db.prepare(`SELECT model, version, count(*) AS active FROM drift_alerts WHERE state = 'active' GROUP BY model, version`);

  // Zero-filled over the known labels, so a series does not vanish from a graph when its count drops to 0.
  const counts = (rows: unknown[], labels: readonly string[] = []): CountByLabel => ({
    ...Object.fromEntries(labels.map((l) => [l, 0])),
    ...Object.fromEntries((rows as Array<{ label: string; n: number }>).map((r) => [r.label, r.n])),
  });
  return {
    deviceStatus(): DeviceStatusCounts {
      const c = counts(deviceStatus.all());
      return { online: c.online ?? 0, offline: c.offline ?? 0, revoked: c.revoked ?? 0 };
    },
    modelDevices(): ModelDevices[] {
      const known = new Set((registeredVersions.all() as Array<{ model: string; version: string }>).map((r) => `${r.model}\0${r.version}`));
      return activeModelCounts(reportedModels.all() as Array<{ models: string; n: number }>, (model, version) => known.has(`${model}\0${version}`));
    },
    rollouts(): RolloutCounts {
      return { byState: counts(rolloutsByState.all(), ACTIVE_ROLLOUT_STATES), devicesByState: counts(rolloutDevicesByState.all(), ROLLOUT_DEVICE_STATES) };
    },
    driftScores(): DriftScore[] {
      return driftScores.all() as DriftScore[];
    },
    driftAlerts(): DriftAlertCount[] {
      return driftAlerts.all() as DriftAlertCount[];
    },
  };
}
export type MetricsRepo = ReturnType<typeof createMetricsRepo>;

/**
 * Devices per active model version, from each distinct reported list and how many devices report it;
 * only versions `registered` accepts are counted.
 */
export function activeModelCounts(groups: ReadonlyArray<{ models: string; n: number }>, registered: (model: string, version: string) => boolean): ModelDevices[] {
  const counts = new Map<string, ModelDevices>();
  for (const { models, n } of groups) {
    let list: unknown;
    try {
      list = JSON.parse(models);
    } catch {
      continue; // a damaged row: the device view names it; a scrape skips it
    }
    if (!Array.isArray(list)) continue;
    for (const m of list as Array<{ name?: unknown; version?: unknown; active?: unknown }>) {
      if (m?.active !== true || typeof m.name !== 'string' || typeof m.version !== 'string' || !registered(m.name, m.version)) continue;
      const key = `${m.name}\0${m.version}`;
      const entry = counts.get(key) ?? { model: m.name, version: m.version, devices: 0 };
      entry.devices += n;
      counts.set(key, entry);
    }
  }
  return [...counts.values()];
}
