import type { DeploymentEvent, InstalledModel, RolloutDeviceState, ShadowReport, VersionRef } from '@edgefleet/shared';

/**
 * Pure device-level rules of a rollout: what an agent's deployment event, its reported state or a
 * deadline does to one device row. No I/O; the service persists what these return.
 */

/** The part of a device row the rules read. */
export interface DeviceSnapshot {
  state: RolloutDeviceState;
  from: VersionRef | null;
  to: VersionRef;
  deadline: number | null;
}

/** What changes on the row; fields left out stay as they are. */
export interface DeviceChange {
  state: RolloutDeviceState;
  progress?: number | null;
  error?: string | null;
  shadow?: ShadowReport;
  switchedAt?: number;
  /** A new deadline (a rollback gives the device deviceTimeoutSec to confirm its previous version). */
  deadline?: number | null;
}

/** Desired written, the device is working on it (or waiting to switch). */
export const IN_FLIGHT_STATES: readonly RolloutDeviceState[] = [
  'assigned',
  'downloading',
  'verifying',
  'loading',
  'health-check',
  'shadow',
  'ready',
  'deferred',
  'retrying',
];

/** The states that hold one of the rollout's download slots (maxConcurrentDownloads). */
export const DOWNLOAD_SLOT_STATES: readonly RolloutDeviceState[] = ['assigned', 'downloading', 'verifying', 'loading', 'retrying'];

/** A device in these states no longer keeps its wave from completing. */
export const DONE_STATES: readonly RolloutDeviceState[] = ['active', 'failed', 'timed-out', 'rolled-back', 'superseded', 'cancelled', 'removed'];

/**
 * Not switched yet, whatever the device is doing: these rows follow the maintenance window (told to
 * switch while it is open, to prepare only while it is closed). A timed-out row still may switch later.
 */
export const UNSWITCHED_STATES: readonly RolloutDeviceState[] = [...IN_FLIGHT_STATES, 'timed-out'];

/** States in which a late word from the device can still change the row. */
export const LISTENING_STATES: readonly RolloutDeviceState[] = [...IN_FLIGHT_STATES, 'active', 'failed', 'timed-out', 'rolling-back'];

const PROGRESS_RANK: Partial<Record<RolloutDeviceState, number>> = {
  assigned: 0,
  retrying: 0,
  downloading: 1,
  verifying: 2,
  loading: 3,
  'health-check': 4,
  shadow: 5,
  ready: 6,
  deferred: 7,
};

const inFlight = (s: RolloutDeviceState) => IN_FLIGHT_STATES.includes(s);
/** Not yet switched but the device may still switch: the new version wins from any of these. */
const mayStillSwitch = (s: RolloutDeviceState) => inFlight(s) || s === 'failed' || s === 'timed-out';

const shadowOf = (ev: DeploymentEvent): { shadow?: ShadowReport } => (ev.shadow ? { shadow: ev.shadow } : {});

function describe(ev: DeploymentEvent, fallback: string): string {
  return `${ev.code ? `${ev.code}: ` : ''}${ev.message ?? fallback}`;
}

/**
 * A deployment event about this row. Events may come late, twice or out of order: progress only
 * moves forward (a retry starts over), `active` wins over an earlier failure or time-out, a
 * retryable failure is not terminal, and rows that left the rollout (superseded, cancelled) stay so.
 */
export function onDeploymentEvent(row: DeviceSnapshot, ev: DeploymentEvent, now: number): DeviceChange | null {
  if (row.state === 'rolling-back') return rollbackEvent(row, ev);
  if (ev.sha256 !== row.to.sha256) return null;
  switch (ev.phase) {
    case 'active':
      return mayStillSwitch(row.state) ? { state: 'active', progress: 1, error: null, switchedAt: now, ...shadowOf(ev) } : null;
    case 'failed': {
      if (!inFlight(row.state) && row.state !== 'timed-out') return null;
      const shadow = shadowOf(ev);
      // Past its deadline the row stays timed out while the device retries (`retrying` would take a
      // download slot and hold the wave until the next tick timed it out again); `active` still wins.
      if (ev.retryable && row.state === 'timed-out') return null;
      if (ev.retryable) return { state: 'retrying', progress: null, error: describe(ev, 'deployment failed; the device retries'), ...shadow };
      return { state: 'failed', progress: null, error: describe(ev, 'deployment failed'), ...shadow };
    }
    case 'rolled-back':
      // The agent's health window switched back on its own: a failure of the new version.
      return inFlight(row.state) || row.state === 'active' || row.state === 'timed-out'
        ? { state: 'rolled-back', progress: null, error: describe(ev, 'the device switched back to its previous version') }
        : null;
    case 'removed':
      return null;
    default: {
      if (!inFlight(row.state)) return null;
      const forward = row.state === 'retrying' || (PROGRESS_RANK[ev.phase] ?? 0) >= (PROGRESS_RANK[row.state] ?? 0);
      // A late shadow result still counts for the shadow gate, even when the row has moved past the phase.
      if (!forward) return ev.shadow ? { state: row.state, shadow: ev.shadow } : null;
      return { state: ev.phase, progress: ev.progress ?? null, error: null, ...shadowOf(ev) };
    }
  }
}

/** While the hub rolls a row back, only the previous version becoming active (or the model removed) matters. */
function rollbackEvent(row: DeviceSnapshot, ev: DeploymentEvent): DeviceChange | null {
  const back = row.from ? ev.phase === 'active' && ev.sha256 === row.from.sha256 : ev.phase === 'removed';
  return back ? { state: 'rolled-back', progress: 1 } : null;
}

/** The device's retained report: what it runs is the truth, whatever events were lost. */
export function onReported(row: DeviceSnapshot, models: readonly InstalledModel[], now: number): DeviceChange | null {
  const active = models.find((m) => m.name === row.to.model && m.active);
  if (row.state === 'rolling-back') {
    const back = row.from ? active?.sha256 === row.from.sha256 : active === undefined;
    return back ? { state: 'rolled-back', progress: 1 } : null;
  }
  if (active?.sha256 === row.to.sha256 && mayStillSwitch(row.state)) return { state: 'active', progress: 1, error: null, switchedAt: now };
  return null;
}

/**
 * Past its deadline a device that is not done times out of its wave (counted, not blocking); it
 * still becomes active if it later reports the version. A device that is `ready` while told to
 * prepare only waits for the maintenance window, which is not its fault; once the window told it to
 * switch (`activate`, with a fresh deadline) it is timed like any other, so an offline one cannot hold its wave.
 */
export function onDeadline(row: DeviceSnapshot & { activate: boolean }, now: number, timeoutSec: number): DeviceChange | null {
  if (row.deadline === null || now < row.deadline || !inFlight(row.state) || (row.state === 'ready' && !row.activate)) return null;
  return { state: 'timed-out', error: `not done ${timeoutSec} s after its assignment (last state: ${row.state})` };
}

/** The part of a row the maintenance window reads. */
export interface WindowedRow {
  state: RolloutDeviceState;
  /** Whether its desired assignment says switch now. */
  activate: boolean;
}

/** The window opened: rows not yet switched that were told to prepare only are told to switch. */
export function switchesOnWindowOpen(row: WindowedRow): boolean {
  return !row.activate && UNSWITCHED_STATES.includes(row.state);
}

/**
 * The window closed: a row not yet switched that was told to switch is told to prepare only again
 * (its desired document rewritten with activate false), so the device does not switch outside the
 * window. Returns the row's state from then on, or null when the row is left alone. A `deferred`
 * device has the version prepared and was held by a local lock: it now waits for the next window
 * like a `ready` one (the agent keeps it staged without a new event), which is not its fault.
 */
export function onWindowClose(row: WindowedRow): DeviceChange | null {
  if (!row.activate || !UNSWITCHED_STATES.includes(row.state)) return null;
  return { state: row.state === 'deferred' ? 'ready' : row.state };
}

/** The device's version of a model as a VersionRef, from its report (null: none active). */
export function activeVersionOf(models: readonly InstalledModel[], model: string): VersionRef | null {
  const m = models.find((x) => x.name === model && x.active);
  return m ? { model: m.name, version: m.version, profile: m.profile, sha256: m.sha256 } : null;
}
