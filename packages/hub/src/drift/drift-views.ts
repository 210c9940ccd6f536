import type { DeviceDriftRow, DriftModelView, DriftOverview } from '@edgefleet/shared';
import type { DriftBaselines } from './drift-baselines.js';
import type { DriftRepo } from './drift-repo.js';
import { FLEET_SCOPE } from './evaluation-window.js';

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
          devicesOver: repo.devicesOver(info.model, info.version).length,
        };
      });
    },
    /** undefined: the version has neither a baseline nor any evaluation. */
    modelView(model: string, version: string, limit: number): DriftModelView | undefined {
      const baseline = baselines.info(model, version) ?? null;
      const fleet = repo.fleetSeries(model, version, limit);
      const latest = repo.latestPerDevice(model, version);
      if (baseline === null && fleet.length === 0 && latest.length === 0) return undefined;
      const devices: DeviceDriftRow[] = latest.map((e) => ({
        deviceId: e.deviceId as string,
        score: e.score,
        over: e.over,
        samples: e.samples,
        windowEnd: e.windowEnd,
        drifted: e.features.filter((f) => f.drifted).map((f) => f.name),
      }));
      return { model, version, baseline, fleet, devices, alerts: repo.alertsOfVersion(model, version), pendingSamples: repo.pending(model, version, FLEET_SCOPE)?.samples ?? 0 };
    },
  };
}
