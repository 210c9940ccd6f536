import { api, AuthRequired, EVENTS_URL } from './api-client.js';
import { createCpuChart, MAX_SERIES } from './cpu-chart.js';
import { createDevicesTable } from './devices-table.js';
import { createDriftPage } from './drift-page.js';
import { connectEvents } from './event-stream.js';
import { createModelsPage } from './models-page.js';
import { driftRoute, modelsRoute } from './page-route.js';
import { createRolloutsPage } from './rollouts-page.js';

const HISTORY_LIMIT = 60;
const POLL_MS = 15000; // only while the event stream is down
const TICK_MS = 5000;
const COUNTDOWN_MS = 1000;

const $ = (id) => document.getElementById(id);
const devices = new Map();
const table = createDevicesTable($('device-rows'));
const chart = createCpuChart($('cpu-chart'), $('cpu-caption'));
const rollouts = createRolloutsPage(
  { list: $('rollouts'), detail: $('rollout-detail'), form: $('start-rollout'), newButton: $('new-rollout'), error: $('rollouts-error') },
  {
    api,
    deviceName: (id) => devices.get(id)?.name || id,
    devices: () => [...devices.values()],
    onAuthLost: () => showLogin('Your session has ended; sign in again.'),
  },
);
const models = createModelsPage(
  {
    list: $('model-list'), version: $('model-version'), title: $('model-title'), info: $('model-info'), build: $('variant-build'),
    buildButton: $('build-variants'), buildError: $('build-error'), variants: $('variants'), chart: $('variants-chart'),
    plans: $('plans'), plansError: $('plans-error'), error: $('models-error'),
  },
  {
    api,
    deviceName: (id) => devices.get(id)?.name || id,
    deviceOnline: (id) => devices.get(id)?.online,
    onAuthLost: () => showLogin('Your session has ended; sign in again.'),
  },
);
const drift = createDriftPage(
  {
    list: $('drift-list'), title: $('drift-title'), info: $('drift-info'), chart: $('drift-chart'),
    devices: $('drift-devices'), alerts: $('drift-alerts'), error: $('drift-error'),
  },
  { api, deviceName: (id) => devices.get(id)?.name || id, onAuthLost: () => showLogin('Your session has ended; sign in again.') },
);
let events = null;
let streamState = 'idle';
let signedIn = false;
/** The fleet page's last hash (a selected rollout), so the "Fleet" link returns to it. */
let fleetHash = '';
let refetchTimer = null;

function showLogin(message = '') {
  signedIn = false;
  events?.close();
  events = null;
  // Hidden, so signing in again shows the models page afresh (show() reloads a page that was hidden).
  models.hide();
  drift.hide();
  $('dashboard').hidden = true;
  $('fleet-summary').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('token-input').focus();
}

function showDashboard() {
  signedIn = true;
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('fleet-summary').hidden = false;
  $('page-nav').hidden = false;
  showPage();
}

/** Shows the page the hash names: the models page for #models…, the fleet page otherwise. */
function showPage() {
  const route = modelsRoute(location.hash);
  const driftAt = driftRoute(location.hash);
  if (!route && !driftAt) fleetHash = location.hash;
  $('fleet-page').hidden = route !== null || driftAt !== null;
  $('models-page').hidden = route === null;
  $('drift-page').hidden = driftAt === null;
  const fleetLink = document.querySelector('[data-nav="fleet"]');
  fleetLink.href = fleetHash || '#';
  fleetLink.setAttribute('aria-current', String(route === null && driftAt === null));
  document.querySelector('[data-nav="models"]').setAttribute('aria-current', String(route !== null));
  document.querySelector('[data-nav="drift"]').setAttribute('aria-current', String(driftAt !== null));
  if (route === null) models.hide();
  else if (signedIn) void models.show(route);
  if (driftAt === null) drift.hide();
  else if (signedIn) void drift.show(driftAt);
}

function renderSummary() {
  const all = [...devices.values()];
  const online = all.filter((d) => d.online).length;
  const summary = $('fleet-summary');
  summary.querySelector('[data-count="total"]').textContent = String(all.length);
  summary.querySelector('[data-count="online"]').textContent = String(online);
  summary.querySelector('[data-count="offline"]').textContent = String(all.length - online);
}

function renderAll() {
  const all = [...devices.values()];
  table.sync(all);
  chart.setDevices(all);
  renderSummary();
}

/** Merges fields into a device and re-renders its row (the whole table when the row set or order changes). */
function mergeDevice(id, fields) {
  const existing = devices.get(id);
  const next = { models: [], labels: {}, ...existing, ...fields, id };
  devices.set(id, next);
  if (!existing || existing.name !== next.name) renderAll();
  else {
    table.update(next);
    renderSummary();
  }
  if (!existing && !fields.name) scheduleRefetch(); // a partial about a device we have never seen
}

async function loadDevices() {
  const { devices: list } = await api('/devices');
  devices.clear();
  for (const d of list) devices.set(d.id, d);
  renderAll();
  for (const d of list) if (d.telemetry) chart.add(d.id, d.telemetry.ts, d.telemetry.system?.cpuPercent);
}

async function fillHistory() {
  const first = [...devices.values()].sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id)).slice(0, MAX_SERIES);
  await Promise.all(first.map(async (d) => {
    try {
      const { points } = await api(`/devices/${encodeURIComponent(d.id)}/telemetry?limit=${HISTORY_LIMIT}`);
      for (const p of points) chart.add(d.id, p.ts, p.system?.cpuPercent);
    } catch (err) {
      if (err instanceof AuthRequired) throw err;
    }
  }));
}

/** `telemetry` event: {deviceId, seq, ts (ISO), system, models}. */
function onTelemetry(p) {
  mergeDevice(p.deviceId, { telemetry: { ts: p.ts, system: p.system, models: p.models }, lastSeen: p.ts });
  chart.add(p.deviceId, p.ts, p.system.cpuPercent);
}

/** `device` event: the whole device as the hub sees it now. */
function onDevice(device) {
  mergeDevice(device.id, device);
  models.devicesChanged();
}

function onEvent(kind, payload) {
  if (kind === 'device') onDevice(payload);
  else if (kind === 'telemetry') onTelemetry(payload);
  else if (kind === 'rollout') rollouts.onEvent(payload);
  else if (kind === 'variants') models.onVariants(payload);
  else if (kind === 'plan') models.onPlan(payload);
  else if (kind === 'drift') drift.onDrift(payload);
}

/** Refetches devices and rollouts soon, coalescing bursts (stream errors, unknown ids). */
function scheduleRefetch(delayMs = 500) {
  if (refetchTimer !== null) return;
  refetchTimer = setTimeout(async () => {
    refetchTimer = null;
    try {
      await Promise.all([loadDevices(), rollouts.refresh(), models.refresh(), drift.refresh()]);
      $('load-error').textContent = '';
    } catch (err) {
      if (err instanceof AuthRequired) showLogin('Your session has ended; sign in again.');
      else $('load-error').textContent = `Could not refresh: ${err.message}`;
    }
  }, delayMs);
}

function setStreamState(state) {
  streamState = state;
  const el = $('sse-status');
  el.dataset.state = state;
  el.textContent = { live: 'live', connecting: 'connecting…', down: 'disconnected', idle: 'idle' }[state] ?? state;
}

async function start() {
  await loadDevices();
  showDashboard();
  await Promise.all([rollouts.refresh(), fillHistory()]);
  if (!events) {
    events = connectEvents(EVENTS_URL, { onEvent, onStatus: setStreamState, onResync: () => scheduleRefetch(1000) });
  }
}

async function boot() {
  try {
    await start();
  } catch (err) {
    if (err instanceof AuthRequired) showLogin();
    else {
      showDashboard();
      $('load-error').textContent = `Could not load the fleet: ${err.message}`;
    }
  }
}

window.addEventListener('hashchange', () => {
  if (signedIn) showPage();
});

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('token-input');
  const button = e.currentTarget.querySelector('button');
  button.disabled = true;
  $('login-error').textContent = '';
  try {
    await api('/session', { method: 'POST', body: JSON.stringify({ token: input.value.trim() }) });
    input.value = '';
    await start();
  } catch (err) {
    $('login-error').textContent = err instanceof AuthRequired ? 'That token was not accepted.' : err.message;
  } finally {
    button.disabled = false;
  }
});

setInterval(() => {
  table.tick([...devices.values()]);
  rollouts.renderList();
}, TICK_MS);
setInterval(() => rollouts.tick(), COUNTDOWN_MS);
setInterval(() => {
  if (events && streamState !== 'live') scheduleRefetch(0);
}, POLL_MS);

boot();
