import { AuthRequired } from './api-client.js';
import { h } from './dom.js';
import { buildCreateRequest, WAVE_PRESETS } from './rollout-request.js';
import { relativeTime, toMs } from './time-format.js';

const CUSTOM = 'custom';

function option(value, text, selected = false) {
  return h('option', { value, selected }, text);
}

/**
 * Owns the "start a rollout" card: model and version from the models API, target, waves, bake,
 * auto-rollback and gates. On success it hands the created Rollout to onCreated and closes.
 */
export function createRolloutForm(section, { api, devices, onCreated, onAuthLost }) {
  const form = section.querySelector('form');
  const field = (name) => form.elements.namedItem(name);
  const errorLine = form.querySelector('[data-form-error]');
  let versionsFor = null;

  field('wavePreset').replaceChildren(
    ...WAVE_PRESETS.map((p, i) => option(p.id, p.label, i === 0)),
    option(CUSTOM, 'custom (edit the list)'));
  field('waves').value = WAVE_PRESETS[0].waves;

  function showError(err) {
    if (err instanceof AuthRequired) onAuthLost();
    else errorLine.textContent = err.message;
  }

  function showTargetInputs() {
    const kind = form.querySelector('input[name="targetKind"]:checked')?.value ?? 'all';
    for (const el of form.querySelectorAll('[data-target-kind]')) el.hidden = el.dataset.targetKind !== kind;
  }

  async function loadVersions(model) {
    versionsFor = model;
    const select = field('version');
    if (!model) {
      select.replaceChildren();
      return;
    }
    const { versions } = await api(`/models/${encodeURIComponent(model)}/versions`);
    if (versionsFor !== model) return; // another model was chosen meanwhile
    const newestFirst = [...versions].sort((a, b) => (toMs(b.createdAt) ?? 0) - (toMs(a.createdAt) ?? 0));
    select.replaceChildren(...newestFirst.map((v, i) => option(v.version, `${v.version} · uploaded ${relativeTime(v.createdAt)}`, i === 0)));
  }

  async function loadModels() {
    const { models } = await api('/models');
    const select = field('model');
    const previous = select.value;
    if (models.length === 0) select.replaceChildren(option('', 'no models uploaded yet'));
    else select.replaceChildren(...models.map((m) => option(m.name, m.name, m.name === previous)));
    await loadVersions(select.value);
  }

  function fillDevices() {
    const select = field('deviceIds');
    const chosen = new Set([...select.selectedOptions].map((o) => o.value));
    const sorted = [...devices()].sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
    select.replaceChildren(...sorted.map((d) => option(d.id, `${d.name || d.id}${d.online ? '' : ' (offline)'}`, chosen.has(d.id))));
  }

  function values() {
    return {
      model: field('model').value,
      version: field('version').value,
      targetKind: form.querySelector('input[name="targetKind"]:checked')?.value ?? 'all',
      labels: field('labels').value,
      deviceIds: [...field('deviceIds').selectedOptions].map((o) => o.value),
      waves: field('waves').value,
      bakeSec: field('bakeSec').value,
      autoRollback: field('autoRollback').checked,
      maxFailureShare: field('maxFailureShare').value,
      maxErrorRateIncrease: field('maxErrorRateIncrease').value,
      maxP99Ratio: field('maxP99Ratio').value,
    };
  }

  async function open() {
    section.hidden = false;
    errorLine.textContent = '';
    fillDevices();
    showTargetInputs();
    try {
      await loadModels();
    } catch (err) {
      showError(err);
    }
  }

  function close() {
    section.hidden = true;
    errorLine.textContent = '';
  }

  form.addEventListener('change', (e) => {
    const name = e.target.name;
    if (name === 'targetKind') showTargetInputs();
    else if (name === 'model') loadVersions(e.target.value).catch(showError);
    else if (name === 'wavePreset' && e.target.value !== CUSTOM) field('waves').value = WAVE_PRESETS.find((p) => p.id === e.target.value)?.waves ?? '';
  });
  field('waves').addEventListener('input', () => {
    field('wavePreset').value = WAVE_PRESETS.find((p) => p.waves === field('waves').value.trim())?.id ?? CUSTOM;
  });
  form.querySelector('[data-action="cancel-form"]').addEventListener('click', close);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const submit = form.querySelector('button[type="submit"]');
    errorLine.textContent = '';
    submit.disabled = true;
    try {
      const created = await api('/rollouts', { method: 'POST', body: JSON.stringify(buildCreateRequest(values())) });
      close();
      onCreated(created);
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });

  return { open, close, toggle: () => (section.hidden ? open() : close()) };
}
