import type { RoutingConfig } from '@homelab/config';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitTransition {
  backend: string;
  state: CircuitState;
  previous: CircuitState;
  reason: string;
}

/**
 * One backend's circuit breaker. Closed: requests flow, failures are counted. Open, after
 * `consecutiveFailures` in a row or a `failureRatio` over the window: requests skip the backend
 * for `openMs`. Half-open, after that: one request is let through as a probe; its success closes
 * the circuit, its failure opens it again. The clock is injected so tests need no sleeping.
 */
export class CircuitBreaker {
  readonly backend: string;
  readonly #settings: RoutingConfig['breaker'];
  readonly #now: () => number;
  readonly #onTransition: (t: CircuitTransition) => void;
  #state: CircuitState = 'closed';
  #consecutive = 0;
  #openedAt = 0;
  #probeInFlight = false;
  /** Outcomes in the window: time and success. */
  #window: { at: number; ok: boolean }[] = [];

  constructor(backend: string, settings: RoutingConfig['breaker'], onTransition: (t: CircuitTransition) => void, now: () => number = Date.now) {
    this.backend = backend;
    this.#settings = settings;
    this.#onTransition = onTransition;
    this.#now = now;
  }

  get state(): CircuitState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#settings.openMs) this.#move('half-open', 'open period over');
    return this.#state;
  }

  /** Whether a request may go to this backend now; in half-open, only one probe at a time. */
  allow(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.#probeInFlight) return false;
    this.#probeInFlight = true;
    return true;
  }

  /** Milliseconds until an open circuit lets a probe through (for Retry-After). */
  retryInMs(): number {
    return this.#state === 'open' ? Math.max(0, this.#settings.openMs - (this.#now() - this.#openedAt)) : 0;
  }

  success(): void {
    this.#record(true);
    this.#consecutive = 0;
    if (this.#state === 'half-open') {
      this.#probeInFlight = false;
      this.#move('closed', 'probe succeeded');
    }
  }

  failure(reason: string): void {
    this.#record(false);
    this.#consecutive++;
    if (this.#state === 'half-open') {
      this.#probeInFlight = false;
      this.#open(`probe failed: ${reason}`);
      return;
    }
    if (this.#state !== 'closed') return;
    if (this.#consecutive >= this.#settings.consecutiveFailures) {
      this.#open(`${this.#consecutive} consecutive failures (last: ${reason})`);
      return;
    }
    const failures = this.#window.filter((o) => !o.ok).length;
    if (this.#window.length >= this.#settings.minRequests && failures / this.#window.length >= this.#settings.failureRatio) {
      this.#open(`${failures} of ${this.#window.length} requests failed in ${this.#settings.windowMs} ms (last: ${reason})`);
    }
  }

  /** A probe that ended without telling (cancelled): let another one through. */
  release(): void {
    if (this.#state === 'half-open') this.#probeInFlight = false;
  }

  #record(ok: boolean): void {
    const now = this.#now();
    this.#window.push({ at: now, ok });
    const cutoff = now - this.#settings.windowMs;
    let drop = 0;
    while (drop < this.#window.length && this.#window[drop]!.at < cutoff) drop++;
    if (drop > 0) this.#window = this.#window.slice(drop);
  }

  #open(reason: string): void {
    this.#openedAt = this.#now();
    this.#consecutive = 0;
    this.#window = [];
    this.#move('open', reason);
  }

  #move(state: CircuitState, reason: string): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#onTransition({ backend: this.backend, state, previous, reason });
  }
}
