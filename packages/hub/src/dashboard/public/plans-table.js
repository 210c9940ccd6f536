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

/**
 * The benchmark cell of a row, kept for the row's life: redraws update its button in place, so a
 * click whose mousedown and mouseup straddle a redraw (a `plan` or `device` event) still lands.
 */
function createBenchmarkCell(deviceId) {
  const button = h('button', { type: 'button', class: 'button', 'data-action': 'benchmark', 'data-device-id': deviceId });
  const notes = h('div', {});
  const cell = h('td', { class: 'benchmark small' }, button, notes);
  let shown = null;
  function update(status, online) {
    const busy = status?.busy ?? false;
    button.disabled = busy;
    button.textContent = busy ? 'Asking…' : 'Benchmark';
    button.title = online === false ? 'the device is offline: the hub will refuse (409)' : 'ask the device to measure every accepted variant';
    // The answer's line is rebuilt only when the answer changed.
    if (shown === status) return;
    shown = status;
    notes.replaceChildren(
      status?.error ? h('p', { class: 'error', role: 'alert', 'data-benchmark-error': true }, status.error) : '',
      status?.message ? h('p', { class: 'muted', 'data-benchmark-sent': true }, status.message) : '');
  }
  return { cell, update };
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

  const rows = new Map(); // deviceId → {tr, bench}: rows live as long as their device is planned

  function planCells(p, now) {
    return [
      h('td', {}, h('div', { class: 'name' }, deviceName(p.deviceId)), h('div', { class: 'mono muted small' }, p.deviceId)),
      h('td', { class: 'small' }, p.deviceClass),
      h('td', { class: 'mono', 'data-field': 'profile' }, p.profile),
      h('td', {}, h('span', { class: `badge decided-${p.decidedBy}`, title: DECISION_TITLES[p.decidedBy] ?? null }, p.decidedBy)),
      h('td', { class: 'plan-reason small' }, p.reason, h('div', { class: 'muted', title: p.plannedAt }, `planned ${relativeTime(p.plannedAt, now)}`)),
      candidatesCell(p),
    ];
  }

  /** Updates a device's row in place: the plan's cells are redrawn, the benchmark cell is kept. */
  function rowFor(p, status, online, now) {
    let row = rows.get(p.deviceId);
    if (!row) {
      const bench = createBenchmarkCell(p.deviceId);
      row = { tr: h('tr', { 'data-device-id': p.deviceId }, bench.cell), bench };
      rows.set(p.deviceId, row);
    }
    row.tr.dataset.profile = p.profile;
    row.tr.dataset.decidedBy = p.decidedBy;
    while (row.tr.firstElementChild !== row.bench.cell) row.tr.firstElementChild.remove();
    row.bench.cell.before(...planCells(p, now));
    row.bench.update(status, online);
    return row.tr;
  }

  /**
   * plans: DevicePlan[]; statuses: Map deviceId → {busy, error, message}. Rows are keyed by device
   * and moved only when the order changes: rebuilding the body on every event would swap the button
   * under a click in progress.
   */
  function render(plans, statuses, emptyText) {
    const now = Date.now();
    const sorted = [...plans].sort((a, b) => deviceName(a.deviceId).localeCompare(deviceName(b.deviceId)) || a.deviceId.localeCompare(b.deviceId));
    const planned = new Set(sorted.map((p) => p.deviceId));
    for (const id of [...rows.keys()]) if (!planned.has(id)) rows.delete(id);
    if (sorted.length === 0) {
      body.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: HEADS.length }, emptyText)));
      return;
    }
    const trs = sorted.map((p) => rowFor(p, statuses.get(p.deviceId), deviceOnline(p.deviceId), now));
    for (const el of [...body.children]) if (!trs.includes(el)) el.remove();
    trs.forEach((tr, i) => {
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] ?? null);
    });
  }

  return { render };
}
