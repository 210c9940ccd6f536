import { DEVICE_PUBLISH_KINDS } from '@edgefleet/shared';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { IngestCounters } from '../broker/ingest-service.js';

/**
 * The hub's Prometheus metrics: fleet-level aggregates only, never a label per device (cardinality;
 * per-device history is the hub's database and API). Every value is read from its source when scraped,
 * so nothing here is updated on the hot paths; the sources are plain functions (SQL stays in the repos).
 */

export type CountByLabel = Readonly<Record<string, number>>;
export interface DeviceStatusCounts {
  online: number;
  offline: number;
  revoked: number;
}
/** Devices (not revoked) reporting `model@version` as their active version. */
export interface ModelDevices {
  model: string;
  version: string;
  devices: number;
}
export interface RolloutCounts {
  /** Active (not ended) rollouts by their state. */
  byState: CountByLabel;
  /** Devices of active rollouts by their state within the rollout. */
  devicesByState: CountByLabel;
}
/** The fleet's latest drift score of a version (score > 1: drifted). */
export interface DriftScore {
  model: string;
  version: string;
  score: number;
}
export interface DriftAlertCount {
  model: string;
  version: string;
  active: number;
}

export interface HubMetricSources {
  deviceStatus(): DeviceStatusCounts;
  modelDevices(): readonly ModelDevices[];
  rollouts(): RolloutCounts;
  ingest(): Readonly<IngestCounters>;
  /** Records waiting in the ingest write queue now. */
  ingestQueueLength(): number;
  brokerConnections(): number;
  driftScores(): readonly DriftScore[];
  driftAlerts(): readonly DriftAlertCount[];
  /** Drift summaries ingest refused, by reason (unknown version, wrong layout, too large, …). */
  driftRejections(): CountByLabel;
}

export interface HubMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  render(): Promise<string>;
}

const DEFAULT_METRICS_PREFIX = 'edgefleet_hub_';

/** The plain running totals of IngestCounters (queuePeak is a high-water mark, a gauge). */
type IngestCounterName = Exclude<{ [K in keyof IngestCounters]: IngestCounters[K] extends number ? K : never }[keyof IngestCounters], 'queuePeak'>;
const INGEST_COUNTERS: ReadonlyArray<[IngestCounterName, string, string]> = [
  ['received', 'edgefleet_ingest_received_total', 'Device messages received by the broker policy'],
  ['stored', 'edgefleet_ingest_stored_total', 'Device records committed to the database'],
  ['duplicates', 'edgefleet_ingest_duplicates_total', 'Device records already stored (redelivery after a lost acknowledgement)'],
  ['tooLarge', 'edgefleet_ingest_too_large_total', 'Device messages dropped for exceeding their kind size limit (also counted in dropped)'],
  ['refused', 'edgefleet_ingest_refused_total', 'Device publishes refused by the ACL'],
  ['held', 'edgefleet_ingest_held_total', 'Records whose acknowledgement waited for the full write queue to drain'],
  ['storageErrors', 'edgefleet_ingest_storage_errors_total', 'Records that failed to be written'],
  ['newEpochs', 'edgefleet_ingest_new_epochs_total', 'Times a device started a new record epoch (its agent database was replaced)'],
  ['seqRegressions', 'edgefleet_ingest_seq_regressions_total', 'Records that reused a stored sequence number with a different time'],
];

/** Puts a running total kept elsewhere into a counter its collect() just reset (a counter only adds). */
function setCounter(counter: Counter<string>, value: number, labels: Record<string, string> = {}): void {
  counter.inc(labels, Math.max(0, value));
}

export function createHubMetrics(sources: HubMetricSources): HubMetrics {
  const registry = new Registry();
  const registers = [registry];
  // Process CPU, memory, handles, GC and event-loop lag (…_nodejs_eventloop_lag_p99_seconds among them).
  collectDefaultMetrics({ register: registry, prefix: DEFAULT_METRICS_PREFIX });
  // prom-client names these gauges …_total, which Prometheus reserves for counters (promtool's lint
  // refuses them); the handle and request counts say little about the hub that lag and memory do not.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(DEFAULT_METRICS_PREFIX + name);
  }

  new Gauge({
    name: 'edgefleet_devices',
    help: 'Enrolled devices by status (online, offline, revoked)',
    labelNames: ['status'],
    registers,
    collect() {
      this.reset();
      for (const [status, n] of Object.entries(sources.deviceStatus())) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'edgefleet_model_devices',
    help: 'Devices (not revoked) serving a model version as their active version',
    labelNames: ['model', 'version'],
    registers,
    collect() {
      this.reset();
      for (const m of sources.modelDevices()) this.set({ model: m.model, version: m.version }, m.devices);
    },
  });
  new Gauge({
    name: 'edgefleet_rollouts_active',
    help: 'Rollouts not yet ended, by state',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      for (const [state, n] of Object.entries(sources.rollouts().byState)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'edgefleet_rollout_devices',
    help: 'Devices of active rollouts by their state within the rollout',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      for (const [state, n] of Object.entries(sources.rollouts().devicesByState)) this.set({ state }, n);
    },
  });

  for (const [key, name, help] of INGEST_COUNTERS) {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        setCounter(this, sources.ingest()[key]);
      },
    });
  }
  new Counter({
    name: 'edgefleet_ingest_dropped_total',
    help: 'Invalid device messages dropped, by topic kind',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      const byKind = sources.ingest().droppedByKind;
      for (const kind of DEVICE_PUBLISH_KINDS) setCounter(this, byKind[kind] ?? 0, { kind });
    },
  });
  new Gauge({
    name: 'edgefleet_ingest_queue_length',
    help: 'Records waiting in the ingest write queue',
    registers,
    collect() {
      this.set(sources.ingestQueueLength());
    },
  });
  new Gauge({
    name: 'edgefleet_ingest_queue_peak',
    help: 'The most records the ingest write queue has held at once since start',
    registers,
    collect() {
      this.set(sources.ingest().queuePeak);
    },
  });
  new Gauge({
    name: 'edgefleet_broker_connections',
    help: 'Open device MQTT connections',
    registers,
    collect() {
      this.set(sources.brokerConnections());
    },
  });

  const { driftScores, driftAlerts, driftRejections } = sources;
  new Gauge({
    name: 'edgefleet_drift_score',
    help: 'Latest fleet drift score of a model version (highest feature PSI over its noise-aware threshold; above 1 is drifted)',
    labelNames: ['model', 'version'],
    registers,
    collect() {
      this.reset();
      for (const d of driftScores()) this.set({ model: d.model, version: d.version }, d.score);
    },
  });
  new Gauge({
    name: 'edgefleet_drift_alerts_active',
    help: 'Active drift alerts of a model version (fleet and device scopes)',
    labelNames: ['model', 'version'],
    registers,
    collect() {
      this.reset();
      for (const a of driftAlerts()) this.set({ model: a.model, version: a.version }, a.active);
    },
  });
  new Counter({
    name: 'edgefleet_drift_summaries_rejected_total',
    help: 'Drift summaries ingest refused, by reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(driftRejections())) setCounter(this, n, { reason });
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}
