/**
 * Per-API-key rate limit of the server API: a token bucket per key that refills at `ratePerSec`
 * and holds at most `burst` requests. Pure: time comes from the `now` function.
 */

/** Outcome of {@link RateLimiter.take}. */
export type RateDecision = { ok: true } | { ok: false; retryAfterMs: number };

export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * @param ratePerSec Sustained requests per second; 0 disables the limit.
   * @param burst Requests allowed at once when the bucket is full.
   */
  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request from `key`'s bucket, or says how long until one is available. */
  take(key: string): RateDecision {
    if (this.ratePerSec === 0) return { ok: true };
    const now = this.now();
    let b = this.#buckets.get(key);
    if (!b) this.#buckets.set(key, (b = { tokens: this.burst, at: now }));
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.ratePerSec) / 1000);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - b.tokens) * 1000) / this.ratePerSec) };
  }
}
