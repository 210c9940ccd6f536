/**
 * Pure helpers for the drift page: the order of the overview, which features the chart draws, how
 * scores read. Shapes are those of packages/shared/src/api/drift.ts. No DOM here.
 */

/** The chart draws at most this many features: more lines than this read as noise. */
export const MAX_CHART_FEATURES = 8;
/** A feature score above this drifted (PSI over its noise-aware threshold). */
export const THRESHOLD = 1;
const DASH = '—';

/** A tracked version needs attention: an active alert, a device over, or the fleet itself over. */
export function isDrifting(row) {
  return row.activeAlerts > 0 || row.devicesOver > 0 || (row.fleetScore !== null && row.fleetScore > THRESHOLD);
}

/** DriftOverview[] with the drifting versions first, then by fleet score (highest first), then by name. */
export function sortOverview(rows) {
  const score = (r) => (r.fleetScore === null ? -1 : r.fleetScore);
  return [...rows].sort((a, b) =>
    Number(isDrifting(b)) - Number(isDrifting(a))
    || score(b) - score(a)
    || a.model.localeCompare(b.model)
    || a.version.localeCompare(b.version));
}

/** 1.234 → "1.23", 57.1 → "57"; scores are ratios to the threshold, so 1 is the line that matters. */
export function scoreText(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/**
 * The features the chart draws: those with the highest score in any fleet evaluation (features that
 * drifted once stay visible after they settle), at most `max`.
 */
export function chartFeatures(evaluations, max = MAX_CHART_FEATURES) {
  const best = new Map();
  for (const e of evaluations) {
    for (const f of e.features) {
      if (Number.isFinite(f.score) && f.score > (best.get(f.name) ?? -Infinity)) best.set(f.name, f.score);
    }
  }
  return [...best.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, max).map(([name]) => name);
}

/**
 * uPlot data for the fleet evaluations (oldest first): x is the evaluation's place, then one row of
 * scores per chart feature (null where an evaluation lacks it), then the threshold line.
 */
export function chartData(evaluations, names) {
  const xs = evaluations.map((_, i) => i);
  const rows = names.map((name) => evaluations.map((e) => e.features.find((f) => f.name === name)?.score ?? null));
  return [xs, ...rows, xs.map(() => THRESHOLD)];
}

/** Active alerts first, the fleet's before the devices' (newest raised first), then cleared ones (newest cleared first). */
export function sortAlerts(alerts) {
  const time = (s) => (s ? Date.parse(s) || 0 : 0);
  return [...alerts].sort((a, b) =>
    Number(b.state === 'active') - Number(a.state === 'active')
    || (a.state === 'active' ? Number(b.deviceId === null) - Number(a.deviceId === null) : 0)
    || time(b.clearedAt ?? b.raisedAt) - time(a.clearedAt ?? a.raisedAt)
    || b.id - a.id);
}

/** Devices over first, then by score, highest first. */
export function sortDevices(rows) {
  return [...rows].sort((a, b) => Number(b.over) - Number(a.over) || b.score - a.score || a.deviceId.localeCompare(b.deviceId));
}

/** "reference data, 2000 samples, 12 features + 1 output" for a BaselineInfo; null when there is none. */
export function baselineText(baseline) {
  if (!baseline) return null;
  const source = baseline.source === 'reference' ? 'reference data' : 'calibration data';
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${source}, ${plural(baseline.samples, 'sample')}, ${plural(baseline.features.length, 'feature')} + ${plural(baseline.outputs.length, 'output')}`;
}

/** "14:03:27" (local time) for an ISO instant; the chart's ticks and the alert times read so. */
export function clockText(iso) {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return DASH;
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
