import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../packages/server/dist/api/rate-limit.js';

describe('RateLimiter', () => {
  it('allows a burst, then one request per 1/rate seconds, per key', () => {
    let now = 0;
    const rl = new RateLimiter(2, 3, () => now);
    expect([1, 2, 3].map(() => rl.take('k').ok)).toEqual([true, true, true]);
    expect(rl.take('k')).toEqual({ ok: false, retryAfterMs: 500 });
    expect(rl.take('other').ok).toBe(true);
    now = 499;
    expect(rl.take('k').ok).toBe(false);
    now = 500;
    expect(rl.take('k').ok).toBe(true);
    now = 100_000; // refills to the burst, not beyond
    expect([1, 2, 3, 4].map(() => rl.take('k').ok)).toEqual([true, true, true, false]);
  });

  it('is unlimited with rate 0', () => {
    const rl = new RateLimiter(0, 1, () => 0);
    expect(Array.from({ length: 100 }, () => rl.take('k').ok).every(Boolean)).toBe(true);
  });
});
