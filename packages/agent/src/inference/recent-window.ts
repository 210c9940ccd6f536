import { percentile } from './latency-window.js';
import type { RecentStats } from './types.js';

/**
 * The last `capacity` requests of one model version, overwritten in a ring: what a health window
 * compares a new version against must be the previous version's numbers from just before the
 * switch, not its numbers since start.
 */
export class RecentWindow {
  private readonly ms: Float64Array;
  private readonly ok: Uint8Array;
  private next = 0;
  private count = 0;

  constructor(private readonly capacity = 256) {
    this.ms = new Float64Array(capacity);
    this.ok = new Uint8Array(capacity);
  }

  add(latencyMs: number, ok: boolean): void {
    this.ms[this.next] = latencyMs;
    this.ok[this.next] = ok ? 1 : 0;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.capacity, this.count + 1);
  }

  stats(): RecentStats {
    const okMs: number[] = [];
    let errors = 0;
    for (let i = 0; i < this.count; i++) {
      if (this.ok[i] === 1) okMs.push(this.ms[i]!);
      else errors++;
    }
    return { requests: this.count, errors, p99Ms: percentile(okMs.sort((a, b) => a - b), 0.99) };
  }
}
