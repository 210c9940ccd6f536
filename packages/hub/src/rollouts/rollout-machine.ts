import {
  EdgefleetError,
  type GateResult,
  type HaltReason,
  type RolloutAction,
  type RolloutDeviceState,
  type RolloutSettings,
  type RolloutState,
  type WaveSpec,
  type WaveState,
} from '@edgefleet/shared';
import { DONE_STATES } from './device-transitions.js';
import { failureShareGate, successShareGate, type WaveShareCounts } from './gates.js';

/**
 * Pure rollout- and wave-level rules: a wave starts, fills, is judged by its gates, bakes and
 * passes; a failed gate halts (and with autoRollback rolls back); operators pause, resume, abort
 * and roll back. No I/O: the service feeds in counts from SQL and persists what comes out.
 */

export interface RolloutCore {
  id: string;
  state: RolloutState;
  settings: RolloutSettings;
  reason: HaltReason | null;
  /** ms since epoch; null: closed or no window. */
  windowOpenUntil: number | null;
}

export interface WaveCore {
  index: number;
  state: WaveState;
  spec: WaveSpec;
  startedAt: number | null;
  bakeUntil: number | null;
  endedAt: number | null;
  gates: GateResult[];
  /** An operator resumed past a failed gate of this wave: its gates are still recorded, no longer halt. */
  override: boolean;
}

/** Device rows per state, of one wave. */
export type StateCounts = Partial<Record<RolloutDeviceState, number>>;

export interface Advance {
  rollout: RolloutCore;
  waves: WaveCore[];
  /** Something above must be persisted. */
  changed: boolean;
  /** Devices of waves up to this index may be assigned now (null: no assignment). */
  openThrough: number | null;
  /** A gate failed with autoRollback on: every assigned device returns to its previous version. */
  rollback: boolean;
}

/** Metric and shadow gates of a wave whose bake time ended (telemetry lives behind I/O, so the caller computes them). */
export type MetricJudge = (wave: WaveCore, at: string) => GateResult[];

const count = (c: StateCounts, states: readonly RolloutDeviceState[]) => states.reduce((n, s) => n + (c[s] ?? 0), 0);

/** The numbers the share gates judge: devices that left the rollout (superseded, cancelled) are not counted. */
function shareCounts(c: StateCounts): WaveShareCounts {
  const all = Object.values(c).reduce((n, k) => n + (k ?? 0), 0);
  return {
    total: all - count(c, ['superseded', 'cancelled']),
    active: c.active ?? 0,
    // A device whose own health window switched back is a failure of the new version too.
    failed: count(c, ['failed', 'rolled-back']),
    timedOut: c['timed-out'] ?? 0,
  };
}

function waveDone(c: StateCounts): boolean {
  return Object.entries(c).every(([state, n]) => !n || DONE_STATES.includes(state as RolloutDeviceState));
}

/** The wave a running rollout works on: the first not passed. */
export function currentWave(waves: readonly WaveCore[]): WaveCore | undefined {
  return waves.find((w) => w.state !== 'passed' && w.state !== 'cancelled');
}

/** Latest result per gate. */
function record(wave: WaveCore, result: GateResult): void {
  const i = wave.gates.findIndex((g) => g.gate === result.gate);
  if (i >= 0) wave.gates[i] = result;
  else wave.gates.push(result);
}

/** How a rollback ended: devices it covered, those past their deadline still rolling back, those it could not return. */
interface RollbackEnd {
  total: number;
  unconfirmed: number;
  /** Rows `failed` while rolling back: the hub knew no manifest of their previous version, so they keep the new one. */
  failed: number;
}

const devicesWord = (n: number) => `device${n === 1 ? '' : 's'}`;

/**
 * The reason of a rollback that ended with devices not back on their previous version: the original
 * reason (gate or operator) with how many did not confirm and how many could not be rolled back, so
 * "rolled-back" does not read as "every device is back". Unchanged when every device is back.
 */
function rollbackEndReason(r: RolloutCore, lastWave: number, end: RollbackEnd, at: string): HaltReason | null {
  const notes: string[] = [];
  if (end.unconfirmed > 0) {
    notes.push(
      `rollback ended with ${end.unconfirmed} of ${end.total} ${devicesWord(end.total)} not confirmed back on the previous version ` +
        `within ${r.settings.deviceTimeoutSec} s (${end.unconfirmed === 1 ? 'it returns to it when it reconnects' : 'they return to it when they reconnect'})`,
    );
  }
  if (end.failed > 0) {
    notes.push(
      `${end.failed} of ${end.total} ${devicesWord(end.total)} could not be rolled back: no manifest of ${end.failed === 1 ? 'its' : 'their'} previous version is known, ` +
        `so ${end.failed === 1 ? 'it keeps' : 'they keep'} the new version (see the device errors)`,
    );
  }
  if (notes.length === 0) return r.reason;
  const note = notes.join('; ');
  return r.reason ? { ...r.reason, message: `${r.reason.message}; ${note}` } : { wave: lastWave, gate: null, message: note, at };
}

/**
 * Moves a rollout as far as its counts allow at `now`: starts the next wave, judges the failure
 * share as devices fail, the success share when the wave's devices are done, the metric gates when
 * its bake time ends, then the next wave, until every wave passed. A rolling-back rollout ends when
 * no device is still rolling back within its deadline (`overdueRollbacks`: rows still rolling back
 * past it, which converge later but no longer hold the rollout).
 */
export function advanceRollout(
  rollout: RolloutCore,
  waves: readonly WaveCore[],
  counts: readonly StateCounts[],
  now: number,
  metrics: MetricJudge,
  overdueRollbacks = 0,
): Advance {
  const r: RolloutCore = { ...rollout };
  const ws: WaveCore[] = waves.map((w) => ({ ...w, gates: [...w.gates] }));
  const out = (changed: boolean, openThrough: number | null = null, rollback = false): Advance => ({ rollout: r, waves: ws, changed, openThrough, rollback });
  if (r.state === 'rolling-back') {
    const sum = (state: RolloutDeviceState) => counts.reduce((n, c) => n + (c[state] ?? 0), 0);
    const still = sum('rolling-back');
    if (still > overdueRollbacks) return out(false);
    r.state = 'rolled-back';
    // The rollback turned every assigned row, failed ones included, into rolling-back: a row failed now is one it could not return.
    const end = { unconfirmed: still, failed: sum('failed'), total: still + sum('rolled-back') + sum('failed') };
    r.reason = rollbackEndReason(r, Math.max(0, ws.length - 1), end, new Date(now).toISOString());
    return out(true);
  }
  if (r.state !== 'running') return out(false);
  const at = new Date(now).toISOString();
  let changed = false;

  const halt = (w: WaveCore, gate: GateResult): Advance => {
    record(w, gate);
    w.state = 'halted';
    r.reason = { wave: w.index, gate: gate.gate, message: gate.message, at };
    if (!r.settings.autoRollback) {
      r.state = 'halted';
      return out(true);
    }
    r.state = 'rolling-back';
    for (const later of ws) if (later.state === 'pending') later.state = 'cancelled';
    return out(true, null, true);
  };

  for (;;) {
    const w = currentWave(ws);
    if (!w) {
      r.state = 'succeeded';
      r.reason = null;
      return out(true);
    }
    if (w.state === 'halted') return out(changed);
    if (w.state === 'pending') {
      w.state = 'running';
      w.startedAt = now;
      changed = true;
    }
    const c = counts[w.index] ?? {};
    const shares = shareCounts(c);
    const failure = failureShareGate(w.spec.gates, shares, at);
    if (failure.status === 'failed' && !w.override) return halt(w, failure);
    if (w.state === 'running') {
      if (!waveDone(c)) return out(changed, w.index);
      const success = successShareGate(w.spec.gates, shares, at);
      record(w, failure);
      record(w, success);
      if (success.status === 'failed' && !w.override) return halt(w, success);
      w.state = 'baking';
      w.bakeUntil = w.bakeUntil ?? now + (w.spec.bakeSec ?? 0) * 1000;
      changed = true;
    }
    if (now < (w.bakeUntil ?? 0)) return out(changed, w.index);
    const judged = metrics(w, at);
    for (const g of judged) record(w, g);
    const failed = judged.find((g) => g.status === 'failed');
    if (failed && !w.override) return halt(w, failed);
    w.state = 'passed';
    w.endedAt = now;
    changed = true;
  }
}

export interface ActionResult {
  rollout: RolloutCore;
  waves: WaveCore[];
  /** What happens to the device rows: abort cancels unswitched ones, rollback returns every assigned one. */
  devices: 'none' | 'abort' | 'rollback';
}

const ALLOWED: Record<RolloutAction, readonly RolloutState[]> = {
  pause: ['running'],
  resume: ['paused', 'halted'],
  abort: ['running', 'paused', 'halted'],
  rollback: ['running', 'paused', 'halted', 'aborted', 'succeeded'],
};

/** An operator's action, or CONFLICT naming the state it does not apply to. */
export function applyAction(rollout: RolloutCore, waves: readonly WaveCore[], action: RolloutAction, now: number): ActionResult {
  if (!ALLOWED[action].includes(rollout.state)) {
    throw new EdgefleetError('CONFLICT', `rollout ${rollout.id} is ${rollout.state}: ${action} applies only to a ${ALLOWED[action].join(' or ')} rollout`);
  }
  const r: RolloutCore = { ...rollout };
  const ws: WaveCore[] = waves.map((w) => ({ ...w, gates: [...w.gates] }));
  const at = new Date(now).toISOString();
  const wave = (currentWave(ws) ?? ws[ws.length - 1]!).index;
  const byOperator = (message: string): HaltReason => ({ wave, gate: null, message, at });
  const cancelOpenWaves = () => {
    for (const w of ws) {
      if (w.state === 'passed') continue;
      if (w.state !== 'halted') w.state = 'cancelled';
      w.endedAt ??= now;
    }
  };
  switch (action) {
    case 'pause':
      r.state = 'paused';
      r.reason = byOperator('paused by an operator');
      return { rollout: r, waves: ws, devices: 'none' };
    case 'resume': {
      r.state = 'running';
      r.reason = null;
      for (const w of ws) {
        if (w.state !== 'halted') continue;
        // Resuming a halted rollout overrides the gate that stopped it: the wave goes on from where it stood.
        w.state = w.bakeUntil === null ? 'running' : 'baking';
        w.override = true;
      }
      return { rollout: r, waves: ws, devices: 'none' };
    }
    case 'abort':
      r.state = 'aborted';
      r.reason = byOperator(rollout.reason ? `aborted by an operator after: ${rollout.reason.message}` : 'aborted by an operator');
      cancelOpenWaves();
      return { rollout: r, waves: ws, devices: 'abort' };
    case 'rollback':
      r.state = 'rolling-back';
      r.reason = rollout.reason && rollout.state === 'halted' ? rollout.reason : byOperator('rolled back by an operator');
      cancelOpenWaves();
      return { rollout: r, waves: ws, devices: 'rollback' };
  }
}

/** Whether assignments may switch now: no maintenance window, or it is open. */
export function windowOpen(rollout: RolloutCore, now: number): boolean {
  return rollout.settings.maintenanceWindow === null || (rollout.windowOpenUntil !== null && now < rollout.windowOpenUntil);
}
