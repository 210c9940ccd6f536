import { h } from './dom.js';
import { relativeTime } from './time-format.js';

const DASH = '—';

function byName(a, b) {
  return (a.name || a.id).localeCompare(b.name || b.id) || a.id.localeCompare(b.id);
}

function meter(value, max, text, warnAt) {
  const pct = max > 0 ? Math.min(100, Math.max(0, (value / max) * 100)) : 0;
  const level = pct >= warnAt ? 'high' : 'normal';
  return h('span', { class: 'meter', 'data-level': level },
    h('span', { class: 'meter-text' }, text),
    h('span', { class: 'meter-bar' }, h('span', { class: 'meter-fill', style: `width:${pct.toFixed(1)}%` })));
}

function formatMb(mb) {
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`;
}

function presenceBadge(device) {
  const online = Boolean(device.online);
  return h('span', { class: `badge ${online ? 'online' : 'offline'}`, 'data-presence': online ? 'online' : 'offline' },
    online ? 'online' : 'offline');
}

function activeModels(device) {
  const active = (device.models ?? []).filter((m) => m.active);
  if (active.length === 0) return DASH;
  return active.map((m) => h('span', { class: 'model', 'data-model': m.name, 'data-version': m.version, title: m.sha256 ?? '' },
    m.name, ' ', h('b', {}, m.version), m.profile ? h('span', { class: 'muted small' }, ` ${m.profile}`) : null));
}

function labelChips(labels) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return h('span', { class: 'muted' }, DASH);
  return entries.map(([k, v]) => h('span', { class: 'chip', 'data-label': k }, `${k}=${v}`));
}

function buildRow(d, now) {
  const sys = d.telemetry?.system ?? null;
  const online = Boolean(d.online);
  return h('tr', { 'data-device-id': d.id, 'data-online': String(online), class: online ? null : 'is-offline' },
    h('td', { 'data-field': 'name' },
      h('div', { class: 'name' }, d.name || d.id, d.revoked ? h('span', { class: 'badge revoked', 'data-revoked': true }, 'revoked') : null),
      h('div', { class: 'mono muted small' }, d.id),
      // The hub could not show part of this device's stored state; the text says which part and why.
      d.error ? h('div', { class: 'device-error small', 'data-error': true, title: d.error }, d.error) : null),
    h('td', { 'data-field': 'presence' }, presenceBadge(d)),
    h('td', { 'data-field': 'last-seen', title: d.lastSeen ?? '' }, relativeTime(d.lastSeen, now)),
    h('td', { 'data-field': 'cpu', class: 'num' },
      sys ? meter(sys.cpuPercent, 100, `${sys.cpuPercent.toFixed(0)}%`, 85) : DASH),
    h('td', { 'data-field': 'memory', class: 'num' },
      sys ? meter(sys.memUsedMb, sys.memTotalMb, `${formatMb(sys.memUsedMb)} / ${formatMb(sys.memTotalMb)}`, 90) : DASH),
    h('td', { 'data-field': 'temperature', class: 'num' },
      sys && typeof sys.temperatureC === 'number' ? `${sys.temperatureC.toFixed(1)} °C` : DASH),
    h('td', { 'data-field': 'model' }, activeModels(d)),
    h('td', { 'data-field': 'labels' }, labelChips(d.labels)));
}

/** Owns #device-rows: one <tr data-device-id> per device, sorted by name. */
export function createDevicesTable(tbody) {
  const rows = new Map();

  function sync(devices) {
    const now = Date.now();
    rows.clear();
    const sorted = [...devices].sort(byName);
    if (sorted.length === 0) {
      tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 8 }, 'No devices enrolled yet.')));
      return;
    }
    tbody.replaceChildren(...sorted.map((d) => {
      const row = buildRow(d, now);
      rows.set(d.id, row);
      return row;
    }));
  }

  /** Re-renders one row in place; false when the device has no row yet (caller re-syncs). */
  function update(device) {
    const old = rows.get(device.id);
    if (!old) return false;
    const row = buildRow(device, Date.now());
    old.replaceWith(row);
    rows.set(device.id, row);
    return true;
  }

  function tick(devices) {
    const now = Date.now();
    for (const d of devices) {
      const cell = rows.get(d.id)?.querySelector('[data-field="last-seen"]');
      if (cell) cell.textContent = relativeTime(d.lastSeen, now);
    }
  }

  return { sync, update, tick };
}
