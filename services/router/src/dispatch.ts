import {
  GatewayError, H, KeepaliveSender, childTraceparent, publishCancel, createHeaders, keyAllowsModel, errorFromReply, newRequestId, nowMs, respondError, traceIdOf, workerSubject,
  type EventPublisher, type KeyRecord, type KeyRegistry, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { ChatRequestPayload, EmbeddingsRequestPayload } from '@homelab/dialects';
import type { Logger } from '@homelab/logging';
import { HomelabSpanAttr, genAiAttributes, genAiSpanName, natsAttributes, type Hop, type Tracing } from '@homelab/tracing';
import { CircuitBreaker, type CircuitTransition } from './breaker.ts';
import { ConcurrencyLimiter } from './limiter.ts';
import { planCandidates, type BackendConditions } from './policy.ts';
import { PROVIDERS, resolveModel, type Candidate, type ModelView, type Provider } from './resolve.ts';
import { CLOUD_PROVIDERS } from './spend.ts';
import type { UsageBook } from './keys.ts';

export interface DispatcherDeps {
  nc: NatsConnection;
  log: Logger;
  config: LabConfig;
  models: ModelView;
  events: EventPublisher;
  /** The router's reply mux: requests to workers without a subscription or timer each. */
  mux: ReplyMux;
  /** The health service's view of the backends (none: only the router's own signals count). */
  isDown?: (provider: Provider) => boolean;
  /** Whether today's cloud spend reached its ceiling. */
  cloudBudgetReached?: () => boolean;
  onCircuitTransition?: (t: CircuitTransition) => void;
  /** One span per request when tracing is on. */
  tracing?: Tracing;
  /** API keys and their cloud usage, when the edge requires keys. */
  keys?: KeyRegistry;
  usage?: UsageBook;
}

export type Operation = 'chat' | 'embeddings';

/** How one attempt on a worker went. */
type AttemptResult =
  | { kind: 'answered'; finished: Promise<void> }
  | { kind: 'failed'; error: GatewayError };

const decoder = new TextDecoder();
const ACK = new Uint8Array(0);

/** Error codes that say the backend itself is in trouble (they count against its circuit). */
const BACKEND_FAULTS = new Set(['backend_unavailable', 'backend_error', 'timeout', 'no_backend']);

/**
 * Hands each request to a worker and stays out of the answer's path: the worker streams straight
 * to the requester. The router waits only for the worker's short outcome, so that a backend that
 * fails before any content reached the client can be retried or replaced by the next candidate,
 * and keeps the backend's concurrency slot until the worker says the answer is over.
 */
export class Dispatcher {
  readonly #deps: DispatcherDeps;
  readonly #cancelled = new Set<string>();
  readonly breakers = new Map<Provider, CircuitBreaker>();
  readonly limiters = new Map<Provider, ConcurrencyLimiter>();
  /** Until when a backend asked not to be called (its `Retry-After`). */
  readonly #coolingUntil = new Map<Provider, number>();
  readonly #conditions: BackendConditions;
  /** While the router holds a request (queued, between retries), its requester hears it is alive. */
  readonly #keepalive: KeepaliveSender;

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
    for (const p of PROVIDERS) {
      const backend = deps.config.backends[p];
      if (!backend) continue;
      this.breakers.set(p, new CircuitBreaker(p, deps.config.routing.breaker, (t) => this.#onTransition(t)));
      this.limiters.set(p, new ConcurrencyLimiter(backend.maxConcurrent, backend.maxQueue));
    }
    this.#keepalive = new KeepaliveSender((replyTo, headers) => deps.nc.publish(replyTo, undefined, { headers }));
    this.#conditions = {
      isDown: (p) => deps.isDown?.(p) ?? false,
      isOpen: (p) => this.breakers.get(p)?.state === 'open',
      cloudBudgetReached: () => deps.cloudBudgetReached?.() ?? false,
    };
  }

  /** A request refused before any dispatch (invalid body, unknown model): one event for it too. */
  recordRejected(msg: Msg, operation: Operation, error: GatewayError): void {
    let requestedModel = '';
    try {
      const body = JSON.parse(decoder.decode(msg.data)) as { model?: unknown };
      if (typeof body.model === 'string') requestedModel = body.model.slice(0, 256);
    } catch { /* the body was not JSON: that was the error */ }
    const requestId = msg.headers?.get(H.requestId) || newRequestId();
    this.#deps.events.publish('inferenceCompleted', {
      requestId, operation, stream: false, requestedModel, status: 'error', httpStatus: error.status, errorType: error.code,
      attempts: 0, routeReason: 'rejected', latencyMs: 0, finishedAt: new Date().toISOString(),
    }, { msgId: `${requestId}:router` }).catch(() => {});
  }

  /** The API key the ingress accepted (by name), checked again here: it may have been revoked since, or not allow this model. */
  #keyOf(headers: MsgHeaders | undefined, model: string): KeyRecord | undefined {
    const name = headers?.get(H.apiKey);
    if (!name || !this.#deps.keys) return undefined;
    const key = this.#deps.keys.byName(name);
    if (!key) throw new GatewayError('invalid_api_key', `the API key '${name}' is not valid (revoked?)`);
    if (!keyAllowsModel(key, model)) throw new GatewayError('forbidden', `key '${name}' may not use the model '${model}'`, { param: 'model' });
    return key;
  }

  /** A key's backends, and its cloud budget: cloud candidates are dropped once the budget is spent. */
  #keyScope(key: KeyRecord | undefined, candidates: Candidate[]): { candidates: Candidate[]; skipped: string[]; budget?: 'daily' | 'monthly' } {
    if (!key) return { candidates, skipped: [] };
    const skipped: string[] = [];
    const budget = this.#deps.usage?.exhausted(key);
    const kept = candidates.filter((c) => {
      if (key.backends && !key.backends.includes(c.provider)) { skipped.push(`${c.provider} not allowed for key`); return false; }
      if (budget && CLOUD_PROVIDERS.has(c.provider)) { skipped.push(`${c.provider} skipped (${budget} budget of key ${key.name} reached)`); return false; }
      return true;
    });
    return { candidates: kept, skipped, ...(budget && kept.length === 0 && candidates.some((c) => CLOUD_PROVIDERS.has(c.provider)) && { budget }) };
  }

  /** Requests this router is still placing (queued, trying, backing off). */
  inFlight(): number {
    return this.#keepalive.size;
  }

  stop(): void {
    this.#keepalive.stop();
  }

  /** A requester went away: no further attempts for that request. */
  cancel(requestId: string): void {
    this.#cancelled.add(requestId);
    setTimeout(() => this.#cancelled.delete(requestId), 60_000).unref();
  }

  chat(msg: Msg, payload: ChatRequestPayload): Promise<void> {
    return this.#dispatch('chat', msg, payload.model, payload.stream === true);
  }

  embeddings(msg: Msg, payload: EmbeddingsRequestPayload): Promise<void> {
    return this.#dispatch('embeddings', msg, payload.model, false);
  }

  async #dispatch(operation: Operation, msg: Msg, requestedModel: string, stream: boolean): Promise<void> {
    const receivedAt = nowMs();
    const inHeaders = msg.headers;
    const requestId = inHeaders?.get(H.requestId) || newRequestId();
    if (!msg.reply) return; // nobody to answer: a publish without reply subject
    const tracing = this.#deps.tracing;
    // Span attributes are built only when tracing is on: the request path pays nothing otherwise.
    const hop = tracing?.enabled ? tracing.startHop(genAiSpanName(operation, requestedModel), {
      traceparent: inHeaders?.get(H.traceparent), kind: 'server', startTime: receivedAt,
      attributes: { ...natsAttributes(msg.subject), ...genAiAttributes({ operation, requestModel: requestedModel }), [HomelabSpanAttr.requestId]: requestId },
    }) : undefined;
    const traceparent = hop?.traceparent ?? childTraceparent(inHeaders?.get(H.traceparent));
    const held = this.#keepalive.hold(msg.reply);
    try {
      await this.#route(operation, msg, requestedModel, stream, { requestId, traceparent, receivedAt, inHeaders, replyTo: msg.reply, hop });
    } catch (err) {
      hop?.fail(err, (err as { code?: string }).code);
      throw err;
    } finally {
      held.release();
      hop?.end();
    }
  }

  async #route(operation: Operation, msg: Msg, requestedModel: string, stream: boolean, r: { requestId: string; traceparent: string; receivedAt: number; inHeaders: MsgHeaders | undefined; replyTo: string; hop: Hop | undefined }): Promise<void> {
    const { config } = this.#deps;
    const { requestId, traceparent, receivedAt, inHeaders } = r;

    const localOnly = config.routing.localOnly || inHeaders?.get(H.route) === 'local-only';
    const key = this.#keyOf(inHeaders, requestedModel);
    const resolution = resolveModel(requestedModel, config, this.#deps.models);
    const { candidates: allowed, skipped: keySkipped, budget } = this.#keyScope(key, resolution.candidates);
    const plan = planCandidates(allowed, config.routing.policy, localOnly, this.#conditions);
    const route: string[] = [resolution.reason, ...resolution.skipped, ...keySkipped, ...plan.skipped];
    const ctx = { msg, requestId, traceparent, requestedModel, receivedAt, operation, stream, route, hop: r.hop };
    if (plan.localOnlyBlocked) {
      return this.#fail(ctx, 0, new GatewayError('no_backend', `local-only: no local backend serves '${requestedModel}'; the request was not sent to a cloud API`, { param: 'model' }));
    }
    if (plan.candidates.length === 0 && budget && key) {
      const limit = budget === 'daily' ? key.dailyTokens : key.monthlyTokens;
      return this.#fail(ctx, 0, new GatewayError('budget_exceeded', `the ${budget} cloud token budget of key '${key.name}' (${limit} tokens) is used up; local models are still served if the key allows them`));
    }
    if (allowed.length === 0) {
      return this.#fail(ctx, 0, new GatewayError('forbidden', `key '${key?.name}' may not use the backends that serve '${requestedModel}'`, { param: 'model' }));
    }
    if (plan.candidates.length === 0) {
      const retryIn = Math.min(...resolution.candidates.map((c) => this.breakers.get(c.provider)?.retryInMs() || Infinity));
      return this.#fail(ctx, 0, new GatewayError('no_backend', `no backend for '${requestedModel}' is available now (${plan.skipped.join(', ')})`, {
        ...(Number.isFinite(retryIn) && { retryAfterMs: retryIn }),
      }));
    }

    const { retry } = config.routing;
    let attempt = 0;
    let lastError: GatewayError | undefined;
    let saturated = 0;
    for (const candidate of plan.candidates) {
      const provider = candidate.provider;
      const cooling = (this.#coolingUntil.get(provider) ?? 0) - Date.now();
      if (cooling > 0) { route.push(`${provider} rate limited`); lastError ??= new GatewayError('rate_limited', `${provider} asked to wait`, { retryAfterMs: cooling }); continue; }
      const limiter = this.limiters.get(provider)!;
      const backend = config.backends[provider]!;
      const slot = limiter.tryAcquire() || (backend.whenSaturated === 'wait' && await limiter.acquire(config.routing.queueTimeoutMs));
      if (!slot) { saturated++; route.push(`${provider} saturated`); continue; }
      const breaker = this.breakers.get(provider)!;
      if (!breaker.allow()) { limiter.release(); route.push(`${provider} circuit open`); continue; }

      let released = false;
      const release = (): void => { if (!released) { released = true; limiter.release(); } };
      for (let tryNo = 1; tryNo <= retry.attemptsPerBackend; tryNo++) {
        if (this.#cancelled.has(requestId)) { breaker.release(); release(); return; }
        attempt++;
        const reason = [...route, provider].join(' > ');
        const headers = workerHeaders({ requestId, traceparent, replyTo: r.replyTo, candidate, requestedModel, attempt, reason, receivedAt, apiKey: key?.name });
        const result = await this.#attempt(workerSubject(provider, operation), msg.data, headers, backend.firstTokenTimeoutMs, backend.totalTimeoutMs + 5000);
        if (result.kind === 'answered') {
          breaker.success();
          r.hop?.setAttributes({ ...genAiAttributes({ operation, provider, responseModel: candidate.model }), [HomelabSpanAttr.attempt]: attempt, [HomelabSpanAttr.routeReason]: reason });
          // The slot is held until the answer is over (or the total timeout passed).
          void result.finished.then(release);
          return;
        }
        const error = result.error;
        lastError = error;
        // The worker of a timed-out attempt lets go, so a late answer never reaches the client after a fallback.
        if (error.code === 'timeout') publishCancel(this.#deps.nc, requestId, attempt);
        if (error.code === 'cancelled') { breaker.release(); release(); return; }
        // No worker for this backend (`no_backend` from the bus) is the backend's trouble, not the
        // request's: move on to the next candidate, although the error code itself is not retryable.
        const noWorker = error.code === 'no_backend';
        if (!error.retryable && !noWorker) { breaker.release(); release(); return this.#fail(ctx, attempt, error); }
        if (BACKEND_FAULTS.has(error.code)) breaker.failure(error.code);
        else breaker.release();
        route.push(`${provider} ${error.code === 'no_backend' ? 'no worker' : error.code === 'timeout' ? 'first-token timeout' : error.code}`);
        if (noWorker) break; // no worker to retry on
        let waitMs = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** (tryNo - 1)) * (0.5 + Math.random() / 2);
        if (error.retryAfterMs !== undefined) {
          if (error.retryAfterMs > retry.maxRetryAfterMs) {
            // Too long to wait here: remember it, so other requests skip this backend until then.
            this.#coolingUntil.set(provider, Date.now() + error.retryAfterMs);
            break;
          }
          waitMs = error.retryAfterMs;
        }
        if (tryNo === retry.attemptsPerBackend || breaker.state !== 'closed') break;
        await new Promise((r) => setTimeout(r, waitMs));
      }
      release();
    }

    if (!lastError && saturated > 0) {
      lastError = new GatewayError('saturated', `every backend for '${requestedModel}' is at its concurrency limit; retry shortly`, { retryAfterMs: 1000 });
    }
    const error = lastError ?? new GatewayError('no_backend', `no backend available for '${requestedModel}'`);
    const tried = plan.candidates.length > 1 && error.code !== 'invalid_request' && error.code !== 'saturated'
      ? new GatewayError(error.code, `${error.message} (tried ${attempt} time${attempt === 1 ? '' : 's'} on ${plan.candidates.length} backends)`, { status: error.status, ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }) })
      : error;
    return this.#fail(ctx, attempt, tried);
  }

  /**
   * One try on a worker. The worker answers the requester directly and tells us on our inbox:
   * `started` (streamed content reached the requester) then later `done`, or `done` at once, or an
   * error before any content (acknowledged, so the worker knows we will handle it).
   */
  #attempt(subject: string, data: Uint8Array, headers: MsgHeaders, firstTokenTimeoutMs: number, totalTimeoutMs: number): Promise<AttemptResult> {
    const { nc, mux } = this.#deps;
    return new Promise((resolve) => {
      let answered = false;
      let finish: () => void = () => {};
      const finished = new Promise<void>((r) => { finish = r; });
      const inbox = mux.open(
        (reply) => {
          if (!answered) {
            if (reply.data.length === 0 && reply.headers?.code === 503) {
              inbox.close();
              resolve({ kind: 'failed', error: new GatewayError('no_backend', `no worker answers ${subject}`) });
              return;
            }
            const error = errorFromReply(reply.headers, reply.data);
            if (error) {
              if (reply.reply) nc.publish(reply.reply, ACK);
              inbox.close();
              resolve({ kind: 'failed', error });
              return;
            }
            answered = true;
            resolve({ kind: 'answered', finished });
            if (decoder.decode(reply.data) === 'started') { inbox.touch(totalTimeoutMs); return; }
          }
          // `done`, or an error after content: the answer is over.
          if (reply.reply) nc.publish(reply.reply, ACK);
          inbox.close();
          finish();
        },
        (reason) => {
          inbox.close();
          if (answered) finish();
          else if (reason === 'timeout') resolve({ kind: 'failed', error: new GatewayError('timeout', `no first token from ${subject.split('.')[1]} within ${firstTokenTimeoutMs} ms`) });
          else resolve({ kind: 'failed', error: new GatewayError('backend_unavailable', 'the router lost its message bus connection') });
        },
        firstTokenTimeoutMs,
      );
      nc.publish(subject, data, { reply: inbox.subject, headers });
    });
  }

  #fail(ctx: { msg: Msg; requestId: string; traceparent: string; requestedModel: string; receivedAt: number; operation: Operation; stream: boolean; route: string[]; hop?: Hop | undefined }, attempts: number, error: GatewayError): void {
    const routeReason = ctx.route.join(' > ');
    ctx.hop?.fail(error, error.code).setAttributes({ [HomelabSpanAttr.attempt]: attempts, [HomelabSpanAttr.routeReason]: routeReason });
    const h = createHeaders();
    h.set(H.requestId, ctx.requestId);
    h.set(H.attempt, String(attempts));
    h.set(H.routeReason, routeReason);
    respondError(ctx.msg, error, h);
    this.#deps.events.publish('inferenceCompleted', {
      requestId: ctx.requestId, operation: ctx.operation, stream: ctx.stream, requestedModel: ctx.requestedModel, status: 'error',
      httpStatus: error.status, errorType: error.code, attempts, routeReason, latencyMs: nowMs() - ctx.receivedAt, finishedAt: new Date().toISOString(),
      ...(ctx.msg.headers?.get(H.apiKey) && { apiKey: ctx.msg.headers.get(H.apiKey) }),
      ...(traceIdOf(ctx.traceparent) && { traceId: traceIdOf(ctx.traceparent)! }),
    }, { msgId: `${ctx.requestId}:router` }).catch((err: unknown) => this.#deps.log.warn({ requestId: ctx.requestId, err: (err as Error).message }, 'could not store inference.completed'));
  }

  #onTransition(t: CircuitTransition): void {
    this.#deps.log.warn({ backend: t.backend, state: t.state, previous: t.previous, reason: t.reason }, 'circuit breaker changed state');
    this.#deps.onCircuitTransition?.(t);
  }
}

function workerHeaders(o: { requestId: string; traceparent: string; replyTo: string; candidate: Candidate; requestedModel: string; attempt: number; reason: string; receivedAt: number; apiKey?: string | undefined }): MsgHeaders {
  const h = createHeaders();
  h.set(H.requestId, o.requestId);
  h.set(H.traceparent, o.traceparent);
  h.set(H.replyTo, o.replyTo);
  h.set(H.upstreamModel, o.candidate.model);
  h.set(H.requestedModel, o.requestedModel);
  h.set(H.attempt, String(o.attempt));
  h.set(H.routeReason, o.reason);
  h.set(H.receivedAt, o.receivedAt.toFixed(3));
  if (o.apiKey) h.set(H.apiKey, o.apiKey);
  return h;
}
