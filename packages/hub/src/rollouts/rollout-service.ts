import { randomBytes } from 'node:crypto';
import {
  deviceTopic,
  EdgefleetError,
  encodeMessage,
  type CreateRolloutRequest,
  type DeploymentEvent,
  type Device,
  type MessageOf,
  type Rollout,
  type RolloutAction,
  type RolloutSettings,
  type RolloutSummary,
  type RolloutTarget,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { DeploymentObserver } from '../broker/ingest-service.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { ModelRepo } from '../models/model-repo.js';
import type { RecordRepo } from '../records/record-repo.js';
import type { Db } from '../store/database.js';
import { assignmentOf } from './desired-doc.js';
import type { DesiredRepo } from './desired-repo.js';
import { createDeviceAssignments, type Effects } from './device-assignments.js';
import {
  activeVersionOf,
  IN_FLIGHT_STATES,
  LISTENING_STATES,
  onDeadline,
  onDeploymentEvent,
  onReported,
  onWindowClose,
  switchesOnWindowOpen,
  UNSWITCHED_STATES,
  type DeviceChange,
} from './device-transitions.js';
import { createWindowClock } from './maintenance-window.js';
import { assertRequestRules } from './request-rules.js';
import { applyAction, type WaveCore } from './rollout-machine.js';
import type { RolloutRepo } from './rollout-repo.js';
import type { DeviceRow, RolloutRecord } from './rollout-rows.js';
import { createRolloutRunner, LIVE, type DesiredPublisher } from './rollout-runner.js';
import { DEFAULT_WAVES, planWaves } from './wave-plan.js';

/** A device's word for its rollout rows: which rows it speaks of (read when applied) and what it does to each. */
interface DeviceWord {
  deviceId: string;
  rows: () => DeviceRow[];
  decide: (row: DeviceRow, now: number) => DeviceChange | null;
}

/**
 * Device words applied per transaction at most (about 0.05-0.1 ms each with its row writes; the
 * advance after them may assign ASSIGN_SLICE more devices). Small for the reason ASSIGN_SLICE is:
 * the slice shares its turn of the event loop with the other ready work.
 */
const WORD_SLICE = 25;

/** Rows a device's report can move: not yet switched, or being rolled back. */
const REPORT_STATES = [...IN_FLIGHT_STATES, 'failed', 'timed-out', 'rolling-back'] as const;
/** Rows of an older rollout that a newer one of the same model takes over. */
const SUPERSEDED_STATES = ['pending', 'waiting', ...IN_FLIGHT_STATES, 'timed-out', 'rolling-back'] as const;
/** Rows whose deadline runs while the hub waits for their device's word. */
const AWAITING_DEVICE_STATES = [...IN_FLIGHT_STATES, 'rolling-back'] as const;

function settingsOf(req: CreateRolloutRequest): RolloutSettings {
  return {
    maxConcurrentDownloads: req.maxConcurrentDownloads ?? 100,
    deviceTimeoutSec: req.deviceTimeoutSec ?? 900,
    autoRollback: req.autoRollback ?? false,
    maxDeferSec: req.maxDeferSec ?? 600,
    maintenanceWindow: req.maintenanceWindow ?? null,
    shadow: req.shadow ?? null,
    healthWindow: req.healthWindow ?? null,
  };
}

/**
 * The I/O edge of staged rollouts: persists each transition of the pure machine together with the
 * desired documents it writes (one transaction), then publishes them retained and tells the bus.
 * Device events and reports advance a rollout at once; a 1 s ticker handles deadlines and bake ends;
 * node-cron opens maintenance windows. Everything it knows is in SQLite, so start() after a crash
 * continues each rollout where it was.
 */
export function createRolloutService(deps: {
  db: Db;
  rollouts: RolloutRepo;
  desired: DesiredRepo;
  devices: DeviceRepo;
  models: ModelRepo;
  records: Pick<RecordRepo, 'telemetryBetween'>;
  broker: DesiredPublisher;
  bus: HubEventBus;
  log: Logger;
  clock?: () => number;
  tickMs?: number;
}) {
  const { db, rollouts, desired, devices, bus, log } = deps;
  const clock = deps.clock ?? Date.now;
  const assignments = createDeviceAssignments({ rollouts, desired, devices, models: deps.models, log });
  const windows = createWindowClock(log);
  const { transact, advance, rollBackAll, abortAll, save, stop: stopRunner } = createRolloutRunner({ db, rollouts, assignments, records: deps.records, broker: deps.broker, bus, windows, log, clock });
  let ticker: NodeJS.Timeout | null = null;

  /**
   * Runs a step that a timer, node-cron or ingest started: nobody awaits it, so a failure (a damaged
   * row, a full disk) is logged here; the step's transaction rolled back and the next event or tick retries.
   */
  function guarded(fields: Record<string, string>, msg: string, step: () => { published: Promise<void> }): void {
    try {
      void step().published;
    } catch (err) {
      log.error({ err, ...fields }, msg);
    }
  }

  /**
   * Tells the prepared devices of a running rollout to switch (the window is open). A paused or
   * halted rollout switches nobody: the operator stopped it; resuming inside the window switches them.
   */
  function switchPrepared(eff: Effects, rec: RolloutRecord, now: number, at: string): void {
    if (rec.core.state !== 'running') return;
    const deadline = now + rec.core.settings.deviceTimeoutSec * 1000;
    for (const row of rollouts.rowsIn(rec.core.id, UNSWITCHED_STATES)) {
      if (switchesOnWindowOpen(row)) assignments.setActivate(eff, rec, row, true, deadline, at);
    }
  }

  /** The maintenance window opened: prepared devices may switch until `until`. */
  function openWindow(rolloutId: string, now: number, until: number): void {
    guarded({ rolloutId }, 'opening the maintenance window failed', () => transact((eff) => {
      const rec = rollouts.record(rolloutId);
      if (!rec || !LIVE.includes(rec.core.state)) return;
      const at = new Date(now).toISOString();
      const core = { ...rec.core, windowOpenUntil: until };
      rollouts.saveRollout(core, at);
      eff.touched.set(rolloutId, {});
      switchPrepared(eff, { ...rec, core }, now, at);
      log.info({ rolloutId, state: core.state, until: new Date(until).toISOString() }, 'maintenance window open');
      advance(eff, rolloutId, now);
    }));
  }

  function watchWindow(rec: RolloutRecord): void {
    const window = rec.core.settings.maintenanceWindow;
    if (!window || !LIVE.includes(rec.core.state)) return;
    windows.watch(rec.core.id, window, (at) => openWindow(rec.core.id, at, at + window.durationMinutes * 60_000));
  }

  /**
   * The maintenance window closed: devices of a live rollout that were told to switch and have not
   * are told to prepare only again, so none switches outside the window (they switch when it next
   * opens). In the caller's transaction; the rewritten documents are published after it commits.
   */
  function closeWindow(eff: Effects, rec: RolloutRecord, now: number, at: string): void {
    const core = { ...rec.core, windowOpenUntil: null };
    rollouts.saveRollout(core, at);
    eff.touched.set(core.id, {});
    if (!LIVE.includes(core.state)) return;
    let held = 0;
    for (const row of rollouts.rowsIn(core.id, UNSWITCHED_STATES)) {
      const change = onWindowClose(row);
      if (!change) continue;
      // The deadline stays: a row that is (or becomes) ready is not timed while it waits for the window.
      assignments.setActivate(eff, { ...rec, core }, row, false, row.deadline, at);
      if (change.state !== row.state) assignments.save(eff, { ...row, activate: false }, change, at);
      held++;
    }
    log.info({ rolloutId: core.id, devices: held, closedAt: new Date(now).toISOString() }, 'maintenance window closed');
  }

  /** Deadlines, bake ends and window closes of every live rollout; one rollout's failure does not stop the others'. */
  function tick(): void {
    const now = clock();
    const at = new Date(now).toISOString();
    for (const id of rollouts.idsInStates([...LIVE, 'rolling-back'])) {
      guarded({ rolloutId: id }, 'rollout tick failed', () => transact((eff) => {
        const rec = rollouts.record(id);
        if (!rec) return;
        if (rec.core.windowOpenUntil !== null && now >= rec.core.windowOpenUntil) closeWindow(eff, rec, now, at);
        for (const row of rollouts.expired(id, now)) {
          const change = onDeadline(row, now, rec.core.settings.deviceTimeoutSec);
          if (change) assignments.save(eff, row, change, at);
        }
        advance(eff, id, now);
      }));
    }
  }

  /**
   * Device words (deployment events, reports) waiting to be applied. Ingest hands over a whole
   * committed batch synchronously; the words are applied together on the next microtask: one
   * transaction, and one advance and one announcement per rollout, for the batch (per event, a
   * rollout of 1,000 devices spent seconds of event loop re-counting its rows).
   */
  const words: DeviceWord[] = [];
  let applyScheduled = false;

  function onDeviceWord(word: DeviceWord): void {
    words.push(word);
    if (applyScheduled) return;
    applyScheduled = true;
    queueMicrotask(applyWords);
  }

  /**
   * Applies the waiting words in arrival order (each reads its rows after the previous one's
   * changes), then advances each rollout they moved once. The batch's transitions commit together
   * before any desired document is published. A word or rollout that fails (a damaged row) is rolled
   * back to its savepoint and logged; the others' changes stay. At most WORD_SLICE words per
   * transaction: a reconnect brings a thousand reports in one state batch, and applying them all at
   * once would hold the event loop for a few hundred ms; the rest follow on the next macrotask
   * (setImmediate: the next turn, after the broker has read its sockets).
   */
  function applyWords(): void {
    const batch = words.splice(0, WORD_SLICE);
    if (words.length > 0) setImmediate(applyWords);
    else applyScheduled = false;
    const now = clock();
    const at = new Date(now).toISOString();
    guarded({ words: String(batch.length) }, 'rollout progress from devices failed', () => transact((eff) => {
      for (const word of batch) {
        try {
          db.transaction(() => applyWord(eff, word, now, at))();
        } catch (err) {
          log.error({ err, deviceId: word.deviceId }, 'rollout progress from a device failed');
        }
      }
      for (const rolloutId of [...eff.touched.keys()]) {
        try {
          db.transaction(() => advance(eff, rolloutId, now))();
        } catch (err) {
          // The rows' changes stay; the next tick advances the rollout again.
          log.error({ err, rolloutId }, 'advancing the rollout after device progress failed');
        }
      }
    }));
  }

  function applyWord(eff: Effects, word: DeviceWord, now: number, at: string): void {
    for (const row of word.rows()) {
      const change = word.decide(row, now);
      if (!change) continue;
      assignments.save(eff, row, change, at);
      if (change.state !== row.state) log.info({ rolloutId: row.rolloutId, deviceId: word.deviceId, state: change.state, error: change.error ?? undefined }, 'rollout device state');
    }
  }

  const observer: DeploymentObserver = {
    onDeploymentEvent(deviceId: string, ev: DeploymentEvent) {
      onDeviceWord({
        deviceId,
        rows: () => {
          if (ev.rolloutId === undefined) return rollouts.rowsOfDevice(deviceId, LISTENING_STATES).filter((r) => r.to.model === ev.model);
          const named = rollouts.device(ev.rolloutId, deviceId);
          return named ? [named] : [];
        },
        decide: (row, now) => onDeploymentEvent(row, ev, now),
      });
    },
    onReported(deviceId: string, reported: MessageOf<'reported'>) {
      onDeviceWord({
        deviceId,
        // Active rows are left out: a report cannot change them, and every past rollout of the device has some.
        rows: () => rollouts.rowsOfDevice(deviceId, REPORT_STATES),
        decide: (row, now) => onReported(row, reported.models, now),
      });
    },
  };

  function resolveTargets(target: RolloutTarget): Device[] {
    if ('deviceIds' in target) {
      const ids = [...new Set(target.deviceIds)];
      return ids.map((id) => {
        const device = devices.get(id);
        if (!device) throw new EdgefleetError('NOT_FOUND', `target device ${id} does not exist`);
        if (device.revoked) throw new EdgefleetError('BAD_REQUEST', `target device ${id} is revoked`);
        return device;
      });
    }
    return devices.list('labels' in target ? { labels: target.labels } : {}).filter((d) => !d.revoked);
  }

  function get(id: string): Rollout {
    const r = rollouts.get(id);
    if (!r) throw new EdgefleetError('NOT_FOUND', `rollout ${id} does not exist`);
    return r;
  }

  return {
    observer,
    async create(req: CreateRolloutRequest): Promise<Rollout> {
      const version = deps.models.get(req.model, req.version);
      if (!version) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${req.model}@${req.version} does not exist: upload it first`);
      assertRequestRules(req);
      const targets = resolveTargets(req.target);
      if (targets.length === 0) throw new EdgefleetError('BAD_REQUEST', 'the rollout target matches no enrolled device');
      const specs = req.waves ?? [...DEFAULT_WAVES];
      const members = planWaves(targets, specs);
      const byId = new Map(targets.map((d) => [d.id, d]));
      const id = `ro-${randomBytes(6).toString('hex')}`;
      const now = clock();
      const createdAt = new Date(now).toISOString();
      const to = { model: req.model, version: req.version, profile: version.manifest.manifest.profile, sha256: version.sha256 };
      const window = req.maintenanceWindow;
      // Created inside an open window (it opened less than its duration ago): devices may switch at once.
      const opened = window ? windows.openedWithin(window, now) : null;
      const rec: RolloutRecord = {
        core: { id, state: 'running', settings: settingsOf(req), reason: null, windowOpenUntil: opened === null ? null : opened + window!.durationMinutes * 60_000 },
        model: req.model,
        version: req.version,
        sha256: version.sha256,
        target: req.target,
        createdAt,
        updatedAt: createdAt,
      };
      const started = performance.now();
      const { published } = transact((eff) => {
        // A newer rollout of the same model takes the devices it targets from older ones that have not finished with them
        // (one query for the model's open rows, not one per target).
        // A row still rolling back (say, its device offline) is the newer rollout's now: the device's desired document no longer says `from`.
        for (const old of rollouts.rowsOfModel(req.model, SUPERSEDED_STATES)) {
          if (old.to.model === req.model && byId.has(old.deviceId)) assignments.save(eff, old, { state: 'superseded', error: `superseded by rollout ${id}` }, createdAt);
        }
        const waves = specs.map((spec, index): WaveCore => ({ index, state: 'pending', spec, startedAt: null, bakeUntil: null, endedAt: null, gates: [], override: false }));
        rollouts.insert(
          rec,
          waves,
          members.map((m) => {
            const device = byId.get(m.deviceId)!;
            // The desired document (large: it holds manifests) is read only for a device that reports no active version.
            const active = activeVersionOf(device.models, req.model);
            const previous = active ? undefined : assignmentOf(desired.get(m.deviceId), req.model)?.manifest.manifest;
            const from = active ?? (previous ? { model: previous.model, version: previous.version, profile: previous.profile, sha256: previous.sha256 } : null);
            return { ...m, from, to, toManifest: version.manifest };
          }),
        );
        for (const rolloutId of [...eff.touched.keys()]) advance(eff, rolloutId, now);
        eff.touched.set(id, {});
        advance(eff, id, now);
      });
      const transactionMs = Math.round(performance.now() - started);
      log.info({ rolloutId: id, model: req.model, version: req.version, devices: targets.length, waves: specs.length, transactionMs }, 'rollout created');
      // The stored state, not `rec`: a rollout whose devices all run the version already finished in the transaction.
      watchWindow(rollouts.record(id)!);
      // Answered without waiting for the broker: the documents are in SQLite (republished at start), and
      // publishing a thousand retained documents is what kept the answer waiting for seconds.
      published.catch((err: unknown) => log.error({ err, rolloutId: id }, 'announcing the new rollout failed'));
      return get(id);
    },
    get,
    /** The newest `limit` rollouts (the route bounds it). */
    list(limit: number): RolloutSummary[] {
      return rollouts.list(limit);
    },
    /** pause, resume, abort, rollback: CONFLICT (409) naming the state when the action does not apply. */
    async act(id: string, action: RolloutAction): Promise<Rollout> {
      const rec = rollouts.record(id);
      if (!rec) throw new EdgefleetError('NOT_FOUND', `rollout ${id} does not exist`);
      const now = clock();
      const at = new Date(now).toISOString();
      const { published } = transact((eff) => {
        const waves = rollouts.waves(id);
        const result = applyAction(rec.core, waves, action, now);
        save(waves, result.rollout, result.waves, at);
        eff.touched.set(id, {});
        // Resumed while its maintenance window is open: the devices it prepared meanwhile switch now.
        if (action === 'resume' && rec.core.windowOpenUntil !== null && now < rec.core.windowOpenUntil) switchPrepared(eff, { ...rec, core: result.rollout }, now, at);
        if (result.devices === 'abort') abortAll(eff, id, at);
        if (result.devices === 'rollback') rollBackAll(eff, id, now, at);
        advance(eff, id, now);
      });
      log.info({ rolloutId: id, action }, 'rollout action');
      await published;
      return get(id);
    },
    /** At hub start: aedes keeps retained messages in memory only, so SQLite's desired documents are republished. */
    async republishAll(): Promise<number> {
      const docs = desired.all();
      await Promise.all(docs.map((d) => deps.broker.publish(deviceTopic(d.deviceId, 'desired'), encodeMessage('desired', d.doc), { retain: true })));
      return docs.length;
    },
    /**
     * Continues every rollout from SQLite (windows, assignments, rollbacks), then ticks every second.
     * Devices could not report while the hub was down: rows waiting for a device get a fresh deadline
     * first, or the first tick would time out every device in flight before it reconnects.
     */
    start(): void {
      const now = clock();
      for (const id of rollouts.idsInStates([...LIVE, 'rolling-back'])) {
        const rec = rollouts.record(id)!;
        const refreshed = rollouts.refreshDeadlines(id, AWAITING_DEVICE_STATES, now + rec.core.settings.deviceTimeoutSec * 1000);
        if (refreshed > 0) log.info({ rolloutId: id, devices: refreshed }, 'hub restarted: deadlines of devices in flight start again');
        watchWindow(rec);
        const window = rec.core.settings.maintenanceWindow;
        if (window && rec.core.windowOpenUntil === null && LIVE.includes(rec.core.state)) {
          const opened = windows.openedWithin(window, now);
          if (opened !== null) openWindow(id, now, opened + window.durationMinutes * 60_000);
        }
      }
      tick();
      ticker = setInterval(tick, deps.tickMs ?? 1000);
    },
    async stop(): Promise<void> {
      if (ticker) clearInterval(ticker);
      ticker = null;
      stopRunner();
      await windows.stop();
    },
  };
}
export type RolloutService = ReturnType<typeof createRolloutService>;
