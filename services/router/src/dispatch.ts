import {
  CancelledRequests, FORWARDED_CLIENT_HEADERS, GatewayError, H, KeepaliveSender, childTraceparent, createHeaders, newRequestId, nowMs, respondError, traceIdOf,
  type EventPublisher, type InferenceCompleted, type KeyRecord, type KeyRegistry, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux,
} from '@homelab/bus';
import { PROVIDERS, type LabConfig, type Provider } from '@homelab/config';
import { operationName, type Dialect } from '@homelab/dialects';
import type { Logger } from '@homelab/logging';
import { HomelabSpanAttr, genAiAttributes, genAiSpanName, natsAttributes, type Hop, type Tracing } from '@homelab/tracing';
import { placeRequest, type AttemptSettings, type BackendGates } from './attempts.ts';
import { CircuitBreaker, type CircuitTransition } from './breaker.ts';
import { ConcurrencyLimiter } from './limiter.ts';
import { planRequest, type PlanContext } from './plan.ts';
import type { BackendConditions } from './policy.ts';
import type { Candidate, ModelView } from './resolve.ts';
import { keyOfRequest, scriptsScopeOf, type UsageBook } from './keys.ts';
import { natsWorkerLink } from './worker-link.ts';

export interface DispatcherDeps {
  nc: NatsConnection;
  log: Logger;
  config: LabConfig;
  models: ModelView;
  events: EventPublisher;
  /** The process's reply mux: requests to workers without a subscription or timer each. */
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

/** One request as the router sees it. */
interface Placing {
  msg: Msg;
  dialect: Dialect;
  requestId: string;
  traceparent: string;
  requestedModel: string;
  stream: boolean;
  includeUsage: boolean;
  receivedAt: number;
  hop: Hop | undefined;
}

/**
 * Places each request on a worker and stays out of the answer's path: the worker streams straight
 * to the requester. Per request: the key (presented, verified here), the plan (`plan.ts`, pure), the
 * attempts (`attempts.ts`), and when nothing answered, the error in the client's dialect and the
 * request's one `inference.completed` event.
 */
export class Dispatcher {
  readonly #deps: DispatcherDeps;
  readonly #cancelled = new CancelledRequests();
  readonly gates: BackendGates;
  readonly #planContext: PlanContext;
  readonly #attemptSettings: AttemptSettings;
  /** While the router holds a request (queued, between retries), its requester hears it is alive. */
  readonly #keepalive: KeepaliveSender;
  /** What a script that presents no key may do (keys on): the lab's `auth.scripts`. */
  readonly #scriptsScope: KeyRecord;

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
    const breakers = new Map<Provider, CircuitBreaker>();
    const limiters = new Map<Provider, ConcurrencyLimiter>();
    for (const p of PROVIDERS) {
      const backend = deps.config.backends[p];
      if (!backend) continue;
      breakers.set(p, new CircuitBreaker(p, deps.config.routing.breaker, (t) => this.#onTransition(t)));
      limiters.set(p, new ConcurrencyLimiter(backend.maxConcurrent, backend.maxQueue));
    }
    this.gates = { breakers, limiters, coolingUntil: new Map() };
    this.#keepalive = new KeepaliveSender((replyTo, headers) => deps.nc.publish(replyTo, undefined, { headers }));
    const conditions: BackendConditions = {
      isDown: (p) => deps.isDown?.(p) ?? false,
      isOpen: (p) => breakers.get(p)?.state === 'open',
      cloudBudgetReached: () => deps.cloudBudgetReached?.() ?? false,
    };
    this.#planContext = {
      config: deps.config, models: deps.models, conditions,
      budgetSpent: (key) => deps.usage?.exhausted(key),
      retryInMs: (p) => breakers.get(p)?.retryInMs(),
    };
    this.#attemptSettings = {
      config: deps.config, gates: this.gates, now: Date.now, random: Math.random,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    };
    this.#scriptsScope = scriptsScopeOf(deps.config);
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
  }

  /** A request refused before routing (its body did not validate): its one event. */
  rejected(msg: Msg, dialect: Dialect, error: GatewayError): void {
    const requestId = msg.headers?.get(H.requestId) || newRequestId();
    this.#emit({
      requestId, operation: operationName(dialect), dialect: dialect.name, stream: false, requestedModel: '', status: 'error',
      httpStatus: error.status, errorType: error.code, attempts: 0, routeReason: 'rejected', latencyMs: 0, finishedAt: new Date().toISOString(),
    });
  }

  /** Places one validated request of a dialect. */
  async place(msg: Msg, dialect: Dialect, payload: unknown): Promise<void> {
    if (!msg.reply) return; // nobody to answer: a publish without reply subject
    const facts = dialect.routing(payload);
    const receivedAt = nowMs();
    const headers = msg.headers;
    const requestId = headers?.get(H.requestId) || newRequestId();
    const operation = operationName(dialect);
    // Span attributes are built only when tracing is on: the request path pays nothing otherwise.
    const hop = this.#deps.tracing?.enabled ? this.#deps.tracing.startHop(genAiSpanName(operation, facts.model), {
      traceparent: headers?.get(H.traceparent), kind: 'server', startTime: receivedAt,
      attributes: { ...natsAttributes(msg.subject), ...genAiAttributes({ operation, requestModel: facts.model }), [HomelabSpanAttr.requestId]: requestId },
    }) : undefined;
    const placing: Placing = {
      msg, dialect, requestId, receivedAt, hop, requestedModel: facts.model, stream: facts.stream, includeUsage: facts.includeUsage === true,
      traceparent: hop?.traceparent ?? childTraceparent(headers?.get(H.traceparent)),
    };
    const held = this.#keepalive.hold(msg.reply);
    try {
      await this.#place(placing);
    } finally {
      held.release();
      hop?.end();
    }
  }

  async #place(p: Placing): Promise<void> {
    const headers = p.msg.headers;
    let key: KeyRecord | undefined;
    try {
      key = keyOfRequest(headers, this.#deps.keys, this.#scriptsScope);
    } catch (err) {
      return this.#refuse(p, 0, err as GatewayError, ['rejected'], undefined);
    }
    const localOnly = this.#deps.config.routing.localOnly || headers?.get(H.route) === 'local-only' || key?.localOnly === true;
    const plan = planRequest({ model: p.requestedModel, key, localOnly }, this.#planContext);
    if (!plan.ok) return this.#refuse(p, 0, plan.error, plan.route, key);

    const link = natsWorkerLink({
      nc: this.#deps.nc, mux: this.#deps.mux, backends: this.#deps.config.backends, operation: p.dialect.operation, stream: p.stream,
      requestId: p.requestId, body: p.msg.data, isCancelled: () => this.#cancelled.has(p.requestId),
      headersFor: (candidate, attempt, reason) => this.#workerHeaders(p, candidate, attempt, reason, key),
    });
    const placement = await placeRequest(plan.candidates, plan.route, link, this.#attemptSettings, p.requestedModel);
    if (placement.outcome === 'answered') {
      p.hop?.setAttributes({
        ...genAiAttributes({ operation: operationName(p.dialect), provider: placement.candidate.provider, responseModel: placement.candidate.model }),
        [HomelabSpanAttr.attempt]: placement.attempts, [HomelabSpanAttr.routeReason]: placement.reason,
      });
      return;
    }
    if (placement.outcome === 'cancelled') {
      const error = new GatewayError('cancelled', 'the requester went away');
      return this.#record(p, placement.attempts, error, plan.route, key);
    }
    return this.#refuse(p, placement.attempts, placement.error, plan.route, key);
  }

  #workerHeaders(p: Placing, candidate: Candidate, attempt: number, reason: string, key: KeyRecord | undefined): MsgHeaders {
    const inbound = p.msg.headers;
    const h = createHeaders();
    h.set(H.requestId, p.requestId);
    h.set(H.traceparent, p.traceparent);
    h.set(H.replyTo, p.msg.reply!);
    h.set(H.dialect, p.dialect.name);
    h.set(H.upstreamModel, candidate.model);
    h.set(H.requestedModel, p.requestedModel);
    h.set(H.attempt, String(attempt));
    h.set(H.routeReason, reason);
    h.set(H.receivedAt, p.receivedAt.toFixed(3));
    if (p.stream) h.set(H.streaming, '1');
    if (p.includeUsage) h.set(H.includeUsage, '1');
    if (key) h.set(H.keyName, key.name);
    for (const name of FORWARDED_CLIENT_HEADERS) {
      const value = inbound?.get(name);
      if (value) h.set(name, value);
    }
    return h;
  }

  /** Nothing answered: the error goes to the requester in its dialect, and into the request's event. */
  #refuse(p: Placing, attempts: number, error: GatewayError, route: string[], key: KeyRecord | undefined): void {
    const routeReason = route.join(' > ') || 'rejected';
    const h = createHeaders();
    h.set(H.requestId, p.requestId);
    h.set(H.attempt, String(attempts));
    h.set(H.routeReason, routeReason);
    respondError(p.msg, error, h, p.dialect.error(error).body);
    this.#record(p, attempts, error, route, key);
  }

  #record(p: Placing, attempts: number, error: GatewayError, route: string[], key: KeyRecord | undefined): void {
    const routeReason = route.join(' > ') || 'rejected';
    p.hop?.fail(error, error.code).setAttributes({ [HomelabSpanAttr.attempt]: attempts, [HomelabSpanAttr.routeReason]: routeReason });
    const traceId = traceIdOf(p.traceparent);
    this.#emit({
      requestId: p.requestId, operation: operationName(p.dialect), dialect: p.dialect.name, stream: p.stream, requestedModel: p.requestedModel,
      status: error.code === 'cancelled' ? 'cancelled' : 'error', httpStatus: error.status, errorType: error.code, attempts, routeReason,
      latencyMs: nowMs() - p.receivedAt, finishedAt: new Date().toISOString(),
      ...(key && { apiKey: key.name }),
      ...(traceId && { traceId }),
    });
  }

  #emit(event: InferenceCompleted): void {
    // The request id is the message id: a duplicate (a retried publish, a request replayed after a
    // NATS failover) is dropped by JetStream.
    this.#deps.events.emit('inferenceCompleted', event, { msgId: event.requestId });
  }

  #onTransition(t: CircuitTransition): void {
    this.#deps.log.warn({ backend: t.backend, state: t.state, previous: t.previous, reason: t.reason }, 'circuit breaker changed state');
    this.#deps.onCircuitTransition?.(t);
  }
}
