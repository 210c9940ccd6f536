import { deviceTopic, encodeMessage, type GateResult, type RolloutState } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { RecordRepo } from '../records/record-repo.js';
import type { Db } from '../store/database.js';
import { newEffects, type DeviceAssignments, type Effects } from './device-assignments.js';
import { DOWNLOAD_SLOT_STATES, IN_FLIGHT_STATES } from './device-transitions.js';
import { metricGates, shadowGate } from './gates.js';
import type { WindowClock } from './maintenance-window.js';
import { collectDeviceUsage } from './metric-inputs.js';
import { advanceRollout, currentWave, windowOpen, type RolloutCore, type WaveCore } from './rollout-machine.js';
import type { RolloutRepo } from './rollout-repo.js';
import type { RolloutRecord } from './rollout-rows.js';

export interface DesiredPublisher {
  publish(topic: string, payload: Buffer, opts: { retain: boolean }): Promise<void>;
}

/** Rollouts that may still assign, time out or switch devices. */
export const LIVE: readonly RolloutState[] = ['running', 'paused', 'halted'];
const FINAL: readonly RolloutState[] = ['succeeded', 'aborted', 'rolled-back'];

/**
 * Runs the pure machine against SQLite: each step in one transaction with the desired documents it
 * writes, which are published (retained) and announced on the bus once it has committed.
 */
export function createRolloutRunner(deps: {
  db: Db;
  rollouts: RolloutRepo;
  assignments: DeviceAssignments;
  records: Pick<RecordRepo, 'telemetryBetween'>;
  broker: DesiredPublisher;
  bus: HubEventBus;
  windows: WindowClock;
  log: Logger;
}) {
  const { db, rollouts, assignments, bus, windows, log } = deps;

  /** Runs `fn` in one transaction, then publishes the desired documents it wrote and announces the rollouts it touched. */
  function transact<T>(fn: (eff: Effects) => T): { result: T; published: Promise<void> } {
    const eff = newEffects();
    const result = db.transaction(() => fn(eff))();
    return { result, published: announce(eff) };
  }

  async function announce(eff: Effects): Promise<void> {
    for (const [rolloutId, last] of eff.touched) {
      const rec = rollouts.record(rolloutId);
      if (!rec) continue;
      if (FINAL.includes(rec.core.state) || rec.core.state === 'rolling-back') windows.unwatch(rolloutId);
      const wave = currentWave(rollouts.waves(rolloutId))?.index ?? null;
      bus.emit('rollout', { rolloutId, state: rec.core.state, wave, counts: rollouts.counts(rolloutId), ...last });
    }
    const sends = [...eff.docs].map(([deviceId, doc]) =>
      deps.broker.publish(deviceTopic(deviceId, 'desired'), encodeMessage('desired', doc), { retain: true }).catch((err: unknown) => {
        // SQLite holds the document: the hub republishes it at its next start.
        log.error({ err, deviceId }, 'desired document not published');
      }),
    );
    await Promise.all(sends);
  }

  /** Metric and shadow gates of a wave, from telemetry and the shadow reports of its devices. */
  const metricsOf = (rolloutId: string, now: number) => (wave: WaveCore, at: string): GateResult[] => {
    const rows = rollouts.devices(rolloutId).filter((d) => d.wave === wave.index);
    const switched = rows.filter((d) => d.state === 'active' && d.switchedAt !== null);
    // Telemetry of every switched device is read (and parsed) only for a gate that judges it: at thousands of devices that is seconds.
    const judgesTelemetry = wave.spec.gates?.maxErrorRateIncrease !== undefined || wave.spec.gates?.maxP99Ratio !== undefined;
    const usage = judgesTelemetry ? collectDeviceUsage(deps.records, switched.map((d) => ({ ...d, assignedAt: d.assignedAt ?? d.switchedAt! })), now) : [];
    const shadow = shadowGate(wave.spec.gates, rows.filter((d) => d.shadow !== null || d.state === 'active').map((d) => d.shadow), at);
    return [...metricGates(wave.spec.gates, usage, at), ...(shadow ? [shadow] : [])];
  };

  /** Advances one rollout as far as it goes now: gates, waves, assignments under the download limit. In the caller's transaction. */
  function advance(eff: Effects, rolloutId: string, now: number): void {
    const at = new Date(now).toISOString();
    for (let round = 0; round < 10; round++) {
      const rec = rollouts.record(rolloutId);
      if (!rec) return;
      const waves = rollouts.waves(rolloutId);
      const overdue = rec.core.state === 'rolling-back' ? rollouts.overdueRollbacks(rolloutId, now) : 0;
      const step = advanceRollout(rec.core, waves, rollouts.countsByWave(rolloutId, waves.length), now, metricsOf(rolloutId, now), overdue);
      if (step.changed) {
        save(waves, step.rollout, step.waves, at);
        eff.touched.set(rolloutId, eff.touched.get(rolloutId) ?? {});
        if (step.rollout.state !== rec.core.state) log.info({ rolloutId, state: step.rollout.state, reason: step.rollout.reason }, 'rollout state');
      }
      const settledBefore = eff.settled;
      if (step.rollback) rollBackAll(eff, rolloutId, now, at);
      if (step.openThrough !== null) assignWaiting(eff, { ...rec, core: step.rollout }, step.openThrough, now, at);
      if (eff.settled === settledBefore) return;
    }
  }

  function assignWaiting(eff: Effects, rec: RolloutRecord, through: number, now: number, at: string): void {
    const id = rec.core.id;
    rollouts.openWaves(id, through, at);
    const slots = rec.core.settings.maxConcurrentDownloads - rollouts.countIn(id, DOWNLOAD_SLOT_STATES);
    if (slots <= 0) return;
    const activate = windowOpen(rec.core, now);
    for (const row of rollouts.waiting(id, slots)) assignments.assign(eff, rec, row, activate, now, at);
  }

  /**
   * Every device the rollout assigned goes back (including those an abort cancelled); the others
   * never get it. Each has deviceTimeoutSec to confirm, so an offline device cannot hold the rollback open.
   */
  function rollBackAll(eff: Effects, rolloutId: string, now: number, at: string): void {
    const rec = rollouts.record(rolloutId);
    if (!rec) return;
    const deadline = now + rec.core.settings.deviceTimeoutSec * 1000;
    const assigned = rollouts.rowsIn(rolloutId, [...IN_FLIGHT_STATES, 'active', 'failed', 'timed-out', 'rolled-back', 'cancelled']).filter((row) => row.assignedAt !== null);
    for (const row of rollouts.rowsIn(rolloutId, ['pending', 'waiting'])) assignments.save(eff, row, { state: 'cancelled' }, at);
    for (const row of assigned) assignments.rollBack(eff, row, now, deadline, at);
  }

  function abortAll(eff: Effects, rolloutId: string, at: string): void {
    for (const row of rollouts.rowsIn(rolloutId, ['pending', 'waiting'])) assignments.save(eff, row, { state: 'cancelled' }, at);
    for (const row of rollouts.rowsIn(rolloutId, [...IN_FLIGHT_STATES, 'timed-out', 'failed', 'rolled-back'])) assignments.cancel(eff, row, at);
  }

  /** Persists an operator action's or a window's result (rollout and the waves that changed). */
  function save(before: readonly WaveCore[], rollout: RolloutCore, waves: readonly WaveCore[], at: string): void {
    rollouts.saveRollout(rollout, at);
    waves.forEach((w, i) => {
      if (JSON.stringify(w) !== JSON.stringify(before[i])) rollouts.saveWave(rollout.id, w);
    });
  }

  return { transact, advance, rollBackAll, abortAll, save };
}
export type RolloutRunner = ReturnType<typeof createRolloutRunner>;
