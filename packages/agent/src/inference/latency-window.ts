/** Latency samples since the last drain, bounded by reservoir sampling so memory stays flat under load. */
export class LatencyWindow {
  private samples: number[] = [];
  private seen = 0;

  constructor(private readonly capacity = 10_000) {}

  add(ms: number): void {
    this.seen++;
    if (this.samples.length < this.capacity) {
      this.samples.push(ms);
    } else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.capacity) this.samples[j] = ms;
    }
  }

  /** Percentiles of the window (0 when empty), then starts a new window. */
  drain(): { p50: number; p90: number; p99: number } {
    const sorted = this.samples.sort((a, b) => a - b);
    this.samples = [];
    this.seen = 0;
    return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) };
  }
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
