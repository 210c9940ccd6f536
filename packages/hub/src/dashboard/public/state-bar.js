import { h } from './dom.js';

/** Bar order: switched first, then in-flight phases, then waiting, then the ways out of a rollout. */
const STATE_ORDER = [
  'active', 'shadow', 'health-check', 'loading', 'verifying', 'downloading', 'assigned', 'ready', 'deferred', 'retrying',
  'waiting', 'pending', 'timed-out', 'rolling-back', 'rolled-back', 'failed', 'cancelled', 'superseded', 'removed',
];

/** A stacked bar of device counts by state, with its legend: [bar, legend]. */
export function stateBar(counts = {}, { legend = true } = {}) {
  const states = [...STATE_ORDER, ...Object.keys(counts).filter((s) => !STATE_ORDER.includes(s))];
  const present = states.filter((s) => (counts[s] ?? 0) > 0);
  const total = present.reduce((n, s) => n + counts[s], 0);
  const bar = h('div', { class: 'bar', 'data-total': total, role: 'img', 'aria-label': present.map((s) => `${counts[s]} ${s}`).join(', ') || 'no devices' },
    present.map((s) => h('span', { class: 'seg', 'data-phase': s, 'data-count': counts[s], style: `flex-grow:${counts[s]}`, title: `${counts[s]} ${s}` })));
  if (!legend) return [bar];
  const key = h('div', { class: 'legend small' },
    total === 0 ? h('span', { class: 'muted' }, 'no devices yet') :
      present.map((s) => h('span', { 'data-phase': s }, h('i', { class: 'dot', 'data-phase': s }), `${counts[s]} ${s}`)));
  return [bar, key];
}
