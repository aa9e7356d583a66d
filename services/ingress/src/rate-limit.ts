/**
 * Token buckets keyed by client address or API key: `perMinute` requests a minute, with bursts up
 * to that many. Buckets that refilled completely are forgotten, so memory follows active clients.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Takes one token; `retryAfterS` says when the next one is there. */
  take(key: string, perMinute: number): { ok: true } | { ok: false; retryAfterS: number } {
    const now = this.#now();
    const rate = perMinute / 60_000;
    const bucket = this.#buckets.get(key);
    const tokens = bucket ? Math.min(perMinute, bucket.tokens + (now - bucket.at) * rate) : perMinute;
    if (tokens >= 1) {
      this.#buckets.set(key, { tokens: tokens - 1, at: now });
      if (this.#buckets.size > 10_000) this.#prune(now, rate, perMinute);
      return { ok: true };
    }
    this.#buckets.set(key, { tokens, at: now });
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - tokens) / rate / 1000)) };
  }

  #prune(now: number, rate: number, perMinute: number): void {
    for (const [key, b] of this.#buckets) if (b.tokens + (now - b.at) * rate >= perMinute) this.#buckets.delete(key);
  }
}
