import type { DriftFeatureScore } from '@edgefleet/shared';

/**
 * When a drift alert is raised, updated and cleared, and what it names. Pure. Per (model, version,
 * scope): raised after two consecutive evaluation windows over (any feature score > 1), updated by
 * every further window over while active, cleared after two consecutive windows under. One window
 * over between windows under raises nothing: single windows are noisy, two in a row are not.
 */

/** What the rules read from an evaluation window. */
export interface WindowVerdict {
  over: boolean;
  score: number;
  features: readonly DriftFeatureScore[];
}

export type AlertDecision = 'raise' | 'update' | 'clear' | 'none';

/** `previous`: the scope's window before `current` (none yet: undefined). */
export function alertDecision(active: boolean, previous: WindowVerdict | undefined, current: WindowVerdict): AlertDecision {
  if (!active) return current.over && previous?.over === true ? 'raise' : 'none';
  if (current.over) return 'update';
  return previous !== undefined && !previous.over ? 'clear' : 'none';
}

/**
 * The previous window as alertDecision's input: only when it was evaluated against the version's
 * current baseline. One evaluated before the baseline was (re)built was scored against the old one, so
 * it neither completes a pair over nor a pair under with the first window of the new baseline.
 */
export function previousOnBaseline<T extends { evaluatedAt: string }>(previous: T | undefined, baselineCreatedAt: string | undefined): T | undefined {
  if (previous === undefined || baselineCreatedAt === undefined) return previous;
  const built = Date.parse(baselineCreatedAt);
  return Number.isFinite(built) && Date.parse(previous.evaluatedAt) < built ? undefined : previous;
}

/**
 * The message an alert is cleared with when it went stale: its scope (a device that moved to another
 * version or went silent, or a fleet no longer sending) has had no evaluation window for `staleHours`.
 */
export function staleAlertMessage(model: string, version: string, deviceId: string | null, staleHours: number, lastEvaluatedAt: number | null): string {
  const scope = deviceId === null ? 'fleet' : `device ${deviceId}`;
  const last = lastEvaluatedAt === null ? 'none recorded' : `last at ${new Date(lastEvaluatedAt).toISOString()}`;
  return `drift alert on ${model}@${version} (${scope}) cleared as stale: no evaluation window for ${staleHours} h (${last})`;
}

/** Most features an alert names. */
export const ALERT_FEATURES = 5;
/** Most device ids spelled out in an alert's message (the alert's `devices` lists them all). */
const MESSAGE_DEVICES = 5;

export interface AlertFeature {
  name: string;
  score: number;
  psi: number;
}

/**
 * The features an alert names, from the two windows that raised (or updated) it: those over in both
 * windows, ranked by their lower score of the two (drift that persisted, not one window's noise);
 * when no feature was over in both (the drift moved between features), those over in either, by
 * their higher score. At most ALERT_FEATURES; the score and PSI shown are the current window's.
 */
export function alertFeatures(previous: WindowVerdict | undefined, current: WindowVerdict): AlertFeature[] {
  const before = new Map((previous?.features ?? []).map((f) => [f.name, f]));
  const both: Array<{ f: DriftFeatureScore; rank: number }> = [];
  const either: Array<{ f: DriftFeatureScore; rank: number }> = [];
  for (const f of current.features) {
    const p = before.get(f.name);
    if (f.drifted && p?.drifted) both.push({ f, rank: Math.min(f.score, p.score) });
    if (f.drifted || p?.drifted) either.push({ f, rank: Math.max(f.score, p?.score ?? 0) });
  }
  const chosen = both.length > 0 ? both : either;
  return chosen
    .sort((a, b) => b.rank - a.rank)
    .slice(0, ALERT_FEATURES)
    .map(({ f }) => ({ name: f.name, score: f.score, psi: f.psi }));
}

/** One line for people and webhooks: model, version, scope, devices, features. */
export function alertMessage(model: string, version: string, deviceId: string | null, devices: readonly string[], features: readonly AlertFeature[]): string {
  const scope = deviceId === null ? 'fleet' : `device ${deviceId}`;
  const named = features.map((f) => `${f.name} (score ${f.score.toFixed(2)})`).join(', ') || 'no single feature';
  let line = `drift on ${model}@${version} (${scope}): ${named}`;
  if (deviceId === null && devices.length > 0) {
    const more = devices.length > MESSAGE_DEVICES ? ` and ${devices.length - MESSAGE_DEVICES} more` : '';
    line += `; devices over: ${devices.slice(0, MESSAGE_DEVICES).join(', ')}${more}`;
  }
  return line;
}
