import { h } from './dom.js';
import {
  ACTION_LABELS, ACTIONS, actionApplies, countdownText, gateNumbers, plural, progressOf, targetText, versionText, versionTitle, waveSizeText,
} from './rollout-format.js';
import { stateBar } from './state-bar.js';
import { relativeTime, toMs } from './time-format.js';

const DASH = '—';
const REASON_TITLES = { halted: 'Halted', 'rolling-back': 'Rolling back', 'rolled-back': 'Rolled back', aborted: 'Aborted', paused: 'Paused' };

function durationText(sec) {
  if (sec % 3600 === 0 && sec >= 3600) return `${sec / 3600}h`;
  if (sec % 60 === 0 && sec >= 60) return `${sec / 60}m`;
  return `${sec}s`;
}

function settingsText(r) {
  const s = r.settings;
  if (!s) return '';
  const parts = [
    s.autoRollback ? 'auto-rollback on' : 'halts without rolling back',
    `${s.maxConcurrentDownloads} downloading at once`,
    `device timeout ${durationText(s.deviceTimeoutSec)}`,
  ];
  if (s.maintenanceWindow) {
    const open = r.windowOpenUntil ? ` (open until ${new Date(r.windowOpenUntil).toLocaleTimeString()})` : ' (closed)';
    parts.push(`window "${s.maintenanceWindow.cron}" for ${s.maintenanceWindow.durationMinutes} min${open}`);
  }
  if (s.shadow) parts.push(`shadow on ${Math.round(s.shadow.sampleRate * 100)}% of requests`);
  if (s.healthWindow) parts.push(`health window ${durationText(s.healthWindow.durationSec)}`);
  parts.push(`locks may defer ${durationText(s.maxDeferSec)}`);
  return parts.join(' · ');
}

function reasonBox(r) {
  if (!r.reason) return null;
  const { wave, gate, message, at } = r.reason;
  return h('div', { class: 'reason', role: 'status', 'data-reason': gate ?? 'operator' },
    h('b', {}, REASON_TITLES[r.state] ?? 'Stopped'), ` at wave ${wave + 1}`, gate ? ` by the ${gate} gate` : '', ': ',
    message, h('span', { class: 'muted small' }, ` · ${relativeTime(at)}`));
}

function bakeText(wave, now) {
  if (wave.state !== 'baking' || !wave.bakeUntil) {
    return wave.spec.bakeSec ? h('span', { class: 'muted small' }, `bake ${durationText(wave.spec.bakeSec)}`) : null;
  }
  const until = toMs(wave.bakeUntil);
  return h('span', { class: 'bake small', 'data-bake-until': until }, bakeCountdown(until, now));
}

function bakeCountdown(until, now) {
  const left = countdownText(until, now);
  return left === null ? 'bake over, judging gates…' : `baking, ${left} left`;
}

function gateTable(gates) {
  if (gates.length === 0) return h('p', { class: 'muted small gates-none' }, 'No gate judged yet.');
  return h('table', { class: 'gates small' },
    h('thead', {}, h('tr', {}, ['Gate', 'Result', 'Observed', 'Threshold', 'Baseline', 'Why'].map((t) => h('th', {}, t)))),
    h('tbody', {}, gates.map((g) => {
      const n = gateNumbers(g);
      return h('tr', { 'data-gate': g.gate, 'data-gate-status': g.status },
        h('td', {}, g.gate),
        h('td', {}, h('span', { class: `badge gate-${g.status}` }, g.status)),
        h('td', { class: 'num' }, n.observed),
        h('td', { class: 'num' }, n.threshold),
        h('td', { class: 'num' }, n.baseline),
        h('td', { class: 'gate-message' }, g.message));
    })));
}

function waveItem(wave, now) {
  const { active, total } = progressOf(wave.counts);
  return h('li', { class: 'wave', 'data-wave-index': wave.index, 'data-wave-state': wave.state },
    h('div', { class: 'wave-head' },
      h('b', {}, `Wave ${wave.index + 1}`),
      h('span', { class: 'muted small' }, `up to ${waveSizeText(wave.spec.size)} · ${plural(total, 'device')} · ${active} active`),
      h('span', { class: `badge wave-${wave.state}` }, wave.state),
      bakeText(wave, now)),
    stateBar(wave.counts),
    gateTable(wave.gates ?? []));
}

function progressCell(progress) {
  if (progress === null || progress === undefined) return DASH;
  const pct = Math.round(Math.min(1, Math.max(0, progress)) * 100);
  return h('span', { class: 'meter' },
    h('span', { class: 'meter-text' }, `${pct}%`),
    h('span', { class: 'meter-bar' }, h('span', { class: 'meter-fill', style: `width:${pct}%` })));
}

function shadowCell(shadow) {
  if (!shadow) return DASH;
  return h('span', { title: `max abs diff ${shadow.maxAbsDiff}; p50 ${shadow.candidateP50Ms} ms vs ${shadow.activeP50Ms} ms` },
    `${(shadow.agreement * 100).toFixed(1)}% of ${shadow.samples}`);
}

function deviceTable(r, deviceName, now) {
  const rows = (r.waves ?? []).flatMap((w) => w.devices ?? [])
    .sort((a, b) => a.wave - b.wave || deviceName(a.deviceId).localeCompare(deviceName(b.deviceId)));
  if (rows.length === 0) return h('p', { class: 'muted' }, 'No devices in this rollout.');
  const withShadow = Boolean(r.settings?.shadow) || rows.some((d) => d.shadow);
  const heads = ['Device', 'Wave', 'State', 'Progress', 'Version', ...(withShadow ? ['Shadow agreement'] : []), 'Updated', 'Error'];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'rollout-devices' },
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((d) => h('tr', { 'data-device-id': d.deviceId, 'data-device-state': d.state },
      h('td', {}, h('div', { class: 'name' }, deviceName(d.deviceId)), h('div', { class: 'mono muted small' }, d.deviceId)),
      h('td', {}, String(d.wave + 1)),
      h('td', {}, h('span', { class: 'badge device-state', 'data-phase': d.state }, d.state)),
      h('td', {}, progressCell(d.progress)),
      h('td', { class: 'versions' },
        h('span', { title: versionTitle(d.from) }, versionText(d.from)), ' → ', h('b', { title: versionTitle(d.to) }, versionText(d.to))),
      withShadow ? h('td', {}, shadowCell(d.shadow)) : null,
      h('td', { class: 'small', title: d.updatedAt }, relativeTime(d.updatedAt, now)),
      h('td', { class: 'device-error small', 'data-error': d.error ? true : null }, d.error ?? '')))),
  ));
}

/**
 * Owns the selected rollout's card: header, stop reason, actions, waves with their gates, devices.
 * The action buttons are made once and only enabled or disabled, so a live redraw never swaps a
 * button out from under a click; the rest redraws whole (a few hundred rows take a frame), and
 * tick() only moves the bake countdowns.
 */
export function createRolloutDetail(card, { deviceName, onAction }) {
  const summary = h('div', {});
  const buttons = ACTIONS.map((action) => {
    const button = h('button', { type: 'button', class: `action action-${action}`, 'data-action': action, disabled: true }, ACTION_LABELS[action]);
    button.addEventListener('click', () => onAction(action));
    return button;
  });
  const actions = h('div', { class: 'actions' }, buttons);
  const actionError = h('p', { class: 'error', role: 'alert', 'data-action-error': true });
  const body = h('div', {});
  const parts = [summary, actions, actionError, body];

  function clear(message = '') {
    card.hidden = message === '';
    card.removeAttribute('data-rollout-id');
    card.removeAttribute('data-rollout-state');
    card.replaceChildren(h('p', { class: 'muted' }, message));
  }

  function render(r, { busy = false, error = null } = {}) {
    const now = Date.now();
    card.hidden = false;
    card.dataset.rolloutId = r.id;
    card.dataset.rolloutState = r.state;
    if (card.firstChild !== summary) card.replaceChildren(...parts);
    summary.replaceChildren(...[
      h('div', { class: 'rollout-head' },
        h('h2', {}, 'Rollout ', h('span', { class: 'model' }, r.model, ' ', h('b', {}, r.version))),
        h('span', { class: `badge state-${r.state}`, 'data-field': 'state' }, r.state)),
      h('div', { class: 'muted small' }, `${targetText(r.target)} · started ${relativeTime(r.createdAt, now)} · `, h('span', { class: 'mono' }, r.id)),
      reasonBox(r),
    ].filter(Boolean));
    actions.dataset.busy = String(busy);
    for (const button of buttons) button.disabled = busy || !actionApplies(button.dataset.action, r.state);
    actionError.textContent = error ?? '';
    actionError.hidden = !error;
    body.replaceChildren(
      h('div', { class: 'muted small settings' }, settingsText(r)),
      h('h3', {}, 'Waves'),
      h('ol', { class: 'waves' }, (r.waves ?? []).map((w) => waveItem(w, now))),
      h('h3', {}, 'Devices'),
      deviceTable(r, deviceName, now));
  }

  /** Moves the bake countdowns; true when a bake has ended but the page still shows it baking. */
  function tick(now = Date.now()) {
    let overdue = false;
    for (const el of card.querySelectorAll('[data-bake-until]')) {
      const until = Number(el.dataset.bakeUntil);
      el.textContent = bakeCountdown(until, now);
      if (until <= now) overdue = true;
    }
    return overdue;
  }

  return { render, clear, tick };
}
