import { GatewayError } from '@homelab/bus';
import type { LabConfig, Provider } from '@homelab/config';
import type { CircuitBreaker } from './breaker.ts';
import type { ConcurrencyLimiter } from './limiter.ts';
import type { Candidate } from './resolve.ts';

/** How one try on a worker went. */
export type AttemptResult =
  | { kind: 'answered'; finished: Promise<void> }
  | { kind: 'failed'; error: GatewayError };

/** The worker side of one request: the NATS messages, behind an interface the tests can fake. */
export interface WorkerLink {
  /** One try: resolves once the worker committed an answer (`finished` when it is over), or failed before content. */
  attempt(candidate: Candidate, attempt: number, reason: string): Promise<AttemptResult>;
  /** Tells the worker of an attempt that timed out to let go, so a late answer never follows a fallback. */
  abandon(attempt: number): void;
  /** The requester went away: no further attempts. */
  readonly cancelled: boolean;
}

/** The router's state of each backend, shared by every request of this replica. */
export interface BackendGates {
  limiters: ReadonlyMap<Provider, ConcurrencyLimiter>;
  breakers: ReadonlyMap<Provider, CircuitBreaker>;
  /** Until when (epoch ms) a backend asked not to be called (its `Retry-After`). */
  coolingUntil: Map<Provider, number>;
}

export interface AttemptSettings {
  config: Pick<LabConfig, 'backends' | 'routing'>;
  gates: BackendGates;
  sleep(ms: number): Promise<void>;
  now(): number;
  random(): number;
}

export type Placement =
  | { outcome: 'answered'; attempts: number; candidate: Candidate; reason: string }
  | { outcome: 'failed'; attempts: number; error: GatewayError }
  | { outcome: 'cancelled'; attempts: number };

/** Error codes that say the backend itself is in trouble (they count against its circuit). */
const BACKEND_FAULTS = new Set(['backend_unavailable', 'backend_error', 'timeout', 'no_backend']);

/**
 * Tries the planned candidates in order until one answers: per candidate a concurrency slot (or
 * a wait for one), its circuit breaker's permission, and up to `attemptsPerBackend` tries with
 * backoff (or the backend's own `Retry-After`). A failure before any content moves on; a request
 * that cannot succeed anywhere (a bad request) stops at once. `route` collects the reasons.
 */
export async function placeRequest(candidates: readonly Candidate[], route: string[], link: WorkerLink, settings: AttemptSettings, requestedModel: string): Promise<Placement> {
  const { config, gates } = settings;
  const retry = config.routing.retry;
  let attempts = 0;
  let lastError: GatewayError | undefined;
  let saturated = 0;
  for (const candidate of candidates) {
    const { provider } = candidate;
    const cooling = (gates.coolingUntil.get(provider) ?? 0) - settings.now();
    if (cooling > 0) {
      route.push(`${provider} rate limited`);
      lastError ??= new GatewayError('rate_limited', `${provider} asked to wait`, { retryAfterMs: cooling });
      continue;
    }
    const limiter = gates.limiters.get(provider)!;
    const backend = config.backends[provider]!;
    const slot = limiter.tryAcquire() || (backend.whenSaturated === 'wait' && await limiter.acquire(config.routing.queueTimeoutMs));
    if (!slot) { saturated++; route.push(`${provider} saturated`); continue; }
    const breaker = gates.breakers.get(provider)!;
    if (!breaker.allow()) { limiter.release(); route.push(`${provider} circuit open`); continue; }

    let released = false;
    const release = (): void => { if (!released) { released = true; limiter.release(); } };
    for (let tryNo = 1; tryNo <= retry.attemptsPerBackend; tryNo++) {
      if (link.cancelled) { breaker.release(); release(); return { outcome: 'cancelled', attempts }; }
      attempts++;
      const reason = [...route, provider].join(' > ');
      const result = await link.attempt(candidate, attempts, reason);
      if (result.kind === 'answered') {
        breaker.success();
        // The slot is held until the answer is over (or the total timeout passed).
        void result.finished.then(release);
        return { outcome: 'answered', attempts, candidate, reason };
      }
      const error = result.error;
      lastError = error;
      if (error.code === 'timeout') link.abandon(attempts);
      if (error.code === 'cancelled') { breaker.release(); release(); return { outcome: 'cancelled', attempts }; }
      // No worker for this backend (`no_backend` from the bus), or a backend that cannot do what is
      // asked (`unsupported`), is this backend's limit, not the request's fault: on to the next
      // candidate, without trying this one again.
      const nextCandidate = error.code === 'no_backend' || error.code === 'unsupported';
      if (!error.retryable && !nextCandidate) { breaker.release(); release(); return { outcome: 'failed', attempts, error }; }
      if (BACKEND_FAULTS.has(error.code)) breaker.failure(error.code);
      else breaker.release();
      route.push(`${provider} ${error.code === 'no_backend' ? 'no worker' : error.code === 'timeout' ? 'first-token timeout' : error.code}`);
      if (nextCandidate) break;
      let waitMs = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** (tryNo - 1)) * (0.5 + settings.random() / 2);
      if (error.retryAfterMs !== undefined) {
        if (error.retryAfterMs > retry.maxRetryAfterMs) {
          // Too long to wait here: remember it, so other requests skip this backend until then.
          gates.coolingUntil.set(provider, settings.now() + error.retryAfterMs);
          break;
        }
        waitMs = error.retryAfterMs;
      }
      if (tryNo === retry.attemptsPerBackend || breaker.state !== 'closed') break;
      await settings.sleep(waitMs);
    }
    release();
  }

  if (!lastError && saturated > 0) {
    lastError = new GatewayError('saturated', `every backend for '${requestedModel}' is at its concurrency limit; retry shortly`, { retryAfterMs: 1000 });
  }
  const error = lastError ?? new GatewayError('no_backend', `no backend available for '${requestedModel}'`);
  return { outcome: 'failed', attempts, error: candidates.length > 1 ? withTries(error, attempts, candidates.length) : error };
}

/** The last error, saying how hard the router tried (not for a bad request or saturation, where it did not). */
function withTries(error: GatewayError, attempts: number, backends: number): GatewayError {
  if (error.code === 'invalid_request' || error.code === 'unsupported' || error.code === 'saturated') return error;
  return new GatewayError(error.code, `${error.message} (tried ${attempts} time${attempts === 1 ? '' : 's'} on ${backends} backends)`, {
    status: error.status, ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }),
  });
}
