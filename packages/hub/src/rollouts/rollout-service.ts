import {
  deviceTopic,
  EdgefleetError,
  encodeMessage,
  type CreateRolloutRequest,
  type DeploymentEvent,
  type MessageOf,
  type Rollout,
  type RolloutAction,
  type RolloutSummary,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { RecordStreams } from '../broker/record-streams.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { ModelRepo } from '../models/model-repo.js';
import type { RecordRepo } from '../records/record-repo.js';
import type { Db } from '../store/database.js';
import type { DesiredRepo } from './desired-repo.js';
import { createDeviceAssignments, type Effects } from './device-assignments.js';
import { IN_FLIGHT_STATES, LISTENING_STATES, onDeadline, onDeploymentEvent, onReported, type DeviceChange } from './device-transitions.js';
import type { DriftScores } from './gates.js';
import { createWindowClock } from './maintenance-window.js';
import { applyAction } from './rollout-machine.js';
import { createRolloutCreation, type RolloutVariants } from './rollout-create.js';
import type { RolloutRepo } from './rollout-repo.js';
import type { DeviceRow } from './rollout-rows.js';
import { createRolloutRunner, LIVE, type DesiredPublisher } from './rollout-runner.js';
import { createRolloutWindows } from './rollout-windows.js';

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
/** Rows whose deadline runs while the hub waits for their device's word. */
const AWAITING_DEVICE_STATES = [...IN_FLIGHT_STATES, 'rolling-back'] as const;

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
  /** Which variant each device gets; absent, every device gets fp32. */
  variants?: RolloutVariants;
  /** Latest drift scores per device (drift evaluations); absent, rollouts asking for the drift gate are refused. */
  driftScores?: DriftScores;
  clock?: () => number;
  tickMs?: number;
}) {
  const { db, rollouts, desired, devices, bus, log } = deps;
  const clock = deps.clock ?? Date.now;
  const assignments = createDeviceAssignments({ rollouts, desired, devices, models: deps.models, log });
  const windowClock = createWindowClock(log);
  const driftScores = deps.driftScores ? { driftScores: deps.driftScores } : {};
  const runner = createRolloutRunner({ db, rollouts, assignments, records: deps.records, broker: deps.broker, bus, windows: windowClock, log, clock, ...driftScores });
  const { transact, transactDetached, advance } = runner;
  const windows = createRolloutWindows({ rollouts, assignments, clock: windowClock, transactDetached, advance, log });
  const create = createRolloutCreation({ rollouts, desired, devices, models: deps.models, assignments, ...(deps.variants ? { variants: deps.variants } : {}), windows, transact, advance, log, clock, evaluatesDrift: deps.driftScores !== undefined });
  let ticker: NodeJS.Timeout | null = null;

  /** Deadlines, bake ends and window closes of every live rollout; one rollout's failure does not stop the others'. */
  function tick(): void {
    const now = clock();
    const at = new Date(now).toISOString();
    for (const id of rollouts.idsInStates([...LIVE, 'rolling-back'])) {
      transactDetached({ rolloutId: id }, 'rollout tick failed', (eff) => {
        const rec = rollouts.record(id);
        if (!rec) return;
        windows.closeIfEnded(eff, rec, now, at);
        for (const row of rollouts.expired(id, now)) {
          const change = onDeadline(row, now, rec.core.settings.deviceTimeoutSec);
          if (change) assignments.save(eff, row, change, at);
        }
        advance(eff, id, now);
      });
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
    transactDetached({ words: String(batch.length) }, 'rollout progress from devices failed', (eff) => {
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
    });
  }

  function applyWord(eff: Effects, word: DeviceWord, now: number, at: string): void {
    for (const row of word.rows()) {
      const change = word.decide(row, now);
      if (!change) continue;
      assignments.save(eff, row, change, at);
      if (change.state !== row.state) log.info({ rolloutId: row.rolloutId, deviceId: word.deviceId, state: change.state, error: change.error ?? undefined }, 'rollout device state');
    }
  }

  function onDeployment(deviceId: string, ev: DeploymentEvent): void {
    onDeviceWord({
        deviceId,
        rows: () => {
          if (ev.rolloutId === undefined) return rollouts.rowsOfDevice(deviceId, LISTENING_STATES).filter((r) => r.to.model === ev.model);
          const named = rollouts.device(ev.rolloutId, deviceId);
          return named ? [named] : [];
        },
        decide: (row, now) => onDeploymentEvent(row, ev, now),
      });
  }
  function onReport(deviceId: string, reported: MessageOf<'reported'>): void {
    onDeviceWord({
      deviceId,
      // Active rows are left out: a report cannot change them, and every past rollout of the device has some.
      rows: () => rollouts.rowsOfDevice(deviceId, REPORT_STATES),
      decide: (row, now) => onReported(row, reported.models, now),
    });
  }

  function get(id: string): Rollout {
    const r = rollouts.get(id);
    if (!r) throw new EdgefleetError('NOT_FOUND', `rollout ${id} does not exist`);
    return r;
  }

  return {
    /** Follows devices' deployment events and reports once committed; returns the unsubscription. */
    follow(streams: Pick<RecordStreams, 'events' | 'reported'>): () => void {
      const offEvents = streams.events.subscribe((deviceId, ev) => {
        if (ev.type === 'deployment') onDeployment(deviceId, ev);
      });
      const offReported = streams.reported.subscribe(onReport);
      return () => {
        offEvents();
        offReported();
      };
    },
    async create(req: CreateRolloutRequest): Promise<Rollout> {
      return get(await create(req));
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
        runner.save(waves, result.rollout, result.waves, at);
        eff.touched.set(id, {});
        // Resumed while its maintenance window is open: the devices it prepared meanwhile switch now.
        if (action === 'resume' && rec.core.windowOpenUntil !== null && now < rec.core.windowOpenUntil) windows.switchPrepared(eff, { ...rec, core: result.rollout }, now, at);
        if (result.devices === 'abort') runner.abortAll(eff, id, at);
        if (result.devices === 'rollback') runner.rollBackAll(eff, id, now, at);
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
        windows.resume(rec, now);
      }
      tick();
      ticker = setInterval(tick, deps.tickMs ?? 1000);
    },
    async stop(): Promise<void> {
      if (ticker) clearInterval(ticker);
      ticker = null;
      runner.stop();
      await windowClock.stop();
    },
  };
}
export type RolloutService = ReturnType<typeof createRolloutService>;
