/**
 * Requests whose requester went away, remembered for a minute. A cancel travels straight from the
 * requester to every router and worker, so it can overtake the request it cancels (which goes
 * requester → router → worker): whoever gets the request after its cancel must drop it.
 */
export class CancelledRequests {
  readonly #until = new Map<string, number>();
  readonly #ttlMs: number;
  #sweepAt = 0;

  constructor(ttlMs = 60_000) {
    this.#ttlMs = ttlMs;
  }

  add(requestId: string): void {
    const now = Date.now();
    this.#until.set(requestId, now + this.#ttlMs);
    // Forget the expired ones now and then, not on a timer per entry.
    if (now >= this.#sweepAt) {
      this.#sweepAt = now + this.#ttlMs;
      for (const [id, until] of this.#until) if (until <= now) this.#until.delete(id);
    }
  }

  has(requestId: string): boolean {
    const until = this.#until.get(requestId);
    return until !== undefined && until > Date.now();
  }

  get size(): number {
    return this.#until.size;
  }
}
