import { layoutFingerprint, summaryLengths, type AlertState, type DriftAlert, type DriftBaseline, type DriftFeatureScore, type DriftMessage, type DriftSummary, type DriftWebhookBody, type EvaluationRun } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { HubEventBus, HubEventMap } from '../events/hub-event-bus.js';
import type { Db } from '../store/database.js';
import { scoreFeatures } from './drift-math.js';
import type { DriftBaselines } from './drift-baselines.js';
import { createDriftRepo, type DriftRecordRow, type DriftRepo } from './drift-repo.js';
import { alertDecision, alertFeatures, alertMessage, previousOnBaseline, type WindowVerdict } from './alert-rules.js';
import { createDriftUpkeep, type DriftNotice } from './drift-upkeep.js';
import { addToWindow, FLEET_SCOPE, type PendingWindow } from './evaluation-window.js';
import { createDriftViews } from './drift-views.js';

export interface DriftServiceDeps {
  db: Db;
  baselines: DriftBaselines;
  bus: HubEventBus;
  log: Logger;
  /** Samples an evaluation window needs before it is scored. */
  minSamples: number;
  /** Drift records already evaluated are deleted this many hours after they arrived. */
  recordRetentionHours: number;
  /** An active alert whose scope has had no evaluation window for this many hours is cleared as stale (default 24). */
  alertStaleHours?: number;
  /** Alert changes go here when configured. */
  webhook?: { send(body: DriftWebhookBody): void } | undefined;
  /** Most records per chunk (one transaction); the pass yields to the event loop between chunks. */
  chunkSize?: number;
  /** A chunk ends once it has worked this long, so one chunk never holds the event loop longer (about). */
  chunkBudgetMs?: number;
  now?: () => number;
}

/** Why records were passed over, since start (they are not evaluated again: the cursor moves past them). */
export interface DriftEvaluationCounters {
  passes: number;
  summaries: number;
  /** The record's version has no baseline (any more). */
  noBaseline: number;
  /** The summary does not fit its version's current baseline (rebuilt since it was sent). */
  mismatched: number;
  /** Payload not a drift message. */
  unreadable: number;
  /** Pending summaries dropped because the version's baseline layout changed under them. */
  stalePending: number;
}

const DEFAULT_CHUNK = 2000;
const DEFAULT_CHUNK_BUDGET_MS = 40;
/** Records read from SQLite at a time within a chunk. */
const READ_BATCH = 100;
/**
 * A scope's evaluations beyond the newest EVALUATIONS_PER_SCOPE are pruned when an evaluation's id is
 * a multiple of this: about every this many of the scope's own windows, one indexed delete, instead
 * of a delete per window or a pass over every scope.
 */
const PRUNE_SCOPE_EVERY = 64;
/** Default of DriftServiceDeps.alertStaleHours. */
export const DEFAULT_ALERT_STALE_HOURS = 24;

/** Per baseline object: its layout fingerprint and array lengths, computed once instead of per record. */
const layouts = new WeakMap<DriftBaseline, { fingerprint: number; lengths: ReturnType<typeof summaryLengths> }>();

/**
 * Whether a stored summary still fits its version's baseline. Ingest checked it in full against the
 * baseline of its day (summaryMismatch); a rebuilt baseline has another fingerprint, so the
 * fingerprint and the lengths are all that can have changed since.
 */
function fitsBaseline(baseline: DriftBaseline, summary: DriftSummary): boolean {
  let layout = layouts.get(baseline);
  if (!layout) layouts.set(baseline, (layout = { fingerprint: layoutFingerprint(baseline), lengths: summaryLengths(baseline) }));
  const { fingerprint, lengths } = layout;
  return summary.baseline === fingerprint && summary.counts?.length === lengths.counts && summary.sums?.length === lengths.sums && summary.missing?.length === lengths.missing;
}

function readMessage(row: DriftRecordRow): DriftMessage | null {
  try {
    const m = JSON.parse(row.payload) as Partial<DriftMessage>;
    if (typeof m.model !== 'string' || typeof m.version !== 'string' || typeof m.summary !== 'object' || m.summary === null) return null;
    return m as DriftMessage;
  } catch {
    return null;
  }
}

const toApiScore = (f: ReturnType<typeof scoreFeatures>[number]): DriftFeatureScore => ({
  name: f.name,
  role: f.role,
  kind: f.kind,
  psi: f.psi,
  js: f.js,
  ks: f.ks,
  wasserstein: f.wasserstein,
  chi2: f.chi2,
  score: f.score,
  drifted: f.drifted,
});

/**
 * Drift evaluation: reads the `drift` records devices sent (past a cursor), merges them per device
 * into evaluation windows of at least `minSamples` samples (and per fleet: all of a pass's summaries,
 * carried over while below the minimum), scores each closed window
 * against its version's baseline, stores the evaluation and applies the alert rules. A pass works in
 * chunks; each chunk is one transaction that also moves the cursor and writes the pending windows, so
 * a crash part-way neither loses nor counts a record twice. Bus events and webhooks follow each
 * committed chunk. After the chunks: stale alerts cleared, evaluated records pruned by arrival
 * (drift-upkeep). One pass at a time: a call during a pass joins it.
 */
export function createDriftService(deps: DriftServiceDeps) {
  const repo: DriftRepo = createDriftRepo(deps.db);
  const now = deps.now ?? Date.now;
  const chunkSize = deps.chunkSize ?? DEFAULT_CHUNK;
  const chunkBudgetMs = deps.chunkBudgetMs ?? DEFAULT_CHUNK_BUDGET_MS;
  const counters: DriftEvaluationCounters = { passes: 0, summaries: 0, noBaseline: 0, mismatched: 0, unreadable: 0, stalePending: 0 };
  let running: Promise<EvaluationRun> | null = null;
  const upkeep = createDriftUpkeep({ db: deps.db, repo, now, recordRetentionHours: deps.recordRetentionHours, alertStaleHours: deps.alertStaleHours ?? DEFAULT_ALERT_STALE_HOURS });

  function closeWindow(baseline: DriftBaseline, model: string, version: string, deviceId: string | null, window: PendingWindow, run: EvaluationRun, notices: DriftNotice[]): void {
    const features = scoreFeatures(baseline, window.summary).map(toApiScore);
    const current: WindowVerdict = { over: features.some((f) => f.drifted), score: features[0]?.score ?? 0, features };
    // A window scored against the version's baseline before its rebuild pairs with nothing.
    const previous = previousOnBaseline(repo.latest(model, version, deviceId), deps.baselines.info(model, version)?.createdAt);
    const at = now();
    const id = repo.insertEvaluation({ model, version, deviceId, windowStart: window.summary.window.start, windowEnd: window.summary.window.end, samples: window.samples, score: current.score, over: current.over, features, evaluatedAt: at });
    run.evaluations++;
    if (id % PRUNE_SCOPE_EVERY === 0) repo.pruneEvaluations(model, version, deviceId);
    const event: HubEventMap['drift'] = { model, version, deviceId, score: current.score, over: current.over };
    const active = repo.activeAlert(model, version, deviceId);
    const decision = alertDecision(active !== undefined, previous, current);
    let webhook: DriftWebhookBody | undefined;
    if (decision === 'raise' || decision === 'update') {
      const named = alertFeatures(previous, current);
      const devices = deviceId === null ? repo.latestRows.devicesOver(model, version) : [deviceId];
      const fields = { score: current.score, devices, features: named, message: alertMessage(model, version, deviceId, devices, named) };
      if (decision === 'raise') {
        webhook = { type: 'drift.alert.raised', alert: repo.raiseAlert(model, version, deviceId, at, fields) };
        event.alert = 'raised';
        run.raised++;
      } else {
        repo.updateAlert(active!.id, fields);
      }
    } else if (decision === 'clear') {
      webhook = { type: 'drift.alert.cleared', alert: repo.clearAlert(active!.id, at) };
      event.alert = 'cleared';
      run.cleared++;
    }
    // Device windows close by the thousand in a pass at fleet scale: the dashboard hears of the fleet's
    // window (which follows them) and of alert changes, not of every device's window.
    if (deviceId === null || event.alert !== undefined) notices.push(webhook ? { event, webhook } : { event });
  }

  type PendingEntry = { model: string; version: string; scope: string; window: PendingWindow | null };

  /** One record into its device's and the fleet's pending windows, closing the windows it fills. */
  function evaluateRecord(row: DriftRecordRow, pendingOf: (model: string, version: string, scope: string) => PendingEntry, run: EvaluationRun, notices: DriftNotice[]): void {
    const message = readMessage(row);
    if (message === null) {
      counters.unreadable++;
      return;
    }
    const { model, version } = message;
    const summary: DriftSummary = message.summary;
    const baseline = deps.baselines.get(model, version);
    if (baseline === undefined) {
      counters.noBaseline++;
      return;
    }
    if (!fitsBaseline(baseline, summary)) {
      counters.mismatched++;
      return;
    }
    run.summaries++;
    // The fleet's window only gathers here; it closes at the end of the pass (closeFleetWindows), so
    // it merges every device's summaries of the pass instead of each device's in turn.
    for (const scope of [row.deviceId, FLEET_SCOPE]) {
      const entry = pendingOf(model, version, scope);
      const step = addToWindow(baseline, entry.window, summary, scope === FLEET_SCOPE ? Number.POSITIVE_INFINITY : deps.minSamples);
      if (step.droppedStale) counters.stalePending++;
      entry.window = step.pending;
      if (step.closed) closeWindow(baseline, model, version, scope, step.closed, run, notices);
    }
  }

  /**
   * After a pass's records: each version's fleet window that holds at least `minSamples` is scored,
   * after the device windows of the same records, so a fleet alert names their fresh evaluations.
   */
  function closeFleetWindows(run: EvaluationRun, notices: DriftNotice[]): void {
    for (const { model, version, window } of repo.fullPending(FLEET_SCOPE, deps.minSamples)) {
      const baseline = deps.baselines.get(model, version);
      repo.putPending(model, version, FLEET_SCOPE, null);
      if (baseline === undefined || !fitsBaseline(baseline, window.summary)) {
        counters.stalePending++;
        continue;
      }
      closeWindow(baseline, model, version, null, window, run, notices);
    }
  }

  /**
   * One chunk in one transaction: records → pending windows → evaluations → alerts, and the cursor
   * after the last record taken. A chunk ends at `chunkSize` records or after `chunkBudgetMs` of work,
   * whichever comes first. Answers whether records may remain.
   */
  function evaluateChunk(run: EvaluationRun, notices: DriftNotice[]): boolean {
    const started = performance.now();
    const pending = new Map<string, PendingEntry>();
    const pendingOf = (model: string, version: string, scope: string) => {
      const key = JSON.stringify([model, version, scope]);
      let entry = pending.get(key);
      if (!entry) pending.set(key, (entry = { model, version, scope, window: repo.pending(model, version, scope) }));
      return entry;
    };
    const from = repo.cursor();
    let cursor = from;
    let taken = 0;
    let remaining = true;
    while (remaining && taken < chunkSize && performance.now() - started < chunkBudgetMs) {
      const want = Math.min(READ_BATCH, chunkSize - taken);
      const rows = repo.recordsAfter(cursor, want);
      remaining = rows.length === want;
      for (const row of rows) {
        evaluateRecord(row, pendingOf, run, notices);
        cursor = row.id;
        taken++;
        if (performance.now() - started >= chunkBudgetMs) {
          remaining = true;
          break;
        }
      }
    }
    for (const e of pending.values()) repo.putPending(e.model, e.version, e.scope, e.window);
    if (cursor !== from) repo.setCursor(cursor);
    return remaining && taken > 0;
  }

  const chunkTransaction = deps.db.transaction(evaluateChunk);
  const fleetTransaction = deps.db.transaction(closeFleetWindows);

  function announce(notices: readonly DriftNotice[]): void {
    for (const n of notices) {
      deps.bus.emit('drift', n.event);
      if (n.webhook) deps.webhook?.send(n.webhook);
    }
  }

  async function pass(): Promise<EvaluationRun> {
    const run: EvaluationRun = { summaries: 0, evaluations: 0, raised: 0, cleared: 0 };
    for (;;) {
      const notices: DriftNotice[] = [];
      const more = chunkTransaction(run, notices);
      announce(notices);
      if (!more) break;
      // Between chunks: ingest, HTTP and MQTT get the loop (10,000 devices' summaries are many chunks).
      await new Promise((resolve) => setImmediate(resolve));
    }
    const notices: DriftNotice[] = [];
    fleetTransaction(run, notices);
    run.cleared += upkeep.clearStaleAlerts(notices);
    announce(notices);
    upkeep.notePass(repo.cursor());
    const pruned = await upkeep.pruneRecords();
    counters.passes++;
    counters.summaries += run.summaries;
    if (run.evaluations > 0 || pruned > 0) deps.log.debug({ ...run, prunedRecords: pruned }, 'drift evaluation pass');
    return run;
  }

  return {
    counters,
    repo,
    /** One evaluation pass now; a call while a pass runs answers that pass's result. */
    evaluate(): Promise<EvaluationRun> {
      running ??= pass().finally(() => {
        running = null;
      });
      return running;
    },
    /** Resolves once a running pass has finished (for stopping). */
    async idle(): Promise<void> {
      await running?.catch(() => undefined);
    },
    ...createDriftViews(repo, deps.baselines),
    alerts(state: AlertState | 'all' = 'active'): DriftAlert[] {
      return repo.alerts(state);
    },
    /** Latest score per device whose latest window of the version ended after its `since` (the rollout gate reads it). */
    driftScores(model: string, version: string, devices: ReadonlyArray<{ deviceId: string; since: number }>): Map<string, number> {
      return repo.latestRows.scoresSince(model, version, devices);
    },
  };
}
export type DriftService = ReturnType<typeof createDriftService>;
