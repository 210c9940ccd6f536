import type { GateResult, ModelStats, ShadowReport, WaveGates } from '@edgefleet/shared';

/**
 * Gate maths for rollout waves: pure functions from counts, telemetry and shadow reports to
 * GateResults whose messages carry the numbers an operator needs to see why a wave stopped.
 */

/**
 * The latest drift score of `version` on each of these devices whose latest evaluation window of it
 * ended after the device's `since` (when it switched to it): a score from before — an earlier
 * rollout of the same version — neither passes nor fails this wave. Devices without one are absent.
 */
export type DriftScores = (model: string, version: string, devices: ReadonlyArray<{ deviceId: string; since: number }>) => Map<string, number>;

/** One telemetry record of a device, oldest first. */
export interface TelemetrySample {
  ts: number;
  models: ModelStats[];
}

/** What one version of a model served on one device over a stretch of telemetry. */
export interface VersionUsage {
  requests: number;
  errors: number;
  /** Request-weighted mean of the interval p99s; null when no interval served a request. */
  p99Ms: number | null;
}

export const NO_USAGE: VersionUsage = Object.freeze({ requests: 0, errors: 0, p99Ms: null });

export const DEFAULT_MIN_REQUESTS = 20;

// Thresholds are decimals (0.05, 1.5); a difference or product of doubles can land a hair past one
// that it equals on paper. Being exactly at the threshold passes.
const ROUNDING_SLACK = 1e-9;

/**
 * Requests, errors and p99 of one version from cumulative counters. The agent counts per
 * (model, version) since it started, reports a version one last time after it stops serving and
 * then forgets it, and resets everything on restart: so a version missing from a sample counts as
 * 0 there, and a counter that drops restarted from 0 (the new value is the delta). The first
 * sample is only the starting point. An interval's p99 (latency is per interval) is weighted by the
 * requests the version served in it; intervals that served none carry no latency.
 */
export function usageOf(samples: readonly TelemetrySample[], model: string, version: string): VersionUsage {
  let requests = 0;
  let errors = 0;
  let p99Sum = 0;
  let previous: { requests: number; errors: number } | undefined;
  for (const sample of samples) {
    const stats = sample.models.find((m) => m.name === model && m.version === version);
    const current = { requests: stats?.requests ?? 0, errors: stats?.errors ?? 0 };
    if (previous) {
      const restarted = current.requests < previous.requests || current.errors < previous.errors;
      const served = restarted ? current.requests : current.requests - previous.requests;
      // Errors are requests too; a counter pair that says otherwise is not allowed to make a rate above 1.
      const failed = Math.min(served, restarted ? current.errors : current.errors - previous.errors);
      requests += served;
      errors += failed;
      if (stats && served > 0) p99Sum += served * stats.latencyMs.p99;
    }
    previous = current;
  }
  // Every interval that served a request had stats, so the p99 weights add up to `requests`.
  return { requests, errors, p99Ms: requests > 0 ? p99Sum / requests : null };
}

export interface WaveShareCounts {
  total: number;
  active: number;
  failed: number;
  timedOut: number;
}

/** Halts as devices fail: failed when failed/total exceeds maxFailureShare (default 0). */
export function failureShareGate(gates: WaveGates | undefined, c: WaveShareCounts, at: string): GateResult {
  const allowed = gates?.maxFailureShare ?? 0;
  const share = c.total > 0 ? c.failed / c.total : 0;
  const failed = share > allowed;
  const d = decimalsFor(allowed);
  const base = { gate: 'failure-share', observed: share, baseline: null, threshold: allowed, at } as const;
  return judged(base, failed, `${c.failed} of ${devices(c.total)} failed (${share.toFixed(d)} ${failed ? '>' : '≤'} ${allowed.toFixed(d)} allowed)`);
}

/**
 * Judged when every device of the wave is done: active/(total − timedOut) must reach minSuccessShare
 * (default 1). Timed-out devices are counted but do not block. A wave whose devices all timed out
 * fails: an offline canary proved nothing about the version, and the next, bigger wave must not start
 * on its word (an operator who knows better resumes past the gate; minSuccessShare 0 asks for no
 * proof at all). An empty wave passes.
 */
export function successShareGate(gates: WaveGates | undefined, c: WaveShareCounts, at: string): GateResult {
  const required = gates?.minSuccessShare ?? 1;
  const reachable = c.total - c.timedOut;
  const timedOut = c.timedOut > 0 ? `, ${c.timedOut} timed out` : '';
  const d = decimalsFor(required);
  const base = { gate: 'success-share', observed: null, baseline: null, threshold: required, at } as const;
  if (reachable <= 0) {
    const failed = c.total > 0 && required > 0;
    return judged(
      base,
      failed,
      c.total === 0
        ? 'no device in this wave'
        : failed
          ? `no device reached: ${c.timedOut} of ${devices(c.total)} timed out, none active, so nothing shows the version works (${required.toFixed(d)} required; resume to go on regardless)`
          : `no device reached: ${c.timedOut} of ${devices(c.total)} timed out (minSuccessShare 0: none required)`,
    );
  }
  const share = c.active / reachable;
  const passed = share >= required;
  return judged(
    { ...base, observed: share },
    !passed,
    `${c.active} of ${reachable} reachable ${reachable === 1 ? 'device' : 'devices'} active (${share.toFixed(d)} ${passed ? '≥' : '<'} ${required.toFixed(d)} required)${timedOut}`,
  );
}

/** One switched device: the previous version's usage before the switch, the new one's after. */
export interface DeviceUsage {
  deviceId: string;
  before: VersionUsage;
  after: VersionUsage;
}

/**
 * The configured metric gates, comparing the new version with the previous one on the same devices
 * (those that served the new version). `no-data` (which does not halt) while fewer than minRequests
 * (default 20) were served on the new version, and for p99 while no device has a previous p99.
 */
export function metricGates(gates: WaveGates | undefined, devices: readonly DeviceUsage[], at: string): GateResult[] {
  const minRequests = gates?.minRequests ?? DEFAULT_MIN_REQUESTS;
  const serving = devices.filter((d) => d.after.requests > 0);
  const results: GateResult[] = [];
  if (gates?.maxErrorRateIncrease !== undefined) results.push(errorRateGate(gates.maxErrorRateIncrease, minRequests, serving, at));
  if (gates?.maxP99Ratio !== undefined) results.push(p99Gate(gates.maxP99Ratio, minRequests, serving, at));
  return results;
}

/**
 * Pooled error rate of the new version vs the previous version's on the same devices. A device with
 * no requests before (a first install) has no baseline: with none at all, the baseline is taken as 0,
 * so the new version's own error rate is what may not exceed the allowed increase.
 */
function errorRateGate(allowed: number, minRequests: number, serving: readonly DeviceUsage[], at: string): GateResult {
  const after = sum(serving, (d) => d.after.requests);
  const afterErrors = sum(serving, (d) => d.after.errors);
  const before = sum(serving, (d) => d.before.requests);
  const beforeErrors = sum(serving, (d) => d.before.errors);
  const observed = after > 0 ? afterErrors / after : null;
  const baseline = before > 0 ? beforeErrors / before : null;
  const d = decimalsFor(allowed);
  const base = { gate: 'error-rate', observed, baseline, threshold: allowed, at } as const;
  if (observed === null || after < minRequests) {
    return noData(base, `${after} requests on the new version on ${devices(serving.length)}, ${minRequests} needed to judge the error rate`);
  }
  const increase = observed - (baseline ?? 0);
  const failed = increase > allowed + ROUNDING_SLACK;
  const was = baseline === null ? 'no requests before (0 assumed)' : `${baseline.toFixed(d)} before`;
  return judged(base, failed, `error rate ${observed.toFixed(d)} on ${devices(serving.length)} vs ${was} (${signed(increase, d)} ${failed ? '>' : '≤'} ${signed(allowed, d)} allowed), ${after} requests`);
}

/**
 * New p99 / previous p99 on the devices that have both. Both sides are weighted by each device's
 * requests on the new version, so a fast device with little old traffic cannot skew the ratio.
 */
function p99Gate(allowed: number, minRequests: number, serving: readonly DeviceUsage[], at: string): GateResult {
  const compared = serving.filter((d) => d.after.p99Ms !== null && d.before.p99Ms !== null);
  const requests = sum(compared, (d) => d.after.requests);
  const observed = requests > 0 ? sum(compared, (d) => d.after.requests * d.after.p99Ms!) / requests : null;
  const baseline = requests > 0 ? sum(compared, (d) => d.after.requests * d.before.p99Ms!) / requests : null;
  const base = { gate: 'p99-latency', observed, baseline, threshold: allowed, at } as const;
  const served = sum(serving, (d) => d.after.requests);
  if (served < minRequests) {
    return noData({ ...base, observed: null, baseline: null }, `${served} requests on the new version on ${devices(serving.length)}, ${minRequests} needed to judge p99 latency`);
  }
  if (observed === null || baseline === null || baseline <= 0 || requests < minRequests) {
    const why = compared.length === 0 ? 'no device has a p99 of the previous version to compare with' : `${requests} requests on ${devices(compared.length)} with a previous p99 to compare with, ${minRequests} needed`;
    return noData(base, `p99 latency not judged: ${why}`);
  }
  const ratio = observed / baseline;
  const failed = ratio > allowed + ROUNDING_SLACK;
  return judged(base, failed, `p99 ${ms(observed)} on ${devices(compared.length)} vs ${ms(baseline)} before (×${ratio.toFixed(2)} ${failed ? '>' : '≤'} ×${allowed.toFixed(decimalsFor(allowed))} allowed), ${requests} requests`);
}

/**
 * Only when minShadowAgreement is set: the lowest agreement among devices that compared at least one
 * request; `no-data` while none has.
 */
export function shadowGate(gates: WaveGates | undefined, reports: readonly (ShadowReport | null)[], at: string): GateResult | undefined {
  const required = gates?.minShadowAgreement;
  if (required === undefined) return undefined;
  const sampled = reports.filter((r): r is ShadowReport => r !== null && r.samples > 0);
  const base = { gate: 'shadow-agreement', baseline: null, threshold: required, at } as const;
  const d = decimalsFor(required);
  if (sampled.length === 0) {
    return noData({ ...base, observed: null }, `no shadow samples yet from ${devices(reports.length)} (${required.toFixed(d)} agreement required)`);
  }
  const lowest = sampled.reduce((low, r) => (r.agreement < low.agreement ? r : low));
  const failed = lowest.agreement < required;
  return judged(
    { ...base, observed: lowest.agreement },
    failed,
    `lowest shadow agreement ${lowest.agreement.toFixed(d)} over ${lowest.samples} samples (${failed ? '<' : '≥'} ${required.toFixed(d)} required), ` +
      `max abs diff ${round(lowest.maxAbsDiff)}, p50 ${ms(lowest.candidateP50Ms)} vs ${ms(lowest.activeP50Ms)} active; ${sampled.length} of ${devices(reports.length)} reported`,
  );
}

/**
 * Only when maxDriftScore is set: the highest latest drift score of the new version among the
 * wave's switched devices (`scores` holds the devices that have an evaluation; the others do not
 * block); `no-data` while none has one.
 */
export function driftGate(gates: WaveGates | undefined, deviceIds: readonly string[], scores: ReadonlyMap<string, number>, at: string): GateResult | undefined {
  const allowed = gates?.maxDriftScore;
  if (allowed === undefined) return undefined;
  const base = { gate: 'drift', baseline: null, threshold: allowed, at } as const;
  let highest: { deviceId: string; score: number } | null = null;
  let evaluated = 0;
  for (const deviceId of deviceIds) {
    const score = scores.get(deviceId);
    if (score === undefined) continue;
    evaluated++;
    if (highest === null || score > highest.score) highest = { deviceId, score };
  }
  if (highest === null) return noData({ ...base, observed: null }, `no drift evaluation of the new version yet on ${devices(deviceIds.length)} (score ≤ ${allowed.toFixed(2)} allowed)`);
  const failed = highest.score > allowed + ROUNDING_SLACK;
  return judged(
    { ...base, observed: highest.score },
    failed,
    `highest drift score ${highest.score.toFixed(2)} on ${highest.deviceId} (${failed ? '>' : '≤'} ${allowed.toFixed(2)} allowed); ${evaluated} of ${devices(deviceIds.length)} evaluated`,
  );
}

/** What a gate measured and against what; the verdict and its message are added by judged/noData. */
type GateValues = Omit<GateResult, 'status' | 'message'>;

function judged(values: GateValues, failed: boolean, message: string): GateResult {
  return { ...values, status: failed ? 'failed' : 'passed', message };
}

/** Not enough seen to judge: recorded, and never halts a wave. */
function noData(values: GateValues, message: string): GateResult {
  return { ...values, status: 'no-data', message };
}

function sum<T>(items: readonly T[], value: (item: T) => number): number {
  return items.reduce((total, item) => total + value(item), 0);
}

function devices(n: number): string {
  return `${n} ${n === 1 ? 'device' : 'devices'}`;
}

/** Decimals to show a share with: two, or as many as the threshold needs (0.005 shows as 0.005). */
function decimalsFor(threshold: number): number {
  const fraction = String(threshold).split('.')[1] ?? '';
  return Math.min(6, Math.max(2, fraction.length));
}

function signed(x: number, decimals: number): string {
  return `${x < 0 ? '−' : '+'}${Math.abs(x).toFixed(decimals)}`;
}

function ms(x: number): string {
  return `${round(x)} ms`;
}

/** Three significant digits, without exponent notation for the magnitudes we show. */
function round(x: number): string {
  return String(Number(x.toPrecision(3)));
}
