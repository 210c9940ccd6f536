import { AuthRequired } from './api-client.js';
import { createRolloutDetail } from './rollout-detail.js';
import { createRolloutForm } from './rollout-form.js';
import { ACTION_LABELS, CONFIRMED_ACTIONS, SETTLED_ROLLOUT_STATES } from './rollout-format.js';
import { modelsRoute } from './page-route.js';
import { createRolloutsPanel, rolloutHref } from './rollouts-panel.js';
import { createThrottle } from './throttle.js';

/** Bursts of `rollout` events (one per device phase) cost one refetch per this interval. */
const REFETCH_MS = 300;
const HASH = /^#rollout=(.+)$/;

function idFromHash() {
  const match = HASH.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

/**
 * The rollouts part of the dashboard: the list, the selected rollout's detail (chosen by the URL
 * hash, else the newest), the start form, the operator actions, and live updates from `rollout`
 * events. Every answer is stamped with the order its request was sent in, so a slow refetch never
 * paints over the answer to a later action.
 */
export function createRolloutsPage(els, { api, deviceName, devices, onAuthLost }) {
  const panel = createRolloutsPanel(els.list);
  const detail = createRolloutDetail(els.detail, { deviceName, onAction: (action) => void act(action) });
  const form = createRolloutForm(els.form, { api, devices, onAuthLost, onCreated });
  let selectedId = null;
  let current = null; // the Rollout on screen
  let sent = 0;
  let painted = 0;
  let busy = false;
  let actionError = null;

  /** A failed load stays on screen (role=alert) until the next load succeeds. */
  function fail(err) {
    if (err instanceof AuthRequired) onAuthLost();
    else els.error.textContent = `Could not load rollouts: ${err.message}`;
  }

  function paint(rollout, seq) {
    if (seq < painted || rollout.id !== selectedId) return;
    painted = seq;
    current = rollout;
    panel.upsert(rollout);
    detail.render(rollout, { busy, error: actionError });
  }

  async function fetchSelected() {
    const id = selectedId;
    if (id === null) return;
    const seq = ++sent;
    try {
      paint(await api(`/rollouts/${encodeURIComponent(id)}`), seq);
      els.error.textContent = '';
    } catch (err) {
      if (err.status === 404 && id === selectedId) detail.clear(`Rollout ${id} does not exist.`);
      else fail(err);
    }
  }

  async function fetchList() {
    try {
      const { rollouts } = await api('/rollouts');
      panel.setAll(rollouts);
      els.error.textContent = '';
      if (selectedId === null) select(panel.newestId());
    } catch (err) {
      fail(err);
    }
  }

  const detailRefetch = createThrottle(fetchSelected, REFETCH_MS);
  const listRefetch = createThrottle(fetchList, REFETCH_MS);

  function select(id) {
    if (id === selectedId) return;
    selectedId = id;
    current = null;
    actionError = null;
    panel.select(id);
    if (id === null) detail.clear();
    else detailRefetch.request();
  }

  function onCreated(rollout) {
    panel.upsert(rollout);
    if (location.hash !== rolloutHref(rollout.id)) location.hash = rolloutHref(rollout.id);
    select(rollout.id);
    paint(rollout, ++sent);
  }

  async function act(action) {
    if (!current || busy) return;
    const id = current.id;
    if (CONFIRMED_ACTIONS.has(action) && !window.confirm(`${ACTION_LABELS[action]} rollout ${current.model} ${current.version}?`)) return;
    const seq = ++sent;
    busy = true;
    actionError = null;
    detail.render(current, { busy });
    try {
      const updated = await api(`/rollouts/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
      busy = false;
      paint(updated, seq);
    } catch (err) {
      busy = false;
      if (err instanceof AuthRequired) return onAuthLost();
      actionError = err.message;
      if (current?.id === id) detail.render(current, { error: actionError });
    }
    detailRefetch.request();
  }

  /** A `rollout` event {rolloutId, state, counts, ...}: the list updates at once, the detail by refetch. */
  function onEvent(event) {
    if (!panel.apply(event)) listRefetch.request();
    if (event.rolloutId === selectedId) detailRefetch.request();
  }

  /** Every second: moves bake countdowns; a bake that has ended on screen asks the hub what came of it. */
  function tick() {
    const overdue = detail.tick();
    if (overdue && current && !SETTLED_ROLLOUT_STATES.has(current.state)) detailRefetch.request();
  }

  /** Reloads the list and the selected rollout (start, reconnect, polling while the stream is down). */
  async function refresh() {
    await fetchList();
    detailRefetch.request();
  }

  // The models page's hashes leave the selection as it was, for the way back to this page.
  window.addEventListener('hashchange', () => {
    if (!modelsRoute(location.hash)) select(idFromHash());
  });
  els.newButton.addEventListener('click', () => void form.toggle());
  // Nothing is fetched before refresh(): the page may not be signed in yet.
  selectedId = idFromHash();
  panel.select(selectedId);

  return { refresh, onEvent, tick, renderList: () => panel.render() };
}
