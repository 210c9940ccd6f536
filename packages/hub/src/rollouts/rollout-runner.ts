import { deviceTopic, encodeMessage, type DesiredMessage, type GateResult, type RolloutState } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { RecordRepo } from '../records/record-repo.js';
import type { Db } from '../store/database.js';
import { newEffects, type DeviceAssignments, type Effects } from './device-assignments.js';
import { DOWNLOAD_SLOT_STATES, IN_FLIGHT_STATES } from './device-transitions.js';
import { driftGate, metricGates, shadowGate, type DriftScores } from './gates.js';
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
 * Devices assigned per transaction at most (each reads and rewrites a desired document of up to
 * ~64 KB, about 0.1-0.2 ms): a wave that opens a thousand download slots is assigned over a hundred
 * macrotasks of a few ms each. Small, because one turn of the event loop runs every ready macrotask:
 * an assignment slice, a slice of device words (which assigns again as slots free), a publish slice
 * and ingest commits all share it with the downloads they start. At 50 the longest turn of the
 * 1,000-device switch (bench/rollout-switch.mjs, 2 cores) was 130-140 ms; at 10 it is 50-80 ms, the
 * rest being the downloads' I/O and GC, and the switch takes ~0.3 s longer (more commits).
 */
export const ASSIGN_SLICE = 10;
/** Desired documents encoded and handed to the broker per macrotask (each up to ~64 KB with its manifests; ~0.1 ms). */
const PUBLISH_SLICE = 25;

/** The committed documents of one transaction on their way to the broker. */
interface Outgoing {
  docs: Array<[string, DesiredMessage]>;
  next: number;
  sends: Array<Promise<void>>;
  resolve: () => void;
}

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
  clock: () => number;
  /** Latest drift scores of a version per device; absent, no rollout may ask for the drift gate (refused at creation). */
  driftScores?: DriftScores;
}) {
  const { db, rollouts, assignments, bus, windows, log } = deps;

  /**
   * Committed documents waiting for the broker, in commit order (so a device's newer document is
   * never published before an older one). Sent PUBLISH_SLICE at a time, one slice per macrotask: a
   * wave that assigns thousands of devices does not hold the event loop while it encodes them all.
   */
  const outbox: Outgoing[] = [];
  let draining = false;

  function publishOne(deviceId: string, doc: DesiredMessage): Promise<void> {
    const failed = (err: unknown) => {
      // SQLite holds the document: the hub republishes it at its next start.
      log.error({ err, deviceId }, 'desired document not published');
    };
    try {
      return deps.broker.publish(deviceTopic(deviceId, 'desired'), encodeMessage('desired', doc), { retain: true }).catch(failed);
    } catch (err) {
      failed(err);
      return Promise.resolve();
    }
  }

  function drain(): void {
    let budget = PUBLISH_SLICE;
    while (budget > 0 && outbox.length > 0) {
      const out = outbox[0]!;
      for (; budget > 0 && out.next < out.docs.length; budget--) {
        const [deviceId, doc] = out.docs[out.next++]!;
        out.sends.push(publishOne(deviceId, doc));
      }
      if (out.next < out.docs.length) break;
      outbox.shift();
      void Promise.all(out.sends).then(out.resolve);
    }
    draining = outbox.length > 0;
    if (draining) setImmediate(drain);
  }

  /** Queues a transaction's documents; resolves once the broker has them all (or failed them, logged). */
  function publishAfterCommit(docs: Array<[string, DesiredMessage]>): Promise<void> {
    if (docs.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      outbox.push({ docs, next: 0, sends: [], resolve });
      if (!draining) {
        draining = true;
        setImmediate(drain);
      }
    });
  }

  /** Rollouts with devices still to assign in a slot they have: advanced again on the next macrotask. */
  const unfinished = new Set<string>();
  let stopped = false;

  function continueLater(rolloutId: string): void {
    if (stopped) return;
    if (unfinished.size === 0) setImmediate(continueAssigning);
    unfinished.add(rolloutId);
  }

  function continueAssigning(): void {
    const ids = [...unfinished];
    unfinished.clear();
    // A failed slice rolled back; the 1 s tick advances the rollout again.
    for (const id of ids) {
      transactDetached({ rolloutId: id }, 'assigning the next devices failed', (eff) => {
        eff.touched.set(id, {});
        advance(eff, id, deps.clock());
      });
    }
  }

  /** Runs `fn` in one transaction, then publishes the desired documents it wrote and announces the rollouts it touched. */
  function transact<T>(fn: (eff: Effects) => T): { result: T; published: Promise<void> } {
    const eff = newEffects();
    const result = db.transaction(() => fn(eff))();
    // Committed already: a failure while publishing or announcing is logged, not the caller's failure
    // (SQLite holds every document, republished at the next start), and never an unhandled rejection.
    const published = announce(eff).catch((err: unknown) => log.error({ err, rollouts: [...eff.touched.keys()] }, 'announcing committed rollout changes failed'));
    return { result, published };
  }

  /**
   * Runs a step that a timer, node-cron or ingest started: nobody awaits it, so a failure (a damaged
   * row, a full disk) is logged here; the step's transaction rolled back and the next event or tick retries.
   */
  function transactDetached(fields: Record<string, string>, msg: string, fn: (eff: Effects) => void): void {
    try {
      void transact(fn).published;
    } catch (err) {
      log.error({ err, ...fields }, msg);
    }
  }

  async function announce(eff: Effects): Promise<void> {
    for (const [rolloutId, last] of eff.touched) {
      const rec = rollouts.record(rolloutId);
      if (!rec) continue;
      if (FINAL.includes(rec.core.state) || rec.core.state === 'rolling-back') windows.unwatch(rolloutId);
      const wave = currentWave(rollouts.waves(rolloutId))?.index ?? null;
      bus.emit('rollout', { rolloutId, state: rec.core.state, wave, counts: rollouts.counts(rolloutId), ...last });
    }
    await publishAfterCommit([...eff.docs]);
  }

  /** Metric and shadow gates of a wave, from telemetry and the shadow reports of its devices. */
  const metricsOf = (rolloutId: string, now: number) => (wave: WaveCore, at: string): GateResult[] => {
    const rows = rollouts.devicesOfWave(rolloutId, wave.index);
    const switched = rows.filter((d) => d.state === 'active' && d.switchedAt !== null);
    // Telemetry of every switched device is read (and parsed) only for a gate that judges it: at thousands of devices that is seconds.
    const judgesTelemetry = wave.spec.gates?.maxErrorRateIncrease !== undefined || wave.spec.gates?.maxP99Ratio !== undefined;
    const usage = judgesTelemetry ? collectDeviceUsage(deps.records, switched.map((d) => ({ ...d, assignedAt: d.assignedAt ?? d.switchedAt! })), now) : [];
    const shadow = shadowGate(wave.spec.gates, rows.filter((d) => d.shadow !== null || d.state === 'active').map((d) => d.shadow), at);
    const drift = wave.spec.gates?.maxDriftScore !== undefined && deps.driftScores ? driftGateOf(rolloutId, wave, switched.map((d) => ({ deviceId: d.deviceId, since: d.switchedAt! })), at) : undefined;
    return [...metricGates(wave.spec.gates, usage, at), ...(shadow ? [shadow] : []), ...(drift ? [drift] : [])];
  };

  /** The drift gate over the switched devices' evaluations of the rollout's version since each switched. */
  const driftGateOf = (rolloutId: string, wave: WaveCore, switched: Array<{ deviceId: string; since: number }>, at: string): GateResult | undefined => {
    const rec = rollouts.record(rolloutId);
    if (!rec || !deps.driftScores) return undefined;
    return driftGate(wave.spec.gates, switched.map((d) => d.deviceId), deps.driftScores(rec.model, rec.version, switched), at);
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
    const next = rollouts.waiting(id, Math.min(slots, ASSIGN_SLICE));
    for (const row of next) assignments.assign(eff, rec, row, activate, now, at);
    // More slots than one slice fills, and maybe more devices waiting: the rest in the next transaction.
    if (slots > ASSIGN_SLICE && next.length === ASSIGN_SLICE) continueLater(id);
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

  /** Persists a machine step (advance, an operator action): the rollout and the waves that changed. */
  function save(before: readonly WaveCore[], rollout: RolloutCore, waves: readonly WaveCore[], at: string): void {
    rollouts.saveRollout(rollout, at);
    waves.forEach((w, i) => {
      if (JSON.stringify(w) !== JSON.stringify(before[i])) rollouts.saveWave(rollout.id, w);
    });
  }

  /** No more assignment continuations (the hub is stopping; the next start continues from SQLite). */
  function stop(): void {
    stopped = true;
    unfinished.clear();
  }

  return { transact, transactDetached, advance, rollBackAll, abortAll, save, stop };
}
