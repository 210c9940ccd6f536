import type { HealthWindowSpec } from '@edgefleet/shared';
import { percentile } from '../inference/latency-window.js';
import type { ModelTable, RecentStats } from '../inference/types.js';

export const HEALTH_DEFAULTS = { maxErrorRate: 0.5, minRequests: 20 } as const;
/** Latency samples of the new version kept for its p99: the most recent ones, so memory stays flat. */
const MAX_LATENCY_SAMPLES = 2048;

/**
 * Pure: why the new version is unhealthy against the previous one, or undefined while it is not (or
 * while too few requests were served to say). The error rate is judged on its own; the p99 ratio
 * only when the previous version served enough requests to have a p99 worth comparing.
 */
export function judgeHealth(observed: RecentStats, baseline: RecentStats, spec: HealthWindowSpec): string | undefined {
  const minRequests = spec.minRequests ?? HEALTH_DEFAULTS.minRequests;
  if (observed.requests < minRequests) return undefined;
  const maxErrorRate = spec.maxErrorRate ?? HEALTH_DEFAULTS.maxErrorRate;
  const rate = observed.errors / observed.requests;
  if (rate > maxErrorRate) {
    const before = baseline.requests > 0 ? `, the previous version ${(baseline.errors / baseline.requests).toFixed(3)} (${baseline.errors} of ${baseline.requests})` : '';
    return `error rate ${rate.toFixed(3)} (${observed.errors} of ${observed.requests} requests) is over maxErrorRate ${maxErrorRate}${before}`;
  }
  if (spec.maxP99Ratio !== undefined && baseline.requests - baseline.errors >= minRequests && baseline.p99Ms > 0) {
    const ratio = observed.p99Ms / baseline.p99Ms;
    if (ratio > spec.maxP99Ratio) {
      return `p99 ${observed.p99Ms.toFixed(2)} ms is ${ratio.toFixed(2)}x the previous version's ${baseline.p99Ms.toFixed(2)} ms, over maxP99Ratio ${spec.maxP99Ratio}`;
    }
  }
  return undefined;
}

export interface HealthWatchOptions {
  table: ModelTable;
  name: string;
  version: string;
  spec: HealthWindowSpec;
  /** The previous version's recent requests, taken at the switch. */
  baseline: RecentStats;
  /** Aborted when the window no longer matters (a newer deployment of the model, the agent stopping). */
  signal: AbortSignal;
  /** Called at most once, when the new version is found unhealthy within the window. */
  onUnhealthy: (reason: string, observed: RecentStats) => void;
  /** Called when the window ends without a verdict against the new version. */
  onPassed?: (observed: RecentStats) => void;
}

/**
 * Watches the requests the local API records for name@version for `spec.durationSec` and judges them
 * (coalesced to once per turn of the event loop, so a burst of requests costs one p99). Never
 * touches a request: it only reads what the table records.
 */
export function watchHealth(opts: HealthWatchOptions): void {
  const { name, version, spec } = opts;
  const latencies: number[] = [];
  let next = 0;
  let requests = 0;
  let errors = 0;
  let judging: NodeJS.Immediate | undefined;
  let done = false;

  const observed = (): RecentStats => ({ requests, errors, p99Ms: percentile([...latencies].sort((a, b) => a - b), 0.99) });

  function finish(): void {
    done = true;
    unsubscribe();
    clearTimeout(timer);
    if (judging) clearImmediate(judging);
    opts.signal.removeEventListener('abort', finish);
  }

  function judge(): void {
    judging = undefined;
    if (done) return;
    const now = observed();
    const reason = judgeHealth(now, opts.baseline, spec);
    if (reason === undefined) return;
    finish();
    opts.onUnhealthy(reason, now);
  }

  const unsubscribe = opts.table.onRecord((n, v, ms, ok) => {
    if (n !== name || v !== version || done) return;
    requests++;
    if (ok) {
      if (latencies.length < MAX_LATENCY_SAMPLES) latencies.push(ms);
      else latencies[next] = ms;
      next = (next + 1) % MAX_LATENCY_SAMPLES;
    } else {
      errors++;
    }
    judging ??= setImmediate(judge);
  });
  const timer = setTimeout(() => {
    if (done) return;
    const now = observed();
    // The last requests get their say before the window closes.
    const reason = judgeHealth(now, opts.baseline, spec);
    finish();
    if (reason === undefined) opts.onPassed?.(now);
    else opts.onUnhealthy(reason, now);
  }, spec.durationSec * 1000);
  timer.unref();
  if (opts.signal.aborted) finish();
  else opts.signal.addEventListener('abort', finish, { once: true });
}
