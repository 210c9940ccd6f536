/**
 * Turns the "start rollout" form's values into a CreateRolloutRequest (packages/shared/src/api/rollouts.ts).
 * Pure: errors name the field and what was expected; the hub still validates everything (and its
 * 400 answers are shown as they are), this only catches typing mistakes before a round trip.
 */

export const WAVE_PRESETS = [
  { id: 'all', label: '100% at once', waves: '100%' },
  { id: 'canary', label: '1 / 100%', waves: '1, 100%' },
  { id: 'staged', label: '1 / 10% / 50% / 100%', waves: '1, 10%, 50%, 100%' },
  { id: 'thirds', label: '10% / 50% / 100%', waves: '10%, 50%, 100%' },
];

/** A form value the page refuses before asking the hub. */
export class FormError extends Error {}

const PERCENT = /^(100|[1-9]?[0-9](\.[0-9]{1,2})?)%$/;
const LABEL_KEY = /^[A-Za-z0-9_.-]{1,63}$/;

/** "1, 10%, 100%" (commas, slashes or spaces between) → [1, "10%", "100%"]. */
export function parseWaves(text) {
  const parts = String(text).split(/[\s,/]+/).filter(Boolean);
  if (parts.length === 0) throw new FormError('waves: give at least one size, e.g. "1, 10%, 100%"');
  if (parts.length > 20) throw new FormError(`waves: at most 20 waves, got ${parts.length}`);
  return parts.map((part) => {
    if (PERCENT.test(part)) return part;
    if (/^[0-9]+$/.test(part) && Number(part) >= 1) return Number(part);
    throw new FormError(`waves: "${part}" is neither a device count (1, 2, …) nor a percentage ("10%")`);
  });
}

/** "site=north, tier=edge" → {site: "north", tier: "edge"}. */
export function parseLabels(text) {
  const labels = {};
  for (const pair of String(text).split(/[,\n]+/).map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    if (!LABEL_KEY.test(key)) throw new FormError(`labels: "${pair}" is not key=value with a key of letters, digits, "_", "." or "-"`);
    labels[key] = pair.slice(eq + 1).trim();
  }
  if (Object.keys(labels).length === 0) throw new FormError('labels: give at least one key=value (an empty selector would match every device)');
  return labels;
}

/** An optional number field: undefined when blank; "5%" reads as 0.05 when `share`. */
function optionalNumber(text, field, { min, max, share = false, integer = false }) {
  const raw = String(text ?? '').trim();
  if (raw === '') return undefined;
  const isPercent = share && raw.endsWith('%');
  const value = Number(isPercent ? raw.slice(0, -1) : raw) / (isPercent ? 100 : 1);
  const ok = Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value));
  if (!ok) throw new FormError(`${field}: "${raw}" is not ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}${share ? ' (or a percentage)' : ''}`);
  return value;
}

function targetOf(values) {
  if (values.targetKind === 'all') return { all: true };
  if (values.targetKind === 'labels') return { labels: parseLabels(values.labels) };
  const deviceIds = [...new Set(values.deviceIds ?? [])];
  if (deviceIds.length === 0) throw new FormError('devices: choose at least one device');
  return { deviceIds };
}

/**
 * values: {model, version, targetKind: 'all'|'labels'|'devices', labels, deviceIds[], waves (text),
 * bakeSec, autoRollback, maxFailureShare, maxErrorRateIncrease, maxP99Ratio}. Bake and gates apply to
 * every wave; each wave's gates judge the devices that wave added, not the devices of earlier waves.
 */
export function buildCreateRequest(values) {
  if (!values.model) throw new FormError('model: choose a model (upload one first if the list is empty)');
  if (!values.version) throw new FormError('version: choose a version');
  const bakeSec = optionalNumber(values.bakeSec, 'bake seconds', { min: 0, max: 7 * 24 * 3600, integer: true });
  const gates = {
    maxFailureShare: optionalNumber(values.maxFailureShare, 'max failure share', { min: 0, max: 1, share: true }),
    maxErrorRateIncrease: optionalNumber(values.maxErrorRateIncrease, 'max error-rate increase', { min: 0, max: 1, share: true }),
    maxP99Ratio: optionalNumber(values.maxP99Ratio, 'max p99 ratio', { min: 1, max: 1000 }),
  };
  const setGates = Object.fromEntries(Object.entries(gates).filter(([, v]) => v !== undefined));
  const waves = parseWaves(values.waves).map((size) => ({
    size,
    ...(bakeSec !== undefined ? { bakeSec } : {}),
    ...(Object.keys(setGates).length > 0 ? { gates: setGates } : {}),
  }));
  return {
    model: values.model,
    version: values.version,
    target: targetOf(values),
    waves,
    autoRollback: Boolean(values.autoRollback),
  };
}
