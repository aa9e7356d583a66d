import {
  GatewayError, H, childTraceparent, createHeaders, errorFromReply, newRequestId, nowMs, respondError, Subjects, traceIdOf, workerSubject,
  type ChatRequestPayload, type EmbeddingsRequestPayload, type EventPublisher, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { LOCAL_PROVIDERS, resolveModel, type Candidate, type ModelView, type Provider } from './resolve.ts';

export interface DispatcherDeps {
  nc: NatsConnection;
  log: Logger;
  config: LabConfig;
  models: ModelView;
  events: EventPublisher;
  /** The router's reply mux: requests to workers without a subscription or timer each. */
  mux: ReplyMux;
}

type Operation = 'chat' | 'embeddings';

/**
 * Hands each request to a worker and stays out of the answer's path: the worker streams straight
 * to the requester. The router waits only for the worker's short outcome, so that a backend that
 * fails before any content reached the client can be replaced by the next candidate.
 */
export class Dispatcher {
  readonly #deps: DispatcherDeps;
  readonly #cancelled = new Set<string>();

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
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
    const { nc, config } = this.#deps;
    const receivedAt = nowMs();
    const inHeaders = msg.headers;
    const requestId = inHeaders?.get(H.requestId) || newRequestId();
    const traceparent = childTraceparent(inHeaders?.get(H.traceparent));
    if (!msg.reply) return; // nobody to answer: a publish without reply subject

    const localOnly = inHeaders?.get(H.route) === 'local-only';
    const resolution = resolveModel(requestedModel, config, this.#deps.models);
    let candidates: Candidate[] = resolution.candidates;
    const route: string[] = [resolution.reason, ...resolution.skipped];
    if (localOnly) {
      candidates = candidates.filter((c) => LOCAL_PROVIDERS.includes(c.provider));
      route.push('local-only');
      if (candidates.length === 0) {
        throw new GatewayError('no_backend', `local-only: no local backend serves '${requestedModel}'; the request was not sent to a cloud API`, { param: 'model' });
      }
    }

    let lastError: GatewayError | undefined;
    let attempt = 0;
    for (const candidate of candidates) {
      if (this.#cancelled.has(requestId)) return;
      attempt++;
      const reason = [...route, candidate.provider].join(' > ');
      const headers = this.#workerHeaders({ requestId, traceparent, replyTo: msg.reply, candidate, requestedModel, attempt, reason, receivedAt });
      const timeout = firstTokenTimeout(config, candidate.provider);
      try {
        const reply = await this.#deps.mux.request(nc, workerSubject(candidate.provider, operation), msg.data, { headers, timeoutMs: timeout });
        const error = errorFromReply(reply.headers, reply.data);
        if (!error) return; // started or done: the worker answers the requester
        lastError = error;
        route.push(`${candidate.provider} ${error.code}`);
        if (!error.retryable) break;
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err;
        if (err.code === 'no_backend') {
          lastError = new GatewayError('no_backend', `no ${candidate.provider} worker is running`);
          route.push(`${candidate.provider} no worker`);
        } else {
          // Tell the worker to let go, so a late answer never reaches the client after a fallback.
          publishCancelAttempt(nc, requestId, attempt);
          lastError = new GatewayError('timeout', `${candidate.provider} gave no first token within ${timeout} ms`);
          route.push(`${candidate.provider} first-token timeout`);
        }
      }
    }

    const error = lastError ?? new GatewayError('no_backend', `no backend available for '${requestedModel}'`);
    const finalError = candidates.length > 1 && error.code !== 'invalid_request'
      ? new GatewayError(error.code, `${error.message} (tried ${attempt} of ${candidates.length} backends)`, { status: error.status, ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }) })
      : error;
    const h = createHeaders();
    h.set(H.requestId, requestId);
    h.set(H.attempt, String(attempt));
    h.set(H.routeReason, route.join(' > '));
    respondError(msg, finalError, h);
    void this.#deps.events.publish('inferenceCompleted', {
      requestId, operation, stream, requestedModel, status: 'error', httpStatus: finalError.status, errorType: finalError.code, attempts: attempt,
      routeReason: route.join(' > '), latencyMs: nowMs() - receivedAt, finishedAt: new Date().toISOString(),
      ...(traceIdOf(traceparent) && { traceId: traceIdOf(traceparent)! }),
      ...(candidates.at(-1) && { backend: candidates.at(-1)!.provider, model: candidates.at(-1)!.model }),
    }, { msgId: `${requestId}:router` }).catch((err: unknown) => this.#deps.log.warn({ requestId, err: (err as Error).message }, 'could not store inference.completed'));
  }

  #workerHeaders(o: { requestId: string; traceparent: string; replyTo: string; candidate: Candidate; requestedModel: string; attempt: number; reason: string; receivedAt: number }): MsgHeaders {
    const h = createHeaders();
    h.set(H.requestId, o.requestId);
    h.set(H.traceparent, o.traceparent);
    h.set(H.replyTo, o.replyTo);
    h.set(H.upstreamModel, o.candidate.model);
    h.set(H.requestedModel, o.requestedModel);
    h.set(H.attempt, String(o.attempt));
    h.set(H.routeReason, o.reason);
    h.set(H.receivedAt, o.receivedAt.toFixed(3));
    return h;
  }
}

function firstTokenTimeout(config: LabConfig, provider: Provider): number {
  return config.backends[provider]?.firstTokenTimeoutMs ?? 30_000;
}

function publishCancelAttempt(nc: NatsConnection, requestId: string, attempt: number): void {
  const h = createHeaders();
  h.set(H.requestId, requestId);
  h.set(H.attempt, String(attempt));
  nc.publish(Subjects.cancel.subject, undefined, { headers: h });
}

