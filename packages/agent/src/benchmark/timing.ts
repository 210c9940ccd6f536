import { EdgefleetError } from '@edgefleet/shared';
import type { BenchmarkSession } from '../inference/benchmark-session.js';
import type { Tensor } from '../inference/types.js';
import { percentile } from '../inference/latency-window.js';

export interface TimingPlan {
  warmup: number;
  runs: number;
  /** Checked between runs: a stopping agent does not wait for the rest. */
  signal?: AbortSignal;
  /**
   * Checked before each run: true once the answer must go out (the request is about to expire).
   * Timing then ends with the samples it has, possibly none; the caller decides what they are worth.
   */
  outOfTime?: () => boolean;
}

/**
 * Latency percentiles of timed runs, in ms rounded to the microsecond (finer is noise). Never below
 * 1 µs: a run of a tiny model can round to 0, which the hub's schema refuses (a run takes time).
 */
export function latencySummary(samples: readonly number[]): { p50Ms: number; p90Ms: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (ms: number) => Math.max(0.001, Math.round(ms * 1000) / 1000);
  return { p50Ms: round(percentile(sorted, 0.5)), p90Ms: round(percentile(sorted, 0.9)) };
}

/**
 * Warm-up runs (not timed: the first runs pay for allocation and caches), then `runs` timed ones,
 * one after another. Each run is an await on the worker's answer, so the main thread's event loop
 * turns between runs. Throws naming the run that failed. Returns fewer than `runs` samples when
 * `outOfTime` says so.
 */
export async function timeRuns(session: BenchmarkSession, inputs: readonly Tensor[], plan: TimingPlan): Promise<number[]> {
  const samples: number[] = [];
  const total = plan.warmup + plan.runs;
  for (let i = 0; i < total; i++) {
    if (plan.signal?.aborted) throw new EdgefleetError('UNAVAILABLE', 'the benchmark was stopped');
    if (plan.outOfTime?.()) break;
    let ms: number;
    try {
      ms = await session.time(inputs);
    } catch (err) {
      const which = i < plan.warmup ? `warm-up run ${i + 1} of ${plan.warmup}` : `timed run ${i - plan.warmup + 1} of ${plan.runs}`;
      throw new EdgefleetError('INVALID_MODEL', `${which} failed: ${(err as Error).message}`, { cause: err });
    }
    if (i >= plan.warmup) samples.push(ms);
  }
  return samples;
}
