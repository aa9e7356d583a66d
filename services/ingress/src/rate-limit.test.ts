import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.ts';

describe('RateLimiter', () => {
  it('allows a burst of perMinute, then one request per 60/perMinute seconds', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    for (let i = 0; i < 6; i++) expect(limiter.take('ip', 6)).toEqual({ ok: true });
    expect(limiter.take('ip', 6)).toEqual({ ok: false, retryAfterS: 10 });
    now += 10_000;
    expect(limiter.take('ip', 6)).toEqual({ ok: true });
    expect(limiter.take('other', 6)).toEqual({ ok: true });
  });
});
