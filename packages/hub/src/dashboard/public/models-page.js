import { AuthRequired } from './api-client.js';
import { createBuildStatus } from './build-status.js';
import { h } from './dom.js';
import { budgetText, SETTLED_BUILD_STATES, variantRows } from './models-format.js';
import { modelsHref } from './page-route.js';
import { createPlansTable } from './plans-table.js';
import { createThrottle } from './throttle.js';
import { relativeTime, toMs } from './time-format.js';
import { createVariantsChart } from './variants-chart.js';
import { createVariantsTable } from './variants-table.js';

/** Bursts of `variants` and `plan` events (one per profile step, one per device) cost one refetch per this interval. */
const REFETCH_MS = 400;
/** The budget a version has when none was given (DEFAULT_BUDGET in packages/shared/src/api/variants.ts). */
const DEFAULT_BUDGET = { minAgreement: 0.99, maxRelativeError: 0.05 };

const path = (model, version) => `/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}`;

/**
 * The models page: the model list, a version of the chosen model (from the URL hash), its latest
 * variant build with live progress (`variants` events), the variants table and chart, and each
 * device's plan (`plan` events) with a benchmark button. Answers for a model or version no longer on
 * screen are dropped, so a slow fetch never paints over the one chosen since.
 */
export function createModelsPage(els, { api, deviceName, deviceOnline, onAuthLost }) {
  const status = createBuildStatus(els.build);
  const table = createVariantsTable(els.variants);
  const chart = createVariantsChart(els.chart);
  const plansTable = createPlansTable(els.plans, { deviceName, deviceOnline, onBenchmark: (id) => void benchmark(id) });

  let visible = false;
  let route = { model: null, version: null };
  let models = [];
  let versions = []; // ModelVersion[] of the chosen model, newest first
  let model = null;
  let version = null;
  let build = null;
  let variants = [];
  let plans = [];
  let plansLoaded = false;
  let requesting = false;
  let loads = 0; // load() calls made: only the latest paints
  // Fetches are numbered in the order they were sent: an answer older than the one on screen is dropped.
  const sent = { variants: 0, plans: 0 };
  const painted = { variants: 0, plans: 0 };
  const benchmarks = new Map(); // deviceId → {busy, error, message}

  const chosen = (m, v) => m === model && v === version;

  function fail(err, line = els.error, what = 'Could not load models') {
    if (err instanceof AuthRequired) onAuthLost();
    else line.textContent = `${what}: ${err.message}`;
  }

  function renderList() {
    if (models.length === 0) {
      els.list.replaceChildren(h('li', { class: 'muted' }, 'No models uploaded yet.'));
      return;
    }
    els.list.replaceChildren(...models.map((m) => h('li', { 'data-model': m.name },
      h('a', { class: 'model-link', href: modelsHref(m.name), 'aria-current': String(m.name === model) },
        h('b', {}, m.name),
        h('span', { class: 'muted small' }, ` ${m.versions.length} version${m.versions.length === 1 ? '' : 's'} · latest ${m.latest}`)))));
  }

  function renderVersions() {
    els.version.replaceChildren(...versions.map((v) => h('option', { value: v.version, selected: v.version === version },
      `${v.version} · uploaded ${relativeTime(v.createdAt)}`)));
    els.version.disabled = versions.length === 0;
  }

  function renderHead(calibration) {
    const v = versions.find((x) => x.version === version);
    els.title.textContent = model && version ? `${model} ${version}` : '';
    if (!v) {
      els.info.replaceChildren();
      return;
    }
    const budget = v.budget ? budgetText(v.budget) : `${budgetText(DEFAULT_BUDGET)} (default)`;
    const calib = calibration
      ? `${calibration.samples} samples${calibration.labels ? ', labelled' : ''}, uploaded ${relativeTime(calibration.uploadedAt)}`
      : 'none uploaded: variants are judged on generated inputs';
    els.info.replaceChildren(
      h('div', {}, h('span', { class: 'muted' }, 'Accuracy budget: '), budget),
      h('div', { 'data-field': 'calibration' }, h('span', { class: 'muted' }, 'Calibration data: '), calib));
  }

  function renderBuild() {
    status.render(build);
    // Left enabled while a build runs: the hub's 409 says which build and since when.
    const running = build !== null && !SETTLED_BUILD_STATES.has(build.state);
    els.buildButton.disabled = !version || requesting;
    els.buildButton.title = running ? 'a build of this version is running: the hub will refuse another' : 'build every profile from the fp32 model';
  }

  function renderVariants() {
    const rows = variantRows(variants);
    table.render(rows);
    if (rows.length === 0) chart.clear();
    else chart.render(rows);
  }

  function renderPlans() {
    const latest = models.find((m) => m.name === model)?.latest;
    const empty = !plansLoaded ? 'Loading…'
      : version !== latest ? `No plans: devices are planned for each model's latest version (${latest}); a rollout of ${version} plans its devices when it starts.`
        : 'No device planned yet: plans are made when a build ends and when devices enroll.';
    plansTable.render(plans, benchmarks, empty);
  }

  async function loadVariants() {
    const [m, v] = [model, version];
    if (!m || !v) return;
    const seq = ++sent.variants;
    try {
      const list = await api(`${path(m, v)}/variants`);
      if (!chosen(m, v) || seq < painted.variants) return;
      painted.variants = seq;
      build = list.build;
      variants = list.variants;
      renderBuild();
      renderVariants();
      els.error.textContent = '';
    } catch (err) {
      if (chosen(m, v)) fail(err);
    }
  }

  async function loadPlans() {
    const [m, v] = [model, version];
    if (!m || !v) return;
    const seq = ++sent.plans;
    try {
      const list = await api(`/plans?model=${encodeURIComponent(m)}&version=${encodeURIComponent(v)}`);
      if (!chosen(m, v) || seq < painted.plans) return;
      painted.plans = seq;
      plans = list.plans;
      plansLoaded = true;
      renderPlans();
    } catch (err) {
      if (chosen(m, v)) fail(err, els.plansError, 'Could not load plans');
    }
  }

  async function loadCalibration(m, v) {
    try {
      return await api(`${path(m, v)}/calibration`);
    } catch (err) {
      if (err.status === 404) return null;
      throw err;
    }
  }

  const variantsRefetch = createThrottle(loadVariants, REFETCH_MS);
  const plansRefetch = createThrottle(loadPlans, REFETCH_MS);

  /** Shows a version: everything about it is fetched anew (benchmark answers stay while it is the same one). */
  async function showVersion(m, v) {
    if (!chosen(m, v)) benchmarks.clear();
    model = m;
    version = v;
    build = null;
    variants = [];
    plans = [];
    plansLoaded = false;
    els.buildError.textContent = '';
    els.plansError.textContent = '';
    renderList();
    renderVersions();
    renderHead(null);
    renderBuild();
    renderVariants();
    renderPlans();
    if (!v) return;
    const calibration = loadCalibration(m, v).then((c) => chosen(m, v) && renderHead(c), (err) => chosen(m, v) && fail(err));
    await Promise.all([loadVariants(), loadPlans(), calibration]);
  }

  /** The version a route names, else the model's latest, else its newest; the error line says when the route's is missing. */
  function versionFor(m, list) {
    const latest = models.find((x) => x.name === m)?.latest ?? null;
    if (route.version && !list.some((x) => x.version === route.version)) els.error.textContent = `Version ${route.version} of ${m} does not exist.`;
    for (const v of [route.version, latest]) if (v && list.some((x) => x.version === v)) return v;
    return list[0]?.version ?? null;
  }

  /** Loads the model list and the routed (or first) model's versions, then shows its version. */
  async function load() {
    const seq = ++loads;
    try {
      ({ models } = await api('/models'));
      if (seq !== loads) return;
      const m = models.find((x) => x.name === route.model)?.name ?? models[0]?.name ?? null;
      els.error.textContent = route.model && m !== route.model ? `Model ${route.model} does not exist.` : '';
      const list = m ? (await api(`/models/${encodeURIComponent(m)}/versions`)).versions : [];
      if (seq !== loads) return; // another route was chosen meanwhile
      versions = [...list].sort((a, b) => (toMs(b.createdAt) ?? 0) - (toMs(a.createdAt) ?? 0));
      await showVersion(m, versionFor(m, versions));
    } catch (err) {
      if (seq === loads) fail(err);
    }
  }

  async function startBuild() {
    if (!model || !version || requesting) return;
    const [m, v] = [model, version];
    requesting = true;
    els.buildError.textContent = '';
    renderBuild();
    try {
      const started = await api(`${path(m, v)}/variants`, { method: 'POST', body: '{}' });
      if (chosen(m, v)) build = started;
    } catch (err) {
      if (chosen(m, v)) fail(err, els.buildError, 'Could not start a build');
    } finally {
      requesting = false;
      if (chosen(m, v)) renderBuild();
      variantsRefetch.request();
    }
  }

  async function benchmark(deviceId) {
    const [m, v] = [model, version];
    benchmarks.set(deviceId, { busy: true });
    renderPlans();
    let next;
    try {
      const sent = await api(`/devices/${encodeURIComponent(deviceId)}/benchmarks`, { method: 'POST', body: JSON.stringify({ model: m, version: v }) });
      next = { message: `Asked to measure ${sent.candidates.map((c) => c.profile).join(', ')}; the plan follows its answer.` };
    } catch (err) {
      if (err instanceof AuthRequired) {
        // Not left "Asking…": the operator signs in again onto this same table.
        benchmarks.delete(deviceId);
        if (chosen(m, v)) renderPlans();
        return onAuthLost();
      }
      next = { error: err.message };
    }
    if (!chosen(m, v)) return;
    benchmarks.set(deviceId, next);
    renderPlans();
  }

  /**
   * A `variants` event {model, version, state, progress, profile?, variantState?}: progress at once,
   * rows by refetch. The end of a build comes with the refetch, so "done" never shows beside rows
   * still building.
   */
  function onVariants(event) {
    if (!visible || !chosen(event.model, event.version)) return;
    const settled = SETTLED_BUILD_STATES.has(event.state);
    if (build && !settled) {
      build = { ...build, state: event.state, progress: event.progress };
      renderBuild();
    }
    if (!build || event.variantState || settled) variantsRefetch.request();
    // Plans follow a finished build of the latest version.
    if (event.state === 'done') plansRefetch.request();
  }

  /** A `plan` event {deviceId, model, version, profile, decidedBy}. */
  function onPlan(event) {
    if (visible && chosen(event.model, event.version)) plansRefetch.request();
  }

  els.version.addEventListener('change', () => {
    location.hash = modelsHref(model, els.version.value);
  });
  els.buildButton.addEventListener('click', () => void startBuild());

  return {
    /** Shows the page for a route {model, version} (from the hash); loads what it shows. */
    async show(next) {
      const wasVisible = visible;
      visible = true;
      const sameModel = wasVisible && next.model !== null && next.model === model && models.some((m) => m.name === model);
      route = next;
      if (sameModel && versions.some((x) => x.version === next.version)) {
        if (next.version !== version) await showVersion(model, next.version);
        return;
      }
      await load();
    },
    hide() {
      visible = false;
      variantsRefetch.cancel();
      plansRefetch.cancel();
    },
    /** After a reconnect of the event stream or while it is down (events may have been missed): refetches in place. */
    async refresh() {
      if (!visible) return;
      try {
        ({ models } = await api('/models'));
        renderList();
      } catch (err) {
        fail(err);
      }
      variantsRefetch.request();
      plansRefetch.request();
    },
    onVariants,
    onPlan,
    /** Device names or presence changed: the plans table shows both. */
    devicesChanged() {
      if (visible && plansLoaded) renderPlans();
    },
  };
}
