import { h } from './dom.js';
import { DECISION_TITLES, msText, profileOrder, ratioText } from './models-format.js';
import { relativeTime } from './time-format.js';

const HEADS = ['Device', 'Class', 'Profile', 'Decided by', 'Reason', 'Candidates', 'Benchmark'];

function candidateItem(c) {
  const measured = c.measuredP50Ms === null ? '' : ` · p50 ${msText(c.measuredP50Ms)} on this ${c.measuredOn ?? 'device'}`;
  const hub = c.hubLatencyRatio === null ? '' : ` · hub ${ratioText(c.hubLatencyRatio)}`;
  return h('li', { 'data-candidate': c.profile, 'data-eligible': String(c.eligible) },
    h('span', { class: 'mono' }, c.profile), c.eligible ? '' : h('span', { class: 'muted' }, ' (left out)'),
    h('span', { class: 'muted' }, `${measured}${hub} · ${c.note}`));
}

function candidatesCell(plan) {
  const sorted = [...plan.candidates].sort((a, b) => profileOrder(a.profile, b.profile));
  if (sorted.length === 0) return h('td', { class: 'muted' }, '—');
  return h('td', { class: 'small' }, h('details', { class: 'notes' },
    h('summary', { class: 'muted' }, `${sorted.filter((c) => c.eligible).length} of ${sorted.length} eligible`),
    h('ul', {}, sorted.map(candidateItem))));
}

function benchmarkCell(plan, status, online) {
  const busy = status?.busy ?? false;
  return h('td', { class: 'benchmark small' },
    h('button', {
      type: 'button', class: 'button', 'data-action': 'benchmark', 'data-device-id': plan.deviceId, disabled: busy,
      title: online === false ? 'the device is offline: the hub will refuse (409)' : 'ask the device to measure every accepted variant',
    }, busy ? 'Asking…' : 'Benchmark'),
    status?.error ? h('p', { class: 'error', role: 'alert', 'data-benchmark-error': true }, status.error) : null,
    status?.message ? h('p', { class: 'muted', 'data-benchmark-sent': true }, status.message) : null);
}

/**
 * Owns the plans <table>: one row per device planned for the version, what it gets and why, and a
 * benchmark button per device. Clicks are delegated, so a redraw never loses one.
 */
export function createPlansTable(table, { deviceName, deviceOnline, onBenchmark }) {
  table.replaceChildren(h('thead', {}, h('tr', {}, HEADS.map((t) => h('th', {}, t)))), h('tbody', {}));
  const body = table.tBodies[0];
  table.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action="benchmark"]');
    if (button && !button.disabled) onBenchmark(button.dataset.deviceId);
  });

  /** plans: DevicePlan[]; statuses: Map deviceId → {busy, error, message}. */
  function render(plans, statuses, emptyText) {
    const now = Date.now();
    const sorted = [...plans].sort((a, b) => deviceName(a.deviceId).localeCompare(deviceName(b.deviceId)) || a.deviceId.localeCompare(b.deviceId));
    if (sorted.length === 0) {
      body.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: HEADS.length }, emptyText)));
      return;
    }
    body.replaceChildren(...sorted.map((p) => h('tr', { 'data-device-id': p.deviceId, 'data-profile': p.profile, 'data-decided-by': p.decidedBy },
      h('td', {}, h('div', { class: 'name' }, deviceName(p.deviceId)), h('div', { class: 'mono muted small' }, p.deviceId)),
      h('td', { class: 'small' }, p.deviceClass),
      h('td', { class: 'mono', 'data-field': 'profile' }, p.profile),
      h('td', {}, h('span', { class: `badge decided-${p.decidedBy}`, title: DECISION_TITLES[p.decidedBy] ?? null }, p.decidedBy)),
      h('td', { class: 'plan-reason small' }, p.reason, h('div', { class: 'muted', title: p.plannedAt }, `planned ${relativeTime(p.plannedAt, now)}`)),
      candidatesCell(p),
      benchmarkCell(p, statuses.get(p.deviceId), deviceOnline(p.deviceId)))));
  }

  return { render };
}
