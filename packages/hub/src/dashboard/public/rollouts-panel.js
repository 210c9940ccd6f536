import { h } from './dom.js';
import { plural, progressOf, targetText } from './rollout-format.js';
import { stateBar } from './state-bar.js';
import { relativeTime, toMs } from './time-format.js';

const SHOWN = 12;

/** The address that selects a rollout: the page follows the hash, so a reload keeps the selection. */
export function rolloutHref(id) {
  return `#rollout=${encodeURIComponent(id)}`;
}

function progressText(counts) {
  const { active, total } = progressOf(counts);
  return total === 0 ? 'no devices yet' : `${active} of ${plural(total, 'device')} active`;
}

function itemContent(r, now) {
  return h('a', { class: 'rollout-link', href: rolloutHref(r.id) },
    h('div', { class: 'rollout-head' },
      h('span', { class: 'model' }, r.model, ' ', h('b', {}, r.version)),
      h('span', { class: `badge state-${r.state}` }, r.state)),
    h('div', { class: 'muted small' }, [targetText(r.target), relativeTime(r.createdAt, now), progressText(r.counts)].filter(Boolean).join(' · ')),
    stateBar(r.counts, { legend: false }));
}

/** Owns the rollout list (<ol>): recent rollouts, newest first, each a link that selects it. */
export function createRolloutsPanel(list) {
  const rollouts = new Map();
  /** id → {li, key}: an item is rebuilt only when what it shows changed, so live updates of one
   * rollout do not swap the others' links out from under a click. */
  const items = new Map();
  let selectedId = null;

  function sorted() {
    return [...rollouts.values()].sort((a, b) => (toMs(b.createdAt) ?? 0) - (toMs(a.createdAt) ?? 0));
  }

  function itemFor(r, now) {
    const key = JSON.stringify([r.state, r.counts, r.model, r.version, relativeTime(r.createdAt, now)]);
    let item = items.get(r.id);
    if (!item) {
      item = { li: h('li', { class: 'rollout', 'data-rollout-id': r.id }), key: null };
      items.set(r.id, item);
    }
    item.li.dataset.rolloutState = r.state;
    item.li.setAttribute('aria-current', String(r.id === selectedId));
    if (item.key !== key) {
      item.key = key;
      item.li.replaceChildren(itemContent(r, now));
    }
    return item.li;
  }

  function render() {
    const now = Date.now();
    const recent = sorted().slice(0, SHOWN);
    // The selected rollout stays listed even when it is older than the shown ones.
    const selected = selectedId === null ? undefined : rollouts.get(selectedId);
    if (selected && !recent.includes(selected)) recent.push(selected);
    for (const id of items.keys()) if (!recent.some((r) => r.id === id)) items.delete(id);
    if (recent.length === 0) {
      list.replaceChildren(h('li', { class: 'empty muted' }, 'No rollouts yet.'));
      return;
    }
    const lis = recent.map((r) => itemFor(r, now));
    // Moving nodes that are already in place would still detach them: only reorder when the order changed.
    if (lis.length !== list.children.length || lis.some((li, i) => list.children[i] !== li)) list.replaceChildren(...lis);
  }

  /** Replaces the list with the hub's summaries. */
  function setAll(all) {
    rollouts.clear();
    for (const r of all) rollouts.set(r.id, r);
    render();
  }

  /** Adds or replaces one rollout (a whole Rollout or a summary); the list keeps no per-device rows. */
  function upsert(rollout) {
    const { waves: _waves, ...summary } = rollout;
    rollouts.set(rollout.id, summary);
    render();
  }

  /** Applies the hub's `rollout` event {rolloutId, state, counts, ...}; false when the rollout is unknown. */
  function apply(event) {
    const r = rollouts.get(event.rolloutId);
    if (!r) return false;
    if (event.state) r.state = event.state;
    if (event.counts) r.counts = event.counts;
    render();
    return true;
  }

  function select(id) {
    selectedId = id;
    render();
  }

  function newestId() {
    return sorted()[0]?.id ?? null;
  }

  return { setAll, upsert, apply, select, newestId, render };
}
