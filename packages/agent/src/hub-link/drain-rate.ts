/**
 * A token bucket: `perSecond` on average, bursts up to `burst`. Pure (time comes from `now`), so the
 * drain rate is tested by moving a clock, not by waiting.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  /** Takes one token when there is one. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** How long until the next token, in ms. */
  waitMs(): number {
    this.refill();
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.perSecond));
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) * this.perSecond) / 1000);
    this.at = t;
  }
}
