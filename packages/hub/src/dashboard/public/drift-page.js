import { AuthRequired } from './api-client.js';
import { h } from './dom.js';
import { createDriftChart } from './drift-chart.js';
import { baselineText, clockText, isDrifting, scoreText, sortAlerts, sortDevices, sortOverview } from './drift-format.js';
import { driftHref } from './page-route.js';
import { createThrottle } from './throttle.js';
import { relativeTime } from './time-format.js';

/** A burst of `drift` events (one per device and window, then the fleet's) costs one refetch per this interval. */
const REFETCH_MS = 500;
/** Fleet evaluations the chart shows. */
const HISTORY = 60;

const viewPath = (model, version) => `/drift/${encodeURIComponent(model)}/${encodeURIComponent(version)}`;

/**
 * The drift page: every tracked model version (drifting ones first and marked), and for the chosen
 * one (from the URL hash, else the first listed) its baseline, the fleet's per-feature scores over
 * the evaluation windows, each device's latest evaluation and the alerts. `drift` events refetch
 * what is shown; an answer for a version no longer on screen is dropped.
 */
export function createDriftPage(els, { api, deviceName, onAuthLost }) {
  const chart = createDriftChart(els.chart);
  let visible = false;
  let route = { model: null, version: null };
  let overview = [];
  let view = null; // DriftModelView on screen
  let chosen = null; // {model, version} being shown
  let loads = 0;

  const isChosen = (m, v) => chosen !== null && chosen.model === m && chosen.version === v;

  function fail(err, what) {
    if (err instanceof AuthRequired) onAuthLost();
    else els.error.textContent = `${what}: ${err.message}`;
  }

  function renderOverview() {
    if (overview.length === 0) {
      els.list.replaceChildren(h('li', { class: 'muted' }, 'No model version has a drift baseline yet: upload reference or calibration data.'));
      return;
    }
    els.list.replaceChildren(...overview.map((r) => {
      const drifting = isDrifting(r);
      return h('li', { 'data-drift-model': r.model, 'data-drift-version': r.version, 'data-drifting': String(drifting) },
        h('a', { class: 'model-link drift-link', href: driftHref(r.model, r.version), 'aria-current': String(isChosen(r.model, r.version)) },
          h('span', { class: 'drift-name' },
            drifting ? h('span', { class: 'badge drift-over', title: 'drifting' }, 'drift') : h('span', { class: 'badge drift-ok' }, 'ok'),
            h('b', {}, r.model), ` ${r.version}`),
          h('span', { class: 'muted small' },
            `fleet ${scoreText(r.fleetScore)} · ${r.activeAlerts} alert${r.activeAlerts === 1 ? '' : 's'} · ${r.devicesOver} device${r.devicesOver === 1 ? '' : 's'} over`,
            r.lastEvaluatedAt ? ` · ${relativeTime(r.lastEvaluatedAt)}` : ' · not evaluated yet')));
    }));
  }

  function renderHead() {
    els.title.textContent = chosen ? `${chosen.model} ${chosen.version}` : '';
    if (!view) {
      els.info.replaceChildren();
      return;
    }
    const latest = view.fleet.at(-1);
    els.info.replaceChildren(
      h('div', { 'data-field': 'baseline' }, h('span', { class: 'muted' }, 'Baseline: '), baselineText(view.baseline) ?? 'none'),
      h('div', { 'data-field': 'fleet-score' }, h('span', { class: 'muted' }, 'Fleet score: '),
        latest ? `${scoreText(latest.score)} (${latest.samples} samples, window ending ${clockText(latest.windowEnd)})` : 'not evaluated yet'),
      h('div', { 'data-field': 'devices-over' }, h('span', { class: 'muted' }, 'Devices over: '),
        `${view.devicesOver} of ${view.devicesEvaluated} evaluated`, view.devices.length < view.devicesEvaluated ? ` (the ${view.devices.length} highest shown)` : ''),
      h('div', { 'data-field': 'pending' }, h('span', { class: 'muted' }, 'Samples waiting for a window: '), String(view.pendingSamples)));
  }

  function renderDevices() {
    const rows = view ? sortDevices(view.devices) : [];
    const head = h('thead', {}, h('tr', {},
      h('th', {}, 'Device'), h('th', { class: 'num' }, 'Score'), h('th', {}, 'State'), h('th', { class: 'num' }, 'Samples'),
      h('th', {}, 'Window end'), h('th', {}, 'Drifted features')));
    const body = rows.length === 0
      ? [h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'No device evaluated yet.'))]
      : rows.map((r) => h('tr', { 'data-device-id': r.deviceId, 'data-over': String(r.over) },
        h('td', { class: 'mono' }, deviceName(r.deviceId)),
        h('td', { class: 'num', 'data-field': 'score' }, scoreText(r.score)),
        h('td', {}, h('span', { class: `badge ${r.over ? 'drift-over' : 'drift-ok'}` }, r.over ? 'over' : 'ok')),
        h('td', { class: 'num' }, String(r.samples)),
        h('td', {}, clockText(r.windowEnd)),
        h('td', { 'data-field': 'drifted' }, r.drifted.length ? r.drifted.join(', ') : h('span', { class: 'muted' }, 'none'))));
    els.devices.replaceChildren(head, h('tbody', {}, ...body));
  }

  function renderAlerts() {
    const alerts = view ? sortAlerts(view.alerts) : [];
    if (alerts.length === 0) {
      els.alerts.replaceChildren(h('li', { class: 'muted' }, 'No alerts: an alert is raised after two consecutive windows over the threshold.'));
      return;
    }
    els.alerts.replaceChildren(...alerts.map((a) => h('li', { class: `drift-alert ${a.state}`, 'data-alert-id': a.id, 'data-alert-state': a.state, 'data-alert-scope': a.deviceId ? 'device' : 'fleet', 'data-alert-device': a.deviceId },
      h('div', { class: 'rollout-head' },
        h('span', {}, h('span', { class: `badge ${a.state === 'active' ? 'drift-over' : 'drift-ok'}` }, a.state), ' ',
          h('b', {}, `${a.model} ${a.version}`), ' ', h('span', { class: 'muted small' }, a.deviceId ? `device ${deviceName(a.deviceId)}` : 'fleet')),
        h('span', { class: 'muted small' }, `raised ${clockText(a.raisedAt)}`, a.clearedAt ? ` · cleared ${clockText(a.clearedAt)}` : '')),
      h('div', { 'data-field': 'devices' }, h('span', { class: 'muted' }, 'Devices: '),
        a.devices.length ? a.devices.map((id) => h('span', { class: 'chip', 'data-device-id': id }, deviceName(id))) : 'none'),
      h('div', { 'data-field': 'features' }, h('span', { class: 'muted' }, 'Features: '),
        a.features.map((f) => h('span', { class: 'chip', 'data-feature': f.name, title: `PSI ${f.psi.toFixed(3)}` }, `${f.name} ${scoreText(f.score)}`))),
      h('div', { class: 'small', 'data-field': 'message' }, a.message))));
  }

  function renderView() {
    renderHead();
    renderDevices();
    renderAlerts();
    if (view && view.fleet.length > 0) chart.render(view.fleet);
    else chart.clear();
  }

  async function loadView(m, v) {
    try {
      const next = await api(`${viewPath(m, v)}?limit=${HISTORY}`);
      if (!visible || !isChosen(m, v)) return;
      view = next;
      renderView();
      els.error.textContent = '';
    } catch (err) {
      if (isChosen(m, v)) fail(err, `Could not load drift of ${m} ${v}`);
    }
  }

  /** Loads the overview, picks the routed (or first) version, then its view. Only the latest call paints. */
  async function load() {
    const seq = ++loads;
    try {
      const rows = await api('/drift');
      if (seq !== loads || !visible) return;
      overview = sortOverview(rows);
      // A routed version not in the overview yet (never evaluated) is still asked for: its view says what it has.
      // Without a route the version on screen stays while it is listed: a refetch that reorders the list does not swap it.
      const kept = !route.model && chosen ? overview.find((r) => isChosen(r.model, r.version)) : null;
      const pick = route.model && route.version ? route
        : kept ?? (route.model ? overview.find((r) => r.model === route.model) : null) ?? overview[0] ?? null;
      const next = pick ? { model: pick.model, version: pick.version } : null;
      if (!next || !isChosen(next.model, next.version)) view = null;
      chosen = next;
      renderOverview();
      renderView();
      if (chosen) await loadView(chosen.model, chosen.version);
    } catch (err) {
      if (seq === loads) fail(err, 'Could not load drift');
    }
  }

  const refetch = createThrottle(load, REFETCH_MS);

  return {
    /** Shows the page for a route {model, version} from the hash. */
    async show(next) {
      visible = true;
      route = next;
      await load();
    },
    hide() {
      visible = false;
      refetch.cancel();
    },
    /** After a reconnect of the event stream or while it is down: refetches in place. */
    async refresh() {
      if (visible) refetch.request();
    },
    /** A `drift` event {model, version, deviceId, score, over, alert?}: the overview and the view refetch. */
    onDrift() {
      if (visible) refetch.request();
    },
  };
}
