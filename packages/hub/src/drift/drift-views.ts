import type { DriftModelView, DriftOverview } from '@edgefleet/shared';
import type { DriftBaselines } from './drift-baselines.js';
import type { DriftRepo } from './drift-repo.js';
import { FLEET_SCOPE } from './evaluation-window.js';

/** Device rows a version's view shows at most (devices over first, then the highest scores); the counts cover all. */
export const VIEW_DEVICE_ROWS = 200;

/** What the drift API shows: every tracked version's summary, and one version's evaluations, devices and alerts. */
export function createDriftViews(repo: DriftRepo, baselines: DriftBaselines) {
  return {
    overview(): DriftOverview[] {
      return baselines.list().map((info) => {
        const fleet = repo.latest(info.model, info.version, null);
        return {
          model: info.model,
          version: info.version,
          source: info.source,
          fleetScore: fleet?.score ?? null,
          lastEvaluatedAt: fleet?.evaluatedAt ?? null,
          activeAlerts: repo.activeAlertCount(info.model, info.version),
          devicesOver: repo.latestRows.deviceCounts(info.model, info.version).over,
        };
      });
    },
    /** undefined: the version has neither a baseline nor any evaluation. */
    modelView(model: string, version: string, limit: number, devicesLimit = VIEW_DEVICE_ROWS): DriftModelView | undefined {
      const baseline = baselines.info(model, version) ?? null;
      const fleet = repo.fleetSeries(model, version, limit);
      const counts = repo.latestRows.deviceCounts(model, version);
      if (baseline === null && fleet.length === 0 && counts.total === 0) return undefined;
      const devices = repo.latestRows.topDevices(model, version, devicesLimit);
      return {
        model,
        version,
        baseline,
        fleet,
        devices,
        devicesEvaluated: counts.total,
        devicesOver: counts.over,
        alerts: repo.alertsOfVersion(model, version),
        pendingSamples: repo.pending(model, version, FLEET_SCOPE)?.samples ?? 0,
      };
    },
  };
}
