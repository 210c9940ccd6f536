import { h } from './dom.js';
import { relativeTime, toMs } from './time-format.js';

/** Bar order: done first, then in-flight phases, then failures. */
const STATE_ORDER = ['active', 'health-check', 'loading', 'verifying', 'downloading', 'pending', 'failed', 'removed'];
const SHOWN = 8;

function countsFromWaves(rollout) {
  const counts = {};
  for (const wave of rollout.waves ?? []) for (const d of wave.devices ?? []) counts[d.state] = (counts[d.state] ?? 0) + 1;
  return counts;
}

function countsOf(rollout) {
  return rollout.counts && Object.keys(rollout.counts).length > 0 ? rollout.counts : countsFromWaves(rollout);
}

function targetText(target) {
  if (!target) return '';
  if (target.all) return 'all devices';
  if (target.labels) return Object.entries(target.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  if (target.deviceIds) return `${target.deviceIds.length} device${target.deviceIds.length === 1 ? '' : 's'}`;
  return '';
}

function stateBar(counts) {
  const states = [...STATE_ORDER, ...Object.keys(counts).filter((s) => !STATE_ORDER.includes(s))];
  const total = states.reduce((n, s) => n + (counts[s] ?? 0), 0);
  const present = states.filter((s) => (counts[s] ?? 0) > 0);
  const bar = h('div', { class: 'bar', 'data-total': total, role: 'img', 'aria-label': present.map((s) => `${counts[s]} ${s}`).join(', ') },
    present.map((s) => h('span', { class: 'seg', 'data-phase': s, 'data-count': counts[s], style: `flex-grow:${counts[s]}`, title: `${counts[s]} ${s}` })));
  const legend = h('div', { class: 'legend small' },
    total === 0 ? h('span', { class: 'muted' }, 'no devices targeted') :
      present.map((s) => h('span', { 'data-phase': s }, h('i', { class: 'dot', 'data-phase': s }), `${counts[s]} ${s}`)));
  return [bar, legend];
}

function failures(rollout, deviceName) {
  const failed = (rollout.waves ?? []).flatMap((w) => w.devices ?? []).filter((d) => d.state === 'failed' && d.error);
  if (failed.length === 0) return null;
  return h('ul', { class: 'failures small' },
    failed.slice(0, 3).map((d) => h('li', { 'data-device-id': d.deviceId }, h('b', {}, deviceName(d.deviceId)), `: ${d.error}`)),
    failed.length > 3 ? h('li', { class: 'muted' }, `and ${failed.length - 3} more`) : null);
}

function buildItem(r, deviceName, now) {
  return h('li', { class: 'rollout', 'data-rollout-id': r.id, 'data-state': r.state ?? 'in-progress' },
    h('div', { class: 'rollout-head' },
      h('span', { class: 'model' }, r.model ?? '?', ' ', h('b', {}, r.version ?? '')),
      h('span', { class: `badge state-${r.state ?? 'in-progress'}` }, r.state ?? 'in-progress')),
    h('div', { class: 'muted small' }, [targetText(r.target), relativeTime(r.createdAt, now)].filter(Boolean).join(' · ')),
    stateBar(countsOf(r)),
    failures(r, deviceName));
}

/** Owns #rollouts: recent rollouts, newest first, each with a stacked bar of per-device states. */
export function createRolloutsPanel(list, deviceName) {
  const rollouts = new Map();

  function render() {
    const now = Date.now();
    const recent = [...rollouts.values()].sort((a, b) => (toMs(b.createdAt) ?? 0) - (toMs(a.createdAt) ?? 0)).slice(0, SHOWN);
    if (recent.length === 0) {
      list.replaceChildren(h('li', { class: 'empty muted' }, 'No rollouts yet.'));
      return;
    }
    list.replaceChildren(...recent.map((r) => buildItem(r, deviceName, now)));
  }

  function setAll(all) {
    rollouts.clear();
    for (const r of all) rollouts.set(r.id, r);
    render();
  }

  /**
   * Applies a whole Rollout, a partial {id|rolloutId, state?, counts?}, or one device's progress
   * {rolloutId, deviceId, state, progress?, error?}. Returns false when the rollout is unknown and the
   * payload is not a whole one, so the caller can refetch the list.
   */
  /** Applies the hub's `rollout` event {rolloutId, state, counts, deviceId?, deviceState?}; false if unknown. */
  function apply(payload) {
    const r = rollouts.get(payload.rolloutId);
    if (!r) return false;
    if (payload.deviceId && payload.deviceState) {
      const devices = (r.waves ?? []).flatMap((w) => w.devices ?? []);
      const d = devices.find((x) => x.deviceId === payload.deviceId);
      if (d) d.state = payload.deviceState;
    }
    r.state = payload.state;
    r.counts = payload.counts ?? countsFromWaves(r);
    render();
    return true;
  }

  return { setAll, apply, render };
}
