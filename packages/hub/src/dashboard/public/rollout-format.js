/**
 * Pure rollout helpers for the page: which actions apply, how sizes, gates and countdowns read.
 * No DOM here, so the rules sit in one place the panels share.
 */

/** Operator actions and the rollout states each applies to (the hub answers 409 elsewhere). */
const ACTION_STATES = {
  pause: ['running'],
  resume: ['paused', 'halted'],
  abort: ['running', 'paused', 'halted'],
  rollback: ['running', 'paused', 'halted', 'aborted', 'succeeded'],
};
export const ACTIONS = Object.keys(ACTION_STATES);
export const ACTION_LABELS = { pause: 'Pause', resume: 'Resume', abort: 'Abort', rollback: 'Roll back' };
/** Actions that undo work on devices: the page asks before sending them. */
export const CONFIRMED_ACTIONS = new Set(['abort', 'rollback']);

export function actionApplies(action, state) {
  return ACTION_STATES[action]?.includes(state) ?? false;
}

/** States a rollout does not leave by itself (no live updates expected). */
export const SETTLED_ROLLOUT_STATES = new Set(['succeeded', 'aborted', 'rolled-back']);

/** Device states that count as done for a progress bar: switched, or out of the rollout for good. */
const DEVICE_OUTCOMES = new Set(['active', 'failed', 'timed-out', 'rolled-back', 'cancelled', 'superseded', 'removed']);

/** {active, done, total} from a rollout's or a wave's counts by device state. */
export function progressOf(counts = {}) {
  let total = 0;
  let done = 0;
  for (const [state, n] of Object.entries(counts)) {
    total += n;
    if (DEVICE_OUTCOMES.has(state)) done += n;
  }
  return { active: counts.active ?? 0, done, total };
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function targetText(target) {
  if (!target) return '';
  if (target.all) return 'all devices';
  if (target.labels) return Object.entries(target.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  if (target.deviceIds) return plural(target.deviceIds.length, 'device');
  return '';
}

/** A wave's cumulative size as the operator wrote it: "1 device", "10%". */
export function waveSizeText(size) {
  return typeof size === 'number' ? plural(size, 'device') : String(size);
}

/** "1m 05s" until `untilMs`; null once it has passed. */
export function countdownText(untilMs, now) {
  if (untilMs === null || untilMs <= now) return null;
  const s = Math.ceil((untilMs - now) / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

function percent(x) {
  if (x === null || x === undefined) return '—';
  const p = x * 100;
  return `${Number.isInteger(p) ? p : p.toFixed(p < 10 ? 2 : 1)}%`;
}

function ms(x) {
  return x === null || x === undefined ? '—' : `${x.toFixed(x < 10 ? 2 : 1)} ms`;
}

function plain(x) {
  if (x === null || x === undefined) return '—';
  return Number.isInteger(x) ? String(x) : x.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
}

/**
 * A gate result's numbers as text: shares and error rates in percent, p99 in ms (the ceiling is a
 * ratio of new to previous).
 * The hub's message carries the full sentence; these are for the table's columns.
 */
export function gateNumbers(result) {
  switch (result.gate) {
    case 'failure-share':
      return { observed: percent(result.observed), threshold: `≤ ${percent(result.threshold)}`, baseline: '—' };
    case 'success-share':
    case 'shadow-agreement':
      return { observed: percent(result.observed), threshold: `≥ ${percent(result.threshold)}`, baseline: '—' };
    case 'error-rate':
      return { observed: percent(result.observed), threshold: `≤ +${percent(result.threshold)}`, baseline: percent(result.baseline) };
    case 'p99-latency': {
      const ratio = result.observed !== null && result.baseline ? ` (×${(result.observed / result.baseline).toFixed(2)})` : '';
      return { observed: `${ms(result.observed)}${ratio}`, threshold: `≤ ×${plain(result.threshold)}`, baseline: ms(result.baseline) };
    }
    default:
      return { observed: plain(result.observed), threshold: plain(result.threshold), baseline: plain(result.baseline) };
  }
}

export function versionText(ref) {
  return ref ? ref.version : '—';
}

export function versionTitle(ref) {
  return ref ? `${ref.model} ${ref.version} (${ref.profile}) sha256 ${ref.sha256}` : 'nothing installed before';
}
